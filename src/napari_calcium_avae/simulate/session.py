"""Simulated cultures and their imaged neurons, in memory, with their full ground truth.

A culture's spikes, wiring and parameters, and what the microscope records of it: the
imaged neurons' noise-free fluorescence and one noisy copy per noise level
(``dataset.simulate_dataset`` writes them as NWB sessions).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from .dynamics import (
    NEURON_TYPES,
    draw_mixed_parameters,
    draw_parameters,
    draw_types,
    simulate_spikes,
)
from .fluorescence import DEFAULT_INDICATOR, add_noise, fluorescence, neuropil, slow_drift
from .indicators import get_indicator
from .network import build_network
from .settings import SimulationSettings, check_culture_size

DT_MS = 1.0


@dataclass(frozen=True)
class Culture:
    """One simulated culture with its full ground truth (times in ms from recording start).

    ``neuron_type`` is the culture's type, or "MIX" for a mixed culture;
    ``neuron_types`` holds each neuron's own type (all the same unless mixed).
    ``weights[i, j]`` is the synapse from j onto i (see ``released_wiring``);
    ``discarded_spike_times_ms`` holds the (negative) spike times of the discarded
    initial stretch, whose calcium is still present when recording starts.
    """

    neuron_type: str
    neuron_types: np.ndarray
    positions_um: np.ndarray
    dish_radius_um: float
    weights: sp.csc_matrix
    excitatory: np.ndarray
    a: np.ndarray
    b: np.ndarray
    v0: np.ndarray
    du: np.ndarray
    axon_length_um: np.ndarray
    dendrite_radius_um: np.ndarray
    spike_times_ms: list[np.ndarray]
    discarded_spike_times_ms: list[np.ndarray]
    discarded_ms: float
    duration_s: float
    dt_ms: float
    seed: int
    released_wiring: bool

    @property
    def n_neurons(self) -> int:
        return len(self.positions_um)

    def spike_counts(self) -> np.ndarray:
        """Spikes per neuron in the recorded window."""
        return np.array([len(t) for t in self.spike_times_ms])


#: the neuron_type of a culture whose neurons have several types
MIXED = "MIX"


def simulate_culture(
    neuron_type: str | Mapping[str, float] = "RS",
    n_neurons: int | None = None,
    density_per_mm2: float = 250.0,
    dish_size_mm: float = 3.0,
    duration_s: float = 30.0,
    seed: int = 0,
    released_wiring: bool = False,
    discard_s: tuple[float, float] = (1.0, 3.0),
) -> Culture:
    """Grow, wire and run one culture; the discarded stretch T_in ~ U(discard_s).

    ``neuron_type`` is one type, or a mixed culture's shares of each type (e.g.
    ``{"RS": 0.4, "IB": 0.3, "CH": 0.3}``): each neuron's type is then drawn with these
    shares and its parameters from its own type, so that neurons of every type share one
    network and its bursts. ``n_neurons`` defaults to density x dish_size^2 (2,250 for the
    paper's culture).
    """
    mix = dict(neuron_type) if isinstance(neuron_type, Mapping) else None
    if mix is None and neuron_type not in NEURON_TYPES:
        known = ", ".join(NEURON_TYPES)
        raise CalciumAvaeError(f"Unknown neuron type {neuron_type!r}; choose one of {known}.")
    check_culture_size(duration_s, dish_size_mm, density_per_mm2)
    lo, hi = discard_s
    if not 0 <= lo <= hi:
        raise CalciumAvaeError(
            f"discard_s must be (low, high) with 0 <= low <= high; got {discard_s}."
        )
    n = round(density_per_mm2 * dish_size_mm**2) if n_neurons is None else int(n_neurons)
    if n < 2:
        raise CalciumAvaeError(f"A culture needs at least 2 neurons; got {n}.")
    rng_net, rng_par, rng_dyn = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    net = build_network(n, dish_size_mm, rng_net, released_wiring=released_wiring)
    if mix is None:
        types = np.full(n, neuron_type)
        params = draw_parameters(neuron_type, n, rng_par)
    else:
        types = draw_types(mix, n, rng_par)
        params = draw_mixed_parameters(types, rng_par)
    n_discard = round(rng_dyn.uniform(lo, hi) * 1000.0 / DT_MS)
    n_steps = round(duration_s * 1000.0 / DT_MS)
    times = simulate_spikes(net.weights, params, n_steps, rng_dyn, n_discard, DT_MS)
    recorded = [t[t >= 0] for t in times]
    discarded = [t[t < 0] for t in times]
    return Culture(
        neuron_type=MIXED if mix is not None else neuron_type,
        neuron_types=types,
        positions_um=net.positions_um,
        dish_radius_um=net.dish_radius_um,
        weights=net.weights,
        excitatory=net.excitatory,
        a=params.a,
        b=params.b,
        v0=params.v0,
        du=params.du,
        axon_length_um=net.axon_length_um,
        dendrite_radius_um=net.dendrite_radius_um,
        spike_times_ms=recorded,
        discarded_spike_times_ms=discarded,
        discarded_ms=n_discard * DT_MS,
        duration_s=duration_s,
        dt_ms=DT_MS,
        seed=seed,
        released_wiring=released_wiring,
    )


BURST_BIN_MS = 10.0
"""Bin of :func:`network_bursts`' mask."""


def network_bursts(
    culture: Culture, window_ms: float = 100.0, burst_fraction: float = 0.05
) -> np.ndarray:
    """Which ``BURST_BIN_MS`` bins of the recorded window are in a network burst (bool).

    Bursts travel across the dish as waves lasting hundreds of ms, so a network burst is
    a stretch of bins where the population fires more than ``burst_fraction`` x n spikes
    per sliding ``window_ms``, padded by half a window (which closes short gaps).
    """
    counts = culture.spike_counts()
    n_bins = int(np.ceil(culture.duration_s * 1000.0 / BURST_BIN_MS))
    times = np.concatenate(culture.spike_times_ms) if counts.sum() else np.empty(0)
    bins = np.minimum((times // BURST_BIN_MS).astype(np.int64), n_bins - 1)
    width = max(1, round(window_ms / BURST_BIN_MS))
    per_window = np.convolve(np.bincount(bins, minlength=n_bins), np.ones(width), "same")
    in_burst = per_window > burst_fraction * culture.n_neurons
    return np.convolve(in_burst, np.ones(width), "same") > 0  # pad, close short gaps


def firing_statistics(
    culture: Culture, window_ms: float = 100.0, burst_fraction: float = 0.05
) -> dict[str, float]:
    """Summary numbers to compare a culture with the paper's (rates, silence, bursts).

    Bursts are :func:`network_bursts`; participation is the fraction of neurons spiking
    at least once in a burst (mean and max over bursts).
    """
    n = culture.n_neurons
    counts = culture.spike_counts()
    in_burst = network_bursts(culture, window_ms, burst_fraction)
    n_bins = len(in_burst)
    who = np.repeat(np.arange(n), counts)
    times = np.concatenate(culture.spike_times_ms) if counts.sum() else np.empty(0)
    bins = np.minimum((times // BURST_BIN_MS).astype(np.int64), n_bins - 1)
    edges = np.diff(np.concatenate([[0], in_burst.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    event = np.full(n_bins, -1)
    for k, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        event[lo:hi] = k
    spike_event = event[bins]
    inside = spike_event >= 0
    n_bursts = len(starts)
    participation = max_participation = spikes_per_burst = 0.0
    if n_bursts:
        ev_pairs = np.unique(spike_event[inside] * n + who[inside])
        per_event = np.bincount(ev_pairs // n, minlength=n_bursts)
        participation = float(per_event.mean() / n)
        max_participation = float(per_event.max() / n)
        spikes_per_burst = float(inside.sum() / max(len(ev_pairs), 1))
    isis = [np.diff(t) for t in culture.spike_times_ms if len(t) > 1]
    all_isi = np.concatenate(isis) if isis else np.empty(0)
    return {
        "mean_rate_hz": float(counts.mean() / culture.duration_s),
        "fraction_silent": float((counts == 0).mean()),
        "n_bursts": float(n_bursts),
        "burst_participation": participation,
        "max_burst_participation": max_participation,
        "spikes_per_burst": spikes_per_burst,
        "fraction_isi_below_10ms": float((all_isi < 10).mean()) if len(all_isi) else 0.0,
        "median_isi_ms": float(np.median(all_isi)) if len(all_isi) else float("nan"),
        "mean_out_degree": float(culture.weights.nnz / n),
    }


def culture_fluorescence(
    culture: Culture,
    neurons: np.ndarray,
    frame_rate: float,
    per_spike: bool = False,
    indicator: str | Sequence[str] = DEFAULT_INDICATOR,
    *,
    amplitude_cv: float = 0.0,
    decay_cv: float = 0.0,
    neuropil_r: float = 0.0,
    drift: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Noise-free fluorescence of the given neurons (neurons x frames, float32).

    With the defaults, the indicator's fluorescence of each neuron's spikes;
    ``indicator`` is one name for all neurons or one per neuron (a mixed recording: each
    neuron gets its own indicator's kinetics, amplitude and saturation). Options:
    per-neuron amplitude and decay factors drawn log-normal with mean 1 and the given
    CV; plus ``neuropil_r`` x the culture's shared neuropil trace (all its neurons'
    mean calcium, baseline F0; with mixed indicators, each indicator's neuropil weighted
    by its share of the given neurons, as the neuropil holds processes of every kind);
    times a slow per-neuron drift of SD ``drift``. They draw from ``rng`` (needed when
    any is non-zero), in that order.
    """
    spikes = [
        np.concatenate([culture.discarded_spike_times_ms[i], culture.spike_times_ms[i]])
        for i in neurons
    ]
    n = len(spikes)
    if isinstance(indicator, str):
        names = np.full(n, indicator)
    else:
        names = np.asarray(indicator, dtype=str)
        if names.shape != (n,):
            raise CalciumAvaeError(f"Give one indicator, or one per neuron ({n}).")
    kinds = {name: get_indicator(name) for name in dict.fromkeys(names.tolist())}
    if not (amplitude_cv or decay_cv or neuropil_r or drift):
        rng = None
    elif rng is None:
        raise CalciumAvaeError("Variability, neuropil or drift need a random generator (rng).")
    amp = _lognormal(rng, amplitude_cv, n) if amplitude_cv else None
    decay = None
    if decay_cv:
        floor = {name: 2 * ind.tau_rise_s / ind.tau_decay_s for name, ind in kinds.items()}
        decay = np.maximum(_lognormal(rng, decay_cv, n), [floor[k] for k in names])
    n_frames = max(0, int(np.floor(culture.duration_s * frame_rate + 1e-9)))
    out = np.empty((n, n_frames), dtype=np.float32)
    for name, ind in kinds.items():
        rows = np.flatnonzero(names == name)
        out[rows] = fluorescence(
            [spikes[r] for r in rows],
            culture.duration_s,
            frame_rate,
            per_spike,
            indicator=ind,
            amplitude_scale=None if amp is None else amp[rows],
            decay_scale=None if decay is None else decay[rows],
        )
    if neuropil_r or drift:
        f = out.astype(np.float64)
        if neuropil_r:
            every = [
                np.concatenate([d, t])
                for d, t in zip(
                    culture.discarded_spike_times_ms, culture.spike_times_ms, strict=True
                )
            ]
            for name, ind in kinds.items():
                share = np.count_nonzero(names == name) / n
                trace = neuropil(every, culture.duration_s, frame_rate, ind)
                f += neuropil_r * (trace if share == 1 else share * trace)
        if drift:
            f *= slow_drift(f.shape, frame_rate, drift, rng)
        out = f.astype(np.float32)
    return out


def _lognormal(rng: np.random.Generator, cv: float, n: int) -> np.ndarray:
    """n factors, log-normal with mean 1 and coefficient of variation cv."""
    sigma2 = np.log1p(cv * cv)
    return rng.lognormal(-sigma2 / 2, np.sqrt(sigma2), n)


def _sub_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


@dataclass(frozen=True)
class ImagedCulture:
    """One culture as the microscope sees it: the imaged neurons' traces and ground truth."""

    label: str
    """e.g. "IB03" (or "MIX03" for a mixed culture): type and 1-based index, the NWB
    subject id."""
    culture: Culture
    imaged: np.ndarray
    """Indices of the imaged neurons in the culture, one per ROI."""
    clean: np.ndarray
    """(ROIs, frames) noise-free fluorescence, the ground truth of every noise level."""
    noisy: list[np.ndarray]
    """One (ROIs, frames) float32 array per noise level, all sharing the same spikes."""
    noise_levels: tuple[float, ...]
    indicators: np.ndarray
    """Each ROI's calcium indicator (all the same unless the indicators are mixed)."""
    settings: SimulationSettings | None = None
    """The dataset's settings (indicator, variability, neuropil, drift), for the record."""

    @property
    def neuron_types(self) -> np.ndarray:
        """Each ROI's Izhikevich type (all the same unless the culture is mixed)."""
        return self.culture.neuron_types[self.imaged]


def culture_labels(settings: SimulationSettings) -> list[str]:
    """Each culture's label (type and 1-based index, e.g. "RS01"; "MIX01" for mixed
    cultures), in simulation order."""
    kinds = [MIXED] if settings.type_mix else settings.types
    return [f"{t}{ci + 1:02d}" for t in kinds for ci in range(settings.cultures_per_type)]


def simulate_imaged_cultures(
    settings: SimulationSettings | None = None, **options: Any
) -> Iterator[ImagedCulture]:
    """The cultures of a dataset in memory, one at a time, type by type (no files).

    With a type mix (``settings.type_mix``), ``cultures_per_type`` mixed cultures
    instead, each neuron's type drawn with the mix's shares; with an indicator mix, each
    imaged neuron's indicator drawn with its shares (``ImagedCulture.indicators``).

    ``settings`` defaults to ``SimulationSettings()``; keyword options replace single
    fields (``simulate_imaged_cultures(types=("RS",), seed=3)``), so they are checked
    before anything runs. Imaged neurons are drawn among those that spiked at least once
    in the recorded window (all neurons when ``neurons_per_culture`` is None). Each
    culture's seed comes from (seed, type, culture index), so the same seed gives the same
    data and adding a type leaves the other cultures unchanged (mixed cultures count as
    a fourth type; the indicators draw from a stream of their own, so mixing indicators
    leaves spikes unchanged).
    """
    s = replace(settings or SimulationSettings(), **options)
    if s.type_mix:
        kinds: list[tuple[str | dict[str, float], int]] = [(s.type_shares, len(NEURON_TYPES))]
    else:
        kinds = [(t, list(NEURON_TYPES).index(t)) for t in s.types]
    indicator_shares = s.indicator_shares

    def cultures() -> Iterator[ImagedCulture]:
        labels = iter(culture_labels(s))
        for neuron_type, type_index in kinds:
            for ci in range(s.cultures_per_type):
                label = next(labels)
                culture = simulate_culture(
                    neuron_type,
                    None,
                    s.density_per_mm2,
                    s.dish_size_mm,
                    s.duration_s,
                    _sub_seed(s.seed, type_index, ci, 0),
                    s.released_wiring,
                )
                rng = np.random.default_rng(_sub_seed(s.seed, type_index, ci, 1))
                imaged = _choose_imaged(culture, s.neurons_per_culture, rng, label)
                if indicator_shares:
                    names = list(indicator_shares)
                    p = np.array(list(indicator_shares.values()))
                    rng_ind = np.random.default_rng(_sub_seed(s.seed, type_index, ci, 3))
                    indicators = np.array(names)[rng_ind.choice(len(names), len(imaged), p=p)]
                else:
                    indicators = np.full(len(imaged), s.indicator)
                clean = culture_fluorescence(
                    culture,
                    imaged,
                    s.frame_rate,
                    s.per_spike_fluorescence,
                    indicators,
                    amplitude_cv=s.amplitude_cv,
                    decay_cv=s.decay_cv,
                    neuropil_r=s.neuropil,
                    drift=s.drift,
                    rng=np.random.default_rng(_sub_seed(s.seed, type_index, ci, 2)),
                )
                noisy = add_noise(clean, s.noise_levels, rng)
                yield ImagedCulture(
                    label, culture, imaged, clean, noisy, s.noise_levels, indicators, s
                )

    return cultures()


def _choose_imaged(
    culture: Culture, n: int | None, rng: np.random.Generator, label: str
) -> np.ndarray:
    if n is None:
        return np.arange(culture.n_neurons)
    active = np.flatnonzero(culture.spike_counts() > 0)
    if len(active) == 0:
        raise CalciumAvaeError(
            f"Culture {label}: no neuron spiked; simulate longer or image all neurons."
        )
    if len(active) < n:
        warnings.warn(
            f"Culture {label}: only {len(active)} neurons spiked; imaging all of them "
            f"instead of {n}.",
            CalciumAvaeWarning,
            stacklevel=3,
        )
        return active
    return np.sort(rng.choice(active, n, replace=False))
