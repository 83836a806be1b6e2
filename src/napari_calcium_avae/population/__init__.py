"""Population analysis: co-active assemblies and network states (no Qt)."""
