"""The options of a simulated dataset, in one place: defaults, units, help and checks.

The CLI builds its ``simulate`` options from the fields' metadata, the GUI takes its
defaults and tooltips from them, and the sample data, demo and benchmark each pass one
``SimulationSettings``. Defaults are the paper's dataset (Abante et al. 2025, section 2.1).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CalciumAvaeError
from .dynamics import NEURON_TYPES
from .indicators import INDICATORS, get_indicator


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
        "excitatory neuron types, one set of cultures each (ignored with --type-mix)",
        choices=tuple(NEURON_TYPES),
    )
    cultures_per_type: int = _option(
        5, "--cultures-per-type", "cultures simulated per type (with --type-mix: mixed cultures)"
    )
    type_mix: str = _option(
        "",
        "--type-mix",
        "mixed cultures: each neuron's Izhikevich type drawn with these shares, e.g. "
        "RS=0.4,IB=0.3,CH=0.3 (shares >= 0, normalised; a type alone counts 1); simulates "
        "--cultures-per-type cultures MIX01, MIX02, ... instead of one set per --types",
        metavar="TYPE=SHARE,...",
    )
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
    indicator: str = _option(
        "GCaMP6s",
        "--indicator",
        f"calcium indicator: kinetics, single-spike dF/F and saturation ({', '.join(INDICATORS)})",
        choices=tuple(INDICATORS),
    )
    indicator_mix: str = _option(
        "",
        "--indicator-mix",
        "mixed indicators: each imaged neuron expresses one, drawn with these shares, e.g. "
        "GCaMP6s,GCaMP6f,OGB-1 (equal shares) or GCaMP6s=2,OGB-1=1; replaces --indicator",
        metavar="NAME=SHARE,...",
    )
    amplitude_cv: float = _option(
        0.0,
        "--amplitude-cv",
        "per-neuron variability of the single-spike amplitude (coefficient of variation)",
    )
    decay_cv: float = _option(
        0.0,
        "--decay-cv",
        "per-neuron variability of the calcium decay time (coefficient of variation)",
    )
    neuropil: float = _option(
        0.0,
        "--neuropil",
        "neuropil contamination r: each ROI adds r x a shared neuropil trace (baseline F0)",
    )
    drift: float = _option(
        0.0,
        "--drift",
        "slow baseline drift: SD of a per-neuron multiplicative drift (10 s time scale)",
        "fraction of F",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "noise_levels", tuple(float(s) for s in self.noise_levels))
        object.__setattr__(self, "type_mix", format_mix(parse_mix(self.type_mix, NEURON_TYPES)))
        indicators = parse_mix(self.indicator_mix, INDICATORS, "indicator")
        object.__setattr__(self, "indicator_mix", format_mix(indicators))
        if not self.types:
            raise CalciumAvaeError("No neuron types given; choose among RS, IB, CH.")
        for t in self.types:
            if t not in NEURON_TYPES:
                known = ", ".join(NEURON_TYPES)
                raise CalciumAvaeError(f"Unknown neuron type {t!r}; choose one of {known}.")
        if self.cultures_per_type < 1:
            raise CalciumAvaeError("cultures_per_type must be at least 1.")
        if not self.noise_levels or not all(math.isfinite(s) and s >= 0 for s in self.noise_levels):
            raise CalciumAvaeError(
                "Give at least one noise level (a finite sigma >= 0 in fluorescence units), "
                "e.g. 1.0."
            )
        if self.neurons_per_culture is not None and self.neurons_per_culture < 1:
            raise CalciumAvaeError("neurons_per_culture must be at least 1 (or None for all).")
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise CalciumAvaeError(f"Frame rate must be a positive number; got {self.frame_rate}.")
        if not 0 <= self.seed < 2**32:
            raise CalciumAvaeError(f"The seed must be between 0 and 2**32 - 1; got {self.seed}.")
        check_culture_size(self.duration_s, self.dish_size_mm, self.density_per_mm2)
        for name in [n for n, v in indicators.items() if v > 0] or [self.indicator]:
            indicator = get_indicator(name)
            if self.per_spike_fluorescence and (
                indicator.polynomial is None or indicator.tau_rise_s > 0
            ):
                raise CalciumAvaeError(
                    f"Per-spike fluorescence exists for GCaMP6s only, not {name}."
                )
        for name in ("amplitude_cv", "decay_cv", "neuropil", "drift"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 2):
                raise CalciumAvaeError(f"{name} must be between 0 and 2; got {value}.")

    @property
    def n_cultures(self) -> int:
        if self.type_mix:
            return self.cultures_per_type
        return len(self.types) * self.cultures_per_type

    @property
    def type_shares(self) -> dict[str, float]:
        """Each type's share of a mixed culture's neurons (empty: one type per culture)."""
        return parse_mix(self.type_mix, NEURON_TYPES)

    @property
    def indicator_shares(self) -> dict[str, float]:
        """Each indicator's share of the imaged neurons (empty: all have ``indicator``)."""
        return parse_mix(self.indicator_mix, INDICATORS, "indicator")

    @property
    def indicator_label(self) -> str:
        """The indicator, or the mix's names, for descriptions of the recording."""
        shares = self.indicator_shares
        if not shares:
            return self.indicator
        return "mixed " + ", ".join(n for n, v in shares.items() if v > 0) + " (one per neuron)"

    @property
    def neurons_per_dish(self) -> int:
        return round(self.density_per_mm2 * self.dish_size_mm**2)

    def peak_memory_bytes(self) -> int:
        """About the most memory one culture takes: its traces (float32, clean and one
        copy per noise level, twice over while written) and its network."""
        imaged = self.neurons_per_dish
        if self.neurons_per_culture is not None:
            imaged = min(imaged, self.neurons_per_culture)
        frames = self.duration_s * self.frame_rate
        traces = imaged * frames * 4 * (1 + len(self.noise_levels)) * 2
        return int(traces + self.neurons_per_dish * NETWORK_BYTES_PER_NEURON)

    def estimated_seconds(self) -> float:
        """Rough single-core time of the whole dataset, dominated by the 1 ms network steps."""
        steps = (self.duration_s + SETTLING_S) * 1000.0
        return self.n_cultures * self.neurons_per_dish * steps * SECONDS_PER_NEURON_STEP


