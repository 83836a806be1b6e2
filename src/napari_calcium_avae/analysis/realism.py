"""How realistic a set of calcium traces is next to a real recording (after seed 003).

CalciumGAN (seed 003) judges generated traces by inferring spikes from the real and the
generated ones and comparing the distributions of spike-train statistics. This module
does the same with the package's own spike inference (``spikes.SpikeInference``, seed
002's likelihood) and adds statistics of the traces themselves:

- from the inferred spikes: firing rate, pairwise correlation of spike counts in 100 ms
  bins, the van Rossum distance between neurons' spike trains, burst rate and burst size;
- from the traces (as dF/F): event amplitude, event rate and autocorrelation time.

Each statistic's two distributions are compared by the Wasserstein-1 distance (in the
statistic's unit; the two-sample Kolmogorov-Smirnov statistic is given beside it). A
distance alone has no scale, so each gets a yardstick: the same distance between two
random halves of the real recording's neurons. Halves are split by neurons, not time,
because a generator draws new neurons: the yardstick is then how much two samples of
neurons from the same recording differ, at the recording's full duration (so that
statistics that depend on duration, such as correlations in short bins, are estimated
as well in the halves as in the whole). Over ``n_splits`` random splits, the real half A
is compared with the other half B (the yardstick) and with as many generated neurons as
B holds (the distance), so both sides of the ratio compare samples of equal size: a
generator indistinguishable from the recording scores a ratio near 1.

No Qt here: the CLI (``calcium-avae compare``) and any front end call these functions.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ..traces import Traces

#: Width of the bins for pairwise correlations and bursts (CalciumGAN's 100 ms); a slower
#: recording uses its frame interval.
DEFAULT_BIN_S = 0.1
#: Time constant of the van Rossum filter (s).
DEFAULT_TAU_S = 1.0
#: Random neuron splits whose median gives the yardstick and the distance.
DEFAULT_SPLITS = 20
#: Inferred spikes in a 100 ms bin that make the bin active (bursts).
BURST_BIN_SPIKES = 0.5
#: Fewest inferred spikes in a run of active bins that make it a burst.
BURST_MIN_SPIKES = 3.0
#: A trace event rises this many noise SDs above the baseline and stands out by as many.
EVENT_SD = 3.0
#: Trace events are found after a moving average over this long (s), so that fast
#: frame rates do not turn noise excursions into events.
EVENT_SMOOTH_S = 0.1
#: Fewest neurons in the real recording: two halves of two neurons each (pairs need two).
MIN_REAL_NEURONS = 4


@dataclass(frozen=True)
class Statistic:
    """One statistic compared: what it is, from what, and in which unit."""

    name: str
    unit: str
    source: str  # "spikes" or "traces"
    per: str  # "neuron", "pair", "burst" or "event"
    description: str


STATISTICS: tuple[Statistic, ...] = (
    Statistic("firing_rate", "Hz", "spikes", "neuron", "inferred spikes per second"),
    Statistic(
        "pairwise_correlation",
        "r",
        "spikes",
        "pair",
        "Pearson r of two neurons' inferred spike counts in 100 ms bins",
    ),
    Statistic(
        "van_rossum",
        "normalised",
        "spikes",
        "pair",
        "squared van Rossum distance between two neurons' inferred spike trains over the "
        "sum of each one's squared distance to no spikes (0 = identical, 1 = the filtered "
        "trains never overlap)",
    ),
    Statistic(
        "burst_rate",
        "per min",
        "spikes",
        "neuron",
        f"runs of active 100 ms bins (>= {BURST_BIN_SPIKES:g} spikes each) holding "
        f">= {BURST_MIN_SPIKES:g} spikes, per minute",
    ),
    Statistic("burst_size", "spikes", "spikes", "burst", "inferred spikes in a burst"),
    Statistic(
        "event_amplitude",
        "dF/F",
        "traces",
        "event",
        f"peak dF/F above baseline of trace events (>= {EVENT_SD:g} noise SDs)",
    ),
    Statistic("event_rate", "per min", "traces", "neuron", "trace events per minute"),
    Statistic(
        "autocorrelation_time",
        "s",
        "traces",
        "neuron",
        "lag at which the trace's autocorrelation falls below 1/e",
    ),
)
_BY_NAME = {s.name: s for s in STATISTICS}


@dataclass(frozen=True)
class RealismRow:
    """One statistic's comparison: a row of the report's table."""

    statistic: str
    unit: str
    source: str
    distance: float
    """Median over splits of W1(real half A, as many generated neurons as half B)."""
    yardstick: float
    """Median over splits of W1(real half A, real half B)."""
    ratio: float
    """distance / yardstick: near 1 or below = within the recording's own spread."""
    ks: float
    """Median over splits of the KS statistic, real half A vs generated."""
    ks_yardstick: float
    """Median over splits of the KS statistic, real half A vs real half B."""
    n_real: int
    """Values in the whole real recording (neurons, pairs, bursts or events)."""
    n_generated: int
    real_median: float
    generated_median: float


