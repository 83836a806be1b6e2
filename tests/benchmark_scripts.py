"""Load a script from benchmarks/ as a module, so tests can call its functions."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def benchmark_module(name: str) -> Iterator[ModuleType]:
    """Yield ``benchmarks/<name>.py`` imported as ``name`` (registered in sys.modules while
    in use, as its dataclasses need); for a module-scoped fixture to ``yield from``. The
    folder is on sys.path, as when a script runs, so that it can import its siblings."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]