#: one network step of one neuron: 1.4e-8 to 1.7e-8 s measured on one core of a 2-core x86
#: machine (2026-12); rounded up, and used only for the estimate shown to the user
SECONDS_PER_NEURON_STEP = 2e-8
#: synapses, positions and dendrites of one neuron in memory, about
NETWORK_BYTES_PER_NEURON = 20_000
#: simulated before recording starts, at most (the discarded transient)
SETTLING_S = 3.0


def available_memory_bytes() -> int | None:
    """Memory the system could give now (Linux, macOS); None where it cannot tell."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_resources(settings: SimulationSettings, available: int | None = None) -> None:
    """Refuse a dataset whose cultures would not fit in memory, before anything runs."""
    available = available_memory_bytes() if available is None else available
    need = settings.peak_memory_bytes()
    if available is not None and need > available:
        raise CalciumAvaeError(
            f"one culture needs about {need / 1e9:.3g} GB of memory and {available / 1e9:.3g} "
            "GB are free; lower the duration, frame rate or imaged neurons"
        )


def check_culture_size(duration_s: float, dish_size_mm: float, density_per_mm2: float) -> None:
    """Refuse a culture that would have no time, no room or no neurons."""
    values = (duration_s, dish_size_mm, density_per_mm2)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise CalciumAvaeError("Duration, dish size and density must be positive numbers.")


def parse_mix(
    text: str | Mapping[str, float], known: Mapping[str, Any], what: str = "neuron type"
) -> dict[str, float]:
    """'RS=0.4,IB=0.3,CH=0.3' (or a mapping) -> shares in ``known``'s order, summing to 1.

    A name without a share counts 1 ('GCaMP6s,OGB-1' = half each); names left out get 0.
    Empty text is no mix ({}). Raises CalciumAvaeError on an unknown or repeated name, a
    share that is not a finite number >= 0, or shares summing to 0.
    """
    if isinstance(text, Mapping):
        pairs = [(str(k), v) for k, v in text.items()]
    else:
        pairs = []
        for item in str(text).replace(" ", "").split(","):
            if not item:
                continue
            name, _, share = item.partition("=")
            pairs.append((name, share if share else 1.0))
    if not pairs:
        return {}
    example = "RS=0.4,IB=0.3,CH=0.3" if what == "neuron type" else "GCaMP6s,GCaMP6f"
    shares: dict[str, float] = {}
    for name, share in pairs:
        if name not in known:
            raise CalciumAvaeError(
                f"Unknown {what} {name!r} in a mix; choose among {', '.join(known)}."
            )
        if name in shares:
            raise CalciumAvaeError(f"{what.capitalize()} {name} appears twice in a mix.")
        try:
            value = float(share)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise CalciumAvaeError(
                f"The share of {name} must be a number >= 0, got {share!r}; e.g. {example}."
            )
        shares[name] = value
    total = sum(shares.values())
    if total <= 0:
        raise CalciumAvaeError(f"The shares of a {what} mix sum to 0; e.g. {example}.")
    return {name: shares.get(name, 0.0) / total for name in known}


def format_mix(shares: Mapping[str, float]) -> str:
    """The canonical text of a mix: each name with a share > 0, normalised: 'RS=0.4,...'."""
    return ",".join(f"{name}={share:.6g}" for name, share in shares.items() if share > 0)


def option_metadata(name: str) -> Mapping[str, Any]:
    """Flag, help and unit of a SimulationSettings field."""
    return next(f.metadata for f in fields(SimulationSettings) if f.name == name)


def option_help(name: str) -> str:
    """Help text of a field with its unit, e.g. 'time recorded (s)' (for tooltips)."""
    meta = option_metadata(name)
    return f"{meta['help']} ({meta['unit']})" if meta["unit"] else meta["help"]