@dataclass
class RealismReport:
    """The comparison: one row per statistic, the values behind it, and how it was made."""

    rows: list[RealismRow]
    real_values: dict[str, np.ndarray]
    """Each statistic's values over the whole real recording (for plots)."""
    generated_values: dict[str, np.ndarray]
    facts: dict[str, Any] = field(default_factory=dict)

    def row(self, statistic: str) -> RealismRow:
        """The row of one statistic, by name."""
        for r in self.rows:
            if r.statistic == statistic:
                return r
        raise KeyError(statistic)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready content (NaN and infinity as None)."""
        return {
            "rows": [{k: _json_number(v) for k, v in asdict(r).items()} for r in self.rows],
            "statistics": {s.name: asdict(s) for s in STATISTICS},
            "facts": {k: _json_number(v) for k, v in self.facts.items()},
        }

    def to_json(self) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _json_number(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --- measures --------------------------------------------------------------------------


def van_rossum_distances(counts: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """Pairwise van Rossum distances between spike trains given as counts on a grid.

    Row i holds the spikes (any non-negative weights, e.g. expected counts) at times
    k * dt. Each train is filtered by exp(-t / tau) for t >= 0, and
    D_ij^2 = (2 / tau) * integral of (f_i - f_j)^2 dt: van Rossum's (2001) distance scaled
    as elephant's ``van_rossum_distance`` (one spike against none: 1, so that for a short
    tau D^2 counts the spikes the trains do not share; van Rossum's 1/tau gives 1/2). For
    spikes on the grid it is exact:
    D_ij^2 = sum_kl (a_ik - a_jk)(a_il - a_jl) exp(-|k - l| dt / tau), computed from the
    Gram matrix A K A^T with K applied by one forward and one backward first-order filter
    (no T x T matrix). Two single spikes s apart: sqrt(2 (1 - exp(-s / tau))).
    """
    from scipy.signal import lfilter

    if not (dt > 0 and tau > 0):
        raise CalciumAvaeError(f"dt and tau must be positive, got dt={dt}, tau={tau}")
    a = np.asarray(counts, dtype=np.float64)
    if a.ndim != 2:
        raise CalciumAvaeError(f"counts must be trains x bins (2-D), not {a.ndim}-D")
    r = math.exp(-dt / tau)
    forward = lfilter([1.0], [1.0, -r], a, axis=1)
    backward = lfilter([1.0], [1.0, -r], a[:, ::-1], axis=1)[:, ::-1]
    gram = a @ (forward + backward - a).T  # sum_kl a_ik a_jl r^|k-l|
    diag = np.diag(gram)
    squared = diag[:, None] + diag[None, :] - 2.0 * gram
    return np.sqrt(np.clip(squared, 0.0, None))


def normalised_van_rossum(counts: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """D_ij^2 / (D_i0^2 + D_j0^2): the squared van Rossum distance over the sum of each
    train's squared distance to an empty train, = 1 - 2<f_i, f_j> / (|f_i|^2 + |f_j|^2).

    0 for identical trains, 1 when the filtered trains never overlap, whatever the
    recording's duration or the trains' spike counts, so that recordings of different
    lengths compare (the raw distance grows with the spikes). NaN where both are empty.
    """
    a = np.asarray(counts, dtype=np.float64)
    every = van_rossum_distances(np.vstack([a, np.zeros((1, a.shape[1]))]), dt, tau)
    d, to_empty = every[:-1, :-1], every[-1, :-1]  # the last train is the empty one
    scale = to_empty[:, None] ** 2 + to_empty[None, :] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, d**2 / scale, np.nan)


def bin_counts(spikes: np.ndarray, frames_per_bin: int) -> np.ndarray:
    """Spike counts summed over consecutive bins of ``frames_per_bin`` frames (the last,
    incomplete bin dropped)."""
    n, t = spikes.shape
    k = max(1, int(frames_per_bin))
    m = t // k
    return spikes[:, : m * k].reshape(n, m, k).sum(axis=2)


def _pairwise_correlation(binned: np.ndarray) -> np.ndarray:
    """Pearson r between rows; NaN where a row is constant."""
    x = binned - binned.mean(axis=1, keepdims=True)
    norm = np.sqrt((x * x).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x @ x.T) / np.outer(norm, norm)
    r[~np.isfinite(r)] = np.nan
    return r


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _bursts(binned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per burst: its neuron and its spikes (runs of active bins with enough spikes)."""
    owners, sizes = [], []
    for i, row in enumerate(binned):
        starts, ends = _runs(row >= BURST_BIN_SPIKES)
        if not len(starts):
            continue
        totals = np.array([row[s:e].sum() for s, e in zip(starts, ends, strict=True)])
        keep = totals >= BURST_MIN_SPIKES
        owners.append(np.full(int(keep.sum()), i))
        sizes.append(totals[keep])
    if not owners:
        return np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(owners), np.concatenate(sizes)


