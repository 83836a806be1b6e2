"""The options of a simulated dataset, in one place: defaults, units, help and checks.

The CLI builds its ``simulate`` options from the fields' metadata, the GUI takes its
defaults and tooltips from them, and the sample data, demo and benchmark each pass one
``SimulationSettings``. Defaults are the paper's dataset (seed 000 section 2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CalciumAvaeError
from .dynamics import NEURON_TYPES


def _option(default: Any, flag: str, help: str, unit: str = "", **extra: Any) -> Any:
    """A field with its command-line flag, help text and unit (empty when none)."""
    return field(default=default, metadata={"flag": flag, "help": help, "unit": unit, **extra})


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate: cultures per type, imaged neurons, recording and noise.

    Raises CalciumAvaeError on creation when an option cannot give a dataset, so that a
    bad value is refused before anything runs.
    """

    types: tuple[str, ...] = _option(
        tuple(NEURON_TYPES),
        "--types",
        "excitatory neuron types, one set of cultures each",
        choices=tuple(NEURON_TYPES),
    )
    cultures_per_type: int = _option(5, "--cultures-per-type", "cultures simulated per type")
    neurons_per_culture: int | None = _option(
        50,
        "--neurons",
        "imaged neurons per culture, among those that spike (0 = all)",
        none_as=0,
    )
    duration_s: float = _option(30.0, "--duration", "time recorded", "s")
    frame_rate: float = _option(500.0, "--frame-rate", "imaging frame rate", "Hz")
    noise_levels: tuple[float, ...] = _option(
        (1.0,),
        "--noise",
        "noise sigma(s) in fluorescence units (baseline F0 = 42); every level shares the "
        "same spikes",
        "a.u.",
    )
    seed: int = _option(0, "--seed", "same seed, same cultures")
    density_per_mm2: float = _option(250.0, "--density", "neurons per mm^2 of dish", "mm^-2")
    dish_size_mm: float = _option(3.0, "--dish-size", "side of the square holding the dish", "mm")
    released_wiring: bool = _option(
        False,
        "--released-wiring",
        "reproduce the released code's reversed connection orientation",
    )
    per_spike_fluorescence: bool = _option(
        False,
        "--per-spike-fluorescence",
        "apply the GCaMP polynomial per spike, as the released script did",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "noise_levels", tuple(float(s) for s in self.noise_levels))
        if not self.types:
            raise CalciumAvaeError("No neuron types given; choose among RS, IB, CH.")
        for t in self.types:
            if t not in NEURON_TYPES:
                known = ", ".join(NEURON_TYPES)
                raise CalciumAvaeError(f"Unknown neuron type {t!r}; choose one of {known}.")
        if self.cultures_per_type < 1:
            raise CalciumAvaeError("cultures_per_type must be at least 1.")
        if not self.noise_levels or min(self.noise_levels) < 0:
            raise CalciumAvaeError(
                "Give at least one noise level (sigma >= 0 in fluorescence units), e.g. 1.0."
            )
        if self.neurons_per_culture is not None and self.neurons_per_culture < 1:
            raise CalciumAvaeError("neurons_per_culture must be at least 1 (or None for all).")
        if self.frame_rate <= 0:
            raise CalciumAvaeError(f"Frame rate must be positive; got {self.frame_rate}.")
        check_culture_size(self.duration_s, self.dish_size_mm, self.density_per_mm2)

    @property
    def n_cultures(self) -> int:
        return len(self.types) * self.cultures_per_type


def check_culture_size(duration_s: float, dish_size_mm: float, density_per_mm2: float) -> None:
    """Refuse a culture that would have no time, no room or no neurons."""
    if duration_s <= 0 or dish_size_mm <= 0 or density_per_mm2 <= 0:
        raise CalciumAvaeError("Duration, dish size and density must be positive.")


def option_metadata(name: str) -> Mapping[str, Any]:
    """Flag, help and unit of a SimulationSettings field."""
    return next(f.metadata for f in fields(SimulationSettings) if f.name == name)


def option_help(name: str) -> str:
    """Help text of a field with its unit, e.g. 'time recorded (s)' (for tooltips)."""
    meta = option_metadata(name)
    return f"{meta['help']} ({meta['unit']})" if meta["unit"] else meta["help"]
