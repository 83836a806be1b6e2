"""Population analysis: co-active assemblies and network states (no Qt).

``AssemblyDetector`` (assemblies.py) finds groups of ROIs that are active together;
``CalciumHMM`` (hmm.py) finds the network's discrete states. Both are imported lazily, so
that importing the package costs nothing until one is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AssemblyDetector", "CalciumHMM"]


def __getattr__(name: str) -> Any:
    if name == "AssemblyDetector":
        from .assemblies import AssemblyDetector

        return AssemblyDetector
    if name == "CalciumHMM":
        from .hmm import CalciumHMM

        return CalciumHMM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_count(text: str | int | None, what: str, *, allow_none: bool) -> int | str | None:
    """A CLI/GUI count: "auto", a positive integer, or (where allowed) "none"/None."""
    from ..errors import CalciumAvaeError

    if text is None or (allow_none and str(text).lower() == "none"):
        if allow_none:
            return None
        raise CalciumAvaeError(f"{what} must be 'auto' or a number")
    if str(text).lower() == "auto":
        return "auto"
    try:
        value = int(str(text))
    except ValueError:
        choices = "'auto', a number or 'none'" if allow_none else "'auto' or a number"
        raise CalciumAvaeError(f"{what} must be {choices}, got {text!r}") from None
    if value < 1:
        raise CalciumAvaeError(f"{what} must be at least 1, got {value}")
    return value


def analyse(
    traces: Any,
    *,
    assemblies: int | str | None = "auto",
    states: int | str | None = None,
    rates: Any = None,
    device: str = "auto",
    assembly_method: str | None = None,
) -> tuple[Any, Any, dict[str, str | int]]:
    """Assemblies and/or network states of one recording, as the CLI and GUI run them.

    Assemblies come from the inferred ``rates`` (ROIs x frames) when given, else from the
    traces; states from the calcium HMM on the traces (its emissions model fluorescence).
    Returns the fitted AssemblyDetector (or None), the fitted CalciumHMM (or None) and the
    provenance facts. ``assembly_method`` is one of ``assemblies.METHODS`` (None: its
    default).
    """
    import numpy as np

    from ..errors import CalciumAvaeError

    if assemblies is None and states is None:
        raise CalciumAvaeError("nothing to do: ask for assemblies, states or both")
    facts: dict[str, str | int] = {}
    detector = model = None
    if assemblies is not None:
        from .assemblies import DEFAULT_METHOD, AssemblyDetector

        use_rates = rates is not None and np.isfinite(np.asarray(rates)).any()
        data = np.asarray(rates if use_rates else traces.data)
        facts["assemblies_input"] = "inferred_spikes" if use_rates else "fluorescence"
        detector = AssemblyDetector(
            n_assemblies=assemblies, method=assembly_method or DEFAULT_METHOD
        ).fit(data)
        facts["assemblies_requested"] = str(assemblies)
        facts["assemblies_method"] = detector.method_
        facts["assemblies_noise_bound"] = f"{detector.noise_bound_:.4g}"
    if states is not None:
        try:
            from .hmm import CalciumHMM
        except ImportError as err:
            raise CalciumAvaeError(
                "network states need the calcium HMM (population/hmm.py), which this "
                "installation lacks"
            ) from err
        model = CalciumHMM(n_states=states, device=device).fit(traces.data, frame_rate=traces.rate)
        facts["states_requested"] = str(states)
        facts["states_model"] = type(model).__name__
    return detector, model, facts