def as_dff(data: np.ndarray, input_kind: str) -> np.ndarray:
    """Traces as dF/F: raw fluorescence over its baseline F0 (20th percentile per row);
    dF/F as given."""
    x = np.asarray(data, dtype=np.float64)
    if input_kind != "raw":
        return x
    f0 = np.percentile(x, 20, axis=1, keepdims=True)
    return (x - f0) / f0


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    return np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, x)


def trace_events(dff: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per event: its neuron and its peak dF/F above the baseline.

    The trace is smoothed over ``EVENT_SMOOTH_S``; its baseline is the 20th percentile
    and its noise SD the white-noise SD (from frame-to-frame differences, robust to
    transients) reduced by the smoothing; an event is a peak at least ``EVENT_SD`` noise
    SDs above the baseline and as prominent.
    """
    from scipy.signal import find_peaks

    width = max(1, round(EVENT_SMOOTH_S * frame_rate))
    smooth = _moving_average(dff, width)
    owners, amplitudes = [], []
    for i, (raw, row) in enumerate(zip(dff, smooth, strict=True)):
        d = np.diff(raw)
        sd = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0) / math.sqrt(width)
        base = np.percentile(row, 20)
        if not sd > 0:
            continue
        peaks, _ = find_peaks(row, height=base + EVENT_SD * sd, prominence=EVENT_SD * sd)
        owners.append(np.full(len(peaks), i))
        amplitudes.append(row[peaks] - base)
    if not owners:
        return np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(owners), np.concatenate(amplitudes)


def autocorrelation_time(dff: np.ndarray, frame_rate: float) -> np.ndarray:
    """Per row: the lag (s) at which the autocorrelation first falls below 1/e, linearly
    interpolated between frames; NaN if it stays above within half the recording."""
    x = dff - dff.mean(axis=1, keepdims=True)
    n, t = x.shape
    size = 1 << int(2 * t - 1).bit_length()
    spectrum = np.fft.rfft(x, size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, : t // 2]
    out = np.full(n, np.nan)
    level = 1.0 / math.e
    for i in range(n):
        if not acov[i, 0] > 0:
            continue
        acf = acov[i] / acov[i, 0]
        below = np.flatnonzero(acf < level)
        if not len(below):
            continue
        k = below[0]
        frac = (acf[k - 1] - level) / (acf[k - 1] - acf[k])
        out[i] = (k - 1 + frac) / frame_rate
    return out


# --- per-recording statistics ----------------------------------------------------------


@dataclass
class RecordingStatistics:
    """Every statistic of one recording, kept so that any subset of neurons can be drawn.

    Per-neuron values are indexed by neuron, per-pair values are n x n matrices, and
    per-burst and per-event values carry the neuron they belong to.
    """

    n_neurons: int
    per_neuron: dict[str, np.ndarray]
    per_pair: dict[str, np.ndarray]
    per_item: dict[str, tuple[np.ndarray, np.ndarray]]  # (owners, values)
    facts: dict[str, Any]

    def values(self, name: str, neurons: np.ndarray | None = None) -> np.ndarray:
        """The finite values of a statistic over ``neurons`` (all when None); pairs are
        those with both neurons in the subset."""
        idx = np.arange(self.n_neurons) if neurons is None else np.asarray(neurons)
        if name in self.per_neuron:
            v = self.per_neuron[name][idx]
        elif name in self.per_pair:
            sub = self.per_pair[name][np.ix_(idx, idx)]
            v = sub[np.triu_indices(len(idx), k=1)]
        else:
            owners, values = self.per_item[name]
            v = values[np.isin(owners, idx)]
        return v[np.isfinite(v)]


def recording_statistics(
    dff: np.ndarray,
    spikes: np.ndarray,
    frame_rate: float,
    *,
    bin_s: float = DEFAULT_BIN_S,
    tau_s: float = DEFAULT_TAU_S,
) -> RecordingStatistics:
    """All statistics of one recording from its dF/F traces and inferred spikes per frame
    (both neurons x frames)."""
    n, t = spikes.shape
    duration = t / frame_rate
    frames_per_bin = max(1, round(bin_s * frame_rate))
    binned = bin_counts(np.asarray(spikes, dtype=np.float64), frames_per_bin)
    bin_width = frames_per_bin / frame_rate
    # van Rossum on the bins: each spike moves by at most half a bin (<< tau)
    vr = normalised_van_rossum(binned, bin_width, tau_s)
    burst_owner, burst_size = _bursts(binned)
    event_owner, amplitude = trace_events(dff, frame_rate)
    return RecordingStatistics(
        n_neurons=n,
        per_neuron={
            "firing_rate": spikes.sum(axis=1) / duration,
            "burst_rate": np.bincount(burst_owner, minlength=n) / (duration / 60.0),
            "event_rate": np.bincount(event_owner, minlength=n) / (duration / 60.0),
            "autocorrelation_time": autocorrelation_time(dff, frame_rate),
        },
        per_pair={"pairwise_correlation": _pairwise_correlation(binned), "van_rossum": vr},
        per_item={
            "burst_size": (burst_owner, burst_size),
            "event_amplitude": (event_owner, amplitude),
        },
        facts={"frame_rate": frame_rate, "duration_s": duration, "bin_s": bin_width},
    )


# --- the comparison --------------------------------------------------------------------


def _distances(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ks_2samp, wasserstein_distance

    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():  # exact p-values fail on ties; only the statistic is kept
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = float(ks_2samp(a, b).statistic)
    return float(wasserstein_distance(a, b)), ks


def _median(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def compare_statistics(
    real: RecordingStatistics,
    generated: RecordingStatistics,
    *,
    n_splits: int = DEFAULT_SPLITS,
    random_state: int | None = 0,
) -> list[RealismRow]:
    """One row per statistic: distance to the generated set and the split-half yardstick.

    Each split permutes the real neurons into halves A and B and draws as many generated
    neurons as B holds (all of them if there are fewer); the row holds the medians over
    splits of W1(A, generated) and W1(A, B), and their ratio.
    """
    if real.n_neurons < MIN_REAL_NEURONS:
        raise CalciumAvaeError(
            f"the real recording has {real.n_neurons} usable neuron(s); splitting it in "
            f"halves needs at least {MIN_REAL_NEURONS}"
        )
    if generated.n_neurons < 2:
        raise CalciumAvaeError(
            f"the generated recording has {generated.n_neurons} usable neuron(s); pairwise "
            "statistics need at least 2"
        )
    if int(n_splits) < 1:
        raise CalciumAvaeError(f"n_splits must be at least 1, not {n_splits}")
    rng = np.random.default_rng(random_state)
    half = real.n_neurons // 2
    splits = []
    for _ in range(int(n_splits)):
        order = rng.permutation(real.n_neurons)
        a, b = order[:half], order[half:]
        g = rng.choice(generated.n_neurons, min(len(b), generated.n_neurons), replace=False)
        splits.append((a, b, g))
    rows = []
    for stat in STATISTICS:
        to_gen, to_half = [], []
        for a, b, g in splits:
            va = real.values(stat.name, a)
            to_gen.append(_distances(va, generated.values(stat.name, g)))
            to_half.append(_distances(va, real.values(stat.name, b)))
        distance = _median(d for d, _ in to_gen)
        yardstick = _median(d for d, _ in to_half)
        if yardstick > 0:
            ratio = distance / yardstick
        else:
            ratio = 1.0 if distance == 0 else (math.inf if distance > 0 else math.nan)
        all_real, all_gen = real.values(stat.name), generated.values(stat.name)
        rows.append(
            RealismRow(
                statistic=stat.name,
                unit=stat.unit,
                source=stat.source,
                distance=distance,
                yardstick=yardstick,
                ratio=ratio,
                ks=_median(k for _, k in to_gen),
                ks_yardstick=_median(k for _, k in to_half),
                n_real=len(all_real),
                n_generated=len(all_gen),
                real_median=float(np.median(all_real)) if len(all_real) else math.nan,
                generated_median=float(np.median(all_gen)) if len(all_gen) else math.nan,
            )
        )
    return rows


def _frame_rate(traces: Traces, what: str) -> float:
    if traces.rate:
        return float(traces.rate)
    steps = np.diff(np.asarray(traces.timestamps if traces.timestamps is not None else []))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if not len(steps):
        raise CalciumAvaeError(f"the {what} recording has neither a frame rate nor timestamps")
    return float(1.0 / np.median(steps))


def _usable(traces: Traces, what: str) -> np.ndarray:
    data = np.asarray(traces.data, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(data).all(axis=1) & (np.ptp(np.nan_to_num(data), axis=1) > 0)
    if not keep.all():
        warnings.warn(
            f"{int((~keep).sum())} of {len(keep)} ROI(s) of the {what} recording are flat or "
            "not finite; left out",
            CalciumAvaeWarning,
            stacklevel=3,
        )
    return data[keep]


def infer(traces: Traces, estimator: Any = None, *, what: str = "real") -> dict[str, Any]:
    """A recording's usable traces as dF/F, its inferred spikes and frame rate.

    ``estimator``: a ``SpikeInference`` (cloned and given the recording's frame rate);
    its defaults when None.
    """
    from sklearn.base import clone

    from ..spikes import SpikeInference

    rate = _frame_rate(traces, what)
    data = _usable(traces, what)
    if not len(data):
        raise CalciumAvaeError(f"the {what} recording has no usable traces")
    model = clone(estimator if estimator is not None else SpikeInference())
    model.set_params(frame_rate=rate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spikes = np.asarray(model.fit_transform(data), dtype=np.float64)
    for w in caught:  # say which of the two recordings a warning is about
        warnings.warn(f"{what} recording: {w.message}", w.category, stacklevel=2)
    return {
        "dff": as_dff(data, model.input_kind_),
        "spikes": spikes,
        "frame_rate": rate,
        "input_kind": model.input_kind_,
    }


def compare_recordings(
    real: Traces,
    generated: Traces,
    *,
    estimator: Any = None,
    n_splits: int = DEFAULT_SPLITS,
    bin_s: float = DEFAULT_BIN_S,
    tau_s: float = DEFAULT_TAU_S,
    random_state: int | None = 0,
) -> RealismReport:
    """The realism report of ``generated`` next to ``real``: infer spikes from both, compute
    every statistic, compare each pair of distributions against the split-half yardstick.

    Two sets of traces in Python: ``Traces(data, rate=frames_per_second)`` each (neurons x
    frames, dF/F or raw fluorescence; the spike inference tells which).
    """
    if not (bin_s > 0 and tau_s > 0):
        raise CalciumAvaeError(f"bin_s and tau_s must be positive, got {bin_s} and {tau_s}")
    sides = {}
    for what, traces in (("real", real), ("generated", generated)):
        inferred = infer(traces, estimator, what=what)
        sides[what] = (
            recording_statistics(
                inferred["dff"],
                inferred["spikes"],
                inferred["frame_rate"],
                bin_s=bin_s,
                tau_s=tau_s,
            ),
            inferred["input_kind"],
        )
    (real_stats, real_kind), (gen_stats, gen_kind) = sides["real"], sides["generated"]
    rows = compare_statistics(real_stats, gen_stats, n_splits=n_splits, random_state=random_state)
    facts: dict[str, Any] = {
        "distance": "Wasserstein-1 (in the statistic's unit); ks: two-sample KS statistic",
        "yardstick": "the same distance between random halves of the real neurons",
        "n_splits": int(n_splits),
        "tau_s": tau_s,
        "random_state": random_state,
    }
    for what, stats, kind in (
        ("real", real_stats, real_kind),
        ("generated", gen_stats, gen_kind),
    ):
        facts[f"{what}_neurons"] = stats.n_neurons
        facts[f"{what}_input_kind"] = kind
        for key, value in stats.facts.items():
            facts[f"{what}_{key}"] = value
    return RealismReport(
        rows=rows,
        real_values={s.name: real_stats.values(s.name) for s in STATISTICS},
        generated_values={s.name: gen_stats.values(s.name) for s in STATISTICS},
        facts=facts,
    )


def circular_shift(traces: Traces, random_state: int | None = 0) -> Traces:
    """The independent-neuron baseline: each neuron's trace rolled in time by its own
    random shift. Every neuron keeps its trace (rate, events, kinetics); correlations
    between neurons are broken."""
    rng = np.random.default_rng(random_state)
    data = np.asarray(traces.data)
    t = data.shape[1]
    shifted = np.stack([np.roll(row, int(rng.integers(t))) for row in data])
    return Traces(data=shifted, rate=_frame_rate(traces, "real"), unit=traces.unit)


# --- outputs ---------------------------------------------------------------------------


def _fmt(value: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "—" if math.isnan(value) else "∞"
    return f"{value:.{digits}g}"


def report_markdown(report: RealismReport, *, real_name: str, generated_name: str) -> str:
    """The report's table as markdown, with what its columns mean."""
    f = report.facts
    lines = [
        "# Realism report",
        "",
        f"Real: `{real_name}` ({f['real_neurons']} neurons, {f['real_duration_s']:.0f} s at "
        f"{f['real_frame_rate']:g} Hz). Generated: `{generated_name}` "
        f"({f['generated_neurons']} neurons, {f['generated_duration_s']:.0f} s at "
        f"{f['generated_frame_rate']:g} Hz).",
        "",
        "| statistic | unit | from | distance (W1) | yardstick (W1) | ratio | KS | KS yardstick"
        " | median real | median generated | n real | n generated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.statistic} | {r.unit} | {r.source} | {_fmt(r.distance)} | "
            f"{_fmt(r.yardstick)} | {_fmt(r.ratio)} | {_fmt(r.ks)} | {_fmt(r.ks_yardstick)} | "
            f"{_fmt(r.real_median)} | {_fmt(r.generated_median)} | {r.n_real} | "
            f"{r.n_generated} |"
        )
    lines += [
        "",
        f"distance: median over {f['n_splits']} random splits of the Wasserstein-1 distance "
        "between half A of the real neurons and as many generated neurons as half B holds; "
        "yardstick: the same between halves A and B; ratio = distance / yardstick (about 1: "
        "as close to the recording as it is to itself). KS: the two-sample "
        "Kolmogorov-Smirnov statistic, same splits.",
        f"Spike statistics come from the inferred spikes (SpikeInference); correlations and "
        f"bursts in bins of {f['real_bin_s']:.3g} s (real) and {f['generated_bin_s']:.3g} s "
        f"(generated); van Rossum tau {f['tau_s']:g} s.",
        "",
        "| statistic | what it is |",
        "|---|---|",
        *(f"| {s.name} | {s.description} |" for s in STATISTICS),
        "",
    ]
    return "\n".join(lines)


def report_figure(report: RealismReport, *, real_name: str = "real", generated_name: str = ""):
    """One panel per statistic: the two empirical CDFs, with distance and yardstick."""
    from matplotlib.figure import Figure

    n = len(STATISTICS)
    cols = 4
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, stat in zip(axes, STATISTICS, strict=False):
        row = report.row(stat.name)
        for values, label, color in (
            (report.real_values[stat.name], real_name, "tab:blue"),
            (report.generated_values[stat.name], generated_name or "generated", "tab:orange"),
        ):
            if len(values):
                x = np.sort(values)
                ax.step(
                    x,
                    np.arange(1, len(x) + 1) / len(x),
                    where="post",
                    color=color,
                    label=f"{label} (n={len(x)})",
                )
        ax.set_title(
            f"{stat.name}\nW1 {_fmt(row.distance)} vs split-half {_fmt(row.yardstick)} "
            f"(x{_fmt(row.ratio, 2)})",
            fontsize=9,
        )
        ax.set_xlabel(stat.unit, fontsize=8)
        ax.set_ylabel("fraction", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig
