"""Synthetic population recordings from a fitted model (issue 17, after seed 003's aim).

A :class:`PopulationGenerator` is fitted to one recording and keeps three things:

- **each neuron's calcium observation model** (seed 002, ``model/calcium.py``): AR kinetics,
  gain per spike, noise SD and baseline. :class:`spikes.SpikeInference` fits them for
  every neuron (and alone for ``population="none"``); with states, by default the calcium
  HMM's own, fitted jointly with its rates, are kept (``kinetics``);
- **when neurons fire together**: the calcium HMM of ``population.hmm.CalciumHMM`` (K
  population states, a Poisson rate per neuron in each, a transition matrix);
- **the neurons' distribution**: generated neurons are the fitted ones, each used
  equally often (the recording's mix); the first copy of a neuron is exact, later copies
  have their rate, gain, noise and decay time multiplied by log-normal jitter.

``generate`` samples one state sequence (shared by every neuron, which is what keeps the
pairwise correlations and co-activation), the spikes of each neuron per frame given the
state, and passes them through the neuron's calcium model:

    c_t = sum_i gamma_i c_{t-i} + gain * s_t + eps_t,  eps_t ~ N(0, sd_ar^2)
    y_t = b + c_t + w_t,                                w_t ~ N(0, sd_w^2)

The spikes given the state come from ``spike_model``. "segments" (the default) is a
state-conditioned block bootstrap (after the moving-block bootstrap, Kunsch 1989): the
chain's state at a block's start picks a random recorded frame in that state, and the
population's inferred spikes (the spike inference's, in every neuron's gain units) are
copied from there in recording order, for as long as the chain stays in the state but at
least ``segment_s``. It keeps what a Poisson rate per state cannot: each neuron's own
event sizes (a few large events among many small ones) and which neurons fire together,
in what order, within a burst. "poisson" draws Poisson counts from each neuron's rate in
the state.
Segments carry expected spikes per frame, which need not be whole: the drive is
``gain * s`` with the segment's value, and the ground-truth count is that value rounded
at random (equal to it on average).

Seed 002's likelihood feeds all noise through the AR process (sd_w = 0); the fit splits
the noise it found into that part and white measurement noise (:func:`split_noise`) from
the innovations' lag-1 covariance, because recordings carry both and the split changes
how often noise alone makes an event. By default (``noise="white"``) only the white part
is generated (sd_ar = 0): a decay misread by the state model leaves slow signal in the
innovations, which the split reads as AR-fed noise and which then makes events of noise
alone. The noise-free trace is ``b`` plus the AR process driven by ``gain * s_t`` alone.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import CalciumAvaeError, CalciumAvaeWarning

#: Version of the saved generator format (a .npz of arrays plus a JSON ``config``).
FORMAT_VERSION = 2
#: Kinds of population model ``population`` accepts.
POPULATION_KINDS = ("states", "none")
#: Whose per-neuron kinetics go with the states' rates (see PopulationGenerator).
KINETICS = ("states", "spikes", "mixed")
#: How generated traces are made noisy (see PopulationGenerator).
NOISE_MODELS = ("white", "split")
#: Where the spikes given the state come from (see PopulationGenerator).
SPIKE_MODELS = ("segments", "poisson")
#: Burn-in before the first generated frame, in decay time constants of the slowest neuron,
#: so that frame 0 already carries the calcium of earlier spikes.
_BURN_IN_TAUS = 5.0
#: Neurons simulated at a time (bounds the per-chunk float64 arrays).
_CHUNK_NEURONS = 128


@dataclass
class GeneratedRecording:
    """A generated population recording with its ground truth (neurons x frames)."""

    traces: np.ndarray
    """(neurons, frames) float32 fluorescence, in the fitted recording's units."""
    noise_free: np.ndarray
    """(neurons, frames) float32: the same without noise."""
    spikes: np.ndarray
    """(neurons, frames) int32 spike counts per frame (the ground truth)."""
    states: np.ndarray
    """(frames,) int population state per frame; (neurons, frames) for independent neurons.
    With segments: the fitted state of the recorded frame copied into each frame (of the
    first pass over the fitted neurons; later copies draw their own blocks)."""
    frame_rate: float
    neurons: dict[str, np.ndarray] = field(default_factory=dict)
    """Per generated neuron: template (fitted neuron), copy, decay_s, gain, noise_sd,
    baseline, firing_rate_hz (expected)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """How it was generated (seed, model, sizes), for provenance."""

    @property
    def n_neurons(self) -> int:
        return int(self.traces.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.traces.shape[1])

    def spike_times(self, seed: int | None = 0, resolution_s: float = 0.001) -> list[np.ndarray]:
        """Spike times (s) per neuron: each of a frame's k spikes at a uniform random time
        within that frame, on a grid of ``resolution_s`` from the frame's start and never
        on its edges (so every time falls in its own frame whatever the rounding)."""
        rng = np.random.default_rng(seed)
        steps = max(2, int(np.floor(1.0 / (self.frame_rate * resolution_s))))
        out = []
        for counts in self.spikes:
            frames = np.repeat(np.arange(counts.size), counts)
            offsets = rng.integers(1, steps, frames.size) * resolution_s
            if steps == 2:  # frames shorter than two grid steps: the frame's middle
                offsets = np.full(frames.size, 0.5 / self.frame_rate)
            out.append(np.sort(frames / self.frame_rate + offsets))
        return out

    def to_traces(self):
        """The generated fluorescence as a :class:`Traces` (ground truth in its roi_table)."""
        import pandas as pd

        from ..traces import Traces

        return Traces(
            data=self.traces,
            rate=self.frame_rate,
            roi_table=pd.DataFrame({k: np.asarray(v) for k, v in self.neurons.items()}),
        )


def _stationary(transmat: np.ndarray) -> np.ndarray:
    """The chain's stationary distribution (left eigenvector of eigenvalue 1)."""
    k = transmat.shape[0]
    if k == 1:
        return np.ones(1)
    a = np.vstack([transmat.T - np.eye(k), np.ones((1, k))])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0, None)
    return pi / pi.sum()


def resample_transitions(transmat: np.ndarray, factor: float) -> np.ndarray:
    """The transition matrix for frames ``factor`` times as long (the new frame interval
    over the fitted one).

    The chain is read as a continuous-time one that leaves state k at the rate
    -log(P_kk) / dt and then jumps to j with probability P_kj / (1 - P_kk): its dwell
    times are kept in seconds, whatever the frame rate."""
    p = np.asarray(transmat, dtype=np.float64)
    k = p.shape[0]
    if k == 1 or factor == 1.0:
        return p.copy()
    stay = np.clip(np.diag(p), 1e-12, 1 - 1e-12)
    new_stay = stay**factor
    jump = p.copy()
    np.fill_diagonal(jump, 0.0)
    sums = jump.sum(1, keepdims=True)
    jump = np.where(sums > 0, jump / np.where(sums > 0, sums, 1.0), 1.0 / max(k - 1, 1))
    np.fill_diagonal(jump, 0.0)
    out = jump * (1 - new_stay)[:, None]
    out[np.diag_indices(k)] = new_stay
    return out / out.sum(1, keepdims=True)


def _sample_chain(
    cum: np.ndarray, start: np.ndarray, n_frames: int, rng: np.random.Generator, n_chains: int
) -> np.ndarray:
    """(n_chains, n_frames) state sequences of the chain with cumulative rows ``cum``."""
    k = cum.shape[0]
    out = np.empty((n_chains, n_frames), dtype=np.int32)
    if k == 1:
        out[:] = 0
        return out
    u = rng.random((n_frames, n_chains))
    state = np.searchsorted(np.cumsum(start), u[0] * np.cumsum(start)[-1], side="right")
    state = np.minimum(state, k - 1)
    out[:, 0] = state
    for t in range(1, n_frames):
        rows = cum[state]  # (chains, K)
        state = np.minimum((rows < u[t][:, None]).sum(1), k - 1)
        out[:, t] = state
    return out


class PopulationGenerator(BaseEstimator):
    """Generates population recordings that keep a fitted recording's neurons and their
    co-activation (issue 17).

    Parameters
    ----------
    population : "states" or "none"
        "states": a calcium HMM (``population.hmm.CalciumHMM``) drives every neuron from one
        shared state sequence. "none": per-neuron fits only, which can generate
        independent neurons but not a population.
    n_states : int or "auto"
        States of the calcium HMM ("auto" chooses K by held-out likelihood: slow).
    ar_order : 1 or 2
        AR order of the calcium process.
    jitter : float
        SD of the log-normal factors on the rate, gain, noise and decay time of every copy
        of a fitted neuron after its first (0: copies are exact, so at most as many
        neurons as were fitted can be generated).
    max_copies : int
        Most times one fitted neuron may be drawn: asking for more than
        ``max_copies`` x fitted neurons is refused (the population would be mostly copies
        of a few neurons, each copy as correlated with its siblings as with itself).
    kinetics : "spikes", "states" or "mixed"
        Whose per-neuron decay, gain and noise are generated with: the spike inference's
        ("spikes", the default: the recorded spikes that segments copy were inferred with
        them), with each neuron's rates per state rescaled to its mean rate; the calcium
        HMM's, fitted jointly with its rates ("states"; its decay is too short where the
        states absorb slow calcium, 0.16 s against GCaMP6s's 1 s on a simulated culture);
        "mixed" takes the HMM's decay with the spike inference's gain, noise and rates.
    noise : "white" or "split"
        Noise of the generated traces: the white measurement part of each neuron's noise
        only ("white", the default), or that plus the part fed through the AR process
        ("split", seed 002's model; see :func:`split_noise`).
    spike_model : "segments" or "poisson"
        Spikes given the state: blocks of the recording's inferred spikes, each starting at
        a random frame of the chain's current state ("segments", the default: each neuron's
        own event sizes, and which neurons fire together and in what order, are kept), or
        Poisson counts from each neuron's rate in the state ("poisson"). The fitted
        generator holds both.
    segment_s : float
        Shortest block of recorded spikes that segments copy (s): the chain's states
        within a block are skipped, so that a network burst that flickers between states
        is copied whole.
    spike_iter : int or None
        Iterations of the spike inference (its ``max_iter``; None: its default).
    hmm_iter : int or None
        Most EM iterations of the calcium HMM (its ``n_iter``; None: its default).
    device : str
        Device for the spike inference and the HMM ("auto", "cpu", "cuda", "mps").
    random_state : int or None
        Seed of the fits.
    verbose : bool
        Progress of the fits.

    Fitted attributes: ``frame_rate_``, ``n_neurons_``, ``input_kind_``, ``roots_``
    (neurons, p) AR roots, ``gain_``, ``noise_sd_`` (the innovation SD), ``ar_noise_sd_``
    and ``white_noise_sd_`` (its split), ``baseline_`` (neurons,: the level that gives
    each neuron its recorded mean fluorescence with Poisson counts at ``rate_``;
    ``mean_level_`` that mean, from which segments set their own), ``recorded_spikes_``
    (neurons, frames) float32, the spike inference's expected spikes per frame, ``recorded_states_``
    (frames,) the fitted state of each frame (most probable; 0 without states), ``rate_``
    (spikes per frame, the spike inference's), ``state_rates_`` (K, neurons) spikes per
    frame, ``transmat_`` (K, K), ``occupancy_`` (K,) stationary share of each state,
    ``has_population_``, ``rows_used_`` (bool, the recording's rows fitted), ``source_``
    (facts about the fitted recording: name, species, indicator...).
    """

    def __init__(
        self,
        population: str = "states",
        n_states: int | str = 8,
        ar_order: int = 1,
        jitter: float = 0.1,
        max_copies: int = 20,
        kinetics: str = "spikes",
        noise: str = "white",
        spike_model: str = "segments",
        segment_s: float = 2.0,
        spike_iter: int | None = None,
        hmm_iter: int | None = None,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.population = population
        self.n_states = n_states
        self.ar_order = ar_order
        self.jitter = jitter
        self.max_copies = max_copies
        self.kinetics = kinetics
        self.noise = noise
        self.spike_model = spike_model
        self.segment_s = segment_s
        self.spike_iter = spike_iter
        self.hmm_iter = hmm_iter
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting --------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.population not in POPULATION_KINDS:
            raise CalciumAvaeError(
                f"population must be one of {', '.join(POPULATION_KINDS)}, not {self.population!r}"
            )
        if not float(self.jitter) >= 0:
            raise CalciumAvaeError(f"jitter must be >= 0, not {self.jitter!r}")
        if self.noise not in NOISE_MODELS:
            raise CalciumAvaeError(
                f"noise must be one of {', '.join(NOISE_MODELS)}, not {self.noise!r}"
            )
        if self.spike_model not in SPIKE_MODELS:
            raise CalciumAvaeError(
                f"spike_model must be one of {', '.join(SPIKE_MODELS)}, not {self.spike_model!r}"
            )
        if not float(self.segment_s) > 0:
            raise CalciumAvaeError(f"segment_s must be positive, not {self.segment_s!r}")
        if self.kinetics not in KINETICS:
            raise CalciumAvaeError(
                f"kinetics must be one of {', '.join(KINETICS)}, not {self.kinetics!r}"
            )
        if int(self.max_copies) < 1:
            raise CalciumAvaeError(f"max_copies must be at least 1, not {self.max_copies!r}")

    def fit(self, X: Any, frame_rate: float | None = None) -> PopulationGenerator:
        """Fit each neuron's calcium model and, with ``population="states"``, the state
        model, to X: a :class:`Traces` (its rate is used) or an array (neurons x frames)
        with ``frame_rate``."""
        from ..population.hmm import CalciumHMM
        from ..spikes import SpikeInference
        from ..traces import Traces

        self._check_params()
        source: dict[str, Any] = {}
        if isinstance(X, Traces):
            frame_rate = frame_rate or X.rate
            if X.source_file is not None:
                from .nwb import recording_facts

                source = recording_facts(X)
            data = np.asarray(X.data)
        else:
            data = np.asarray(X)
        if data.ndim != 2:
            raise CalciumAvaeError(f"X must be neurons x frames (2-D), not {data.ndim}-D")
        if frame_rate is None or not float(frame_rate) > 0:
            raise CalciumAvaeError(
                "the recording has no frame rate; pass frame_rate (frames per second)"
            )
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(data)
            usable = finite.all(1) & (np.nanmax(data, 1) > np.nanmin(data, 1))
        if not usable.all():
            warnings.warn(
                f"{int((~usable).sum())} of {len(usable)} ROI(s) are flat or not finite; "
                "the generator leaves them out",
                CalciumAvaeWarning,
                stacklevel=2,
            )
        data = data[usable]
        if data.shape[0] < 2:
            raise CalciumAvaeError(
                f"a population generator needs at least 2 usable ROIs, not {data.shape[0]}"
            )
        rate = float(frame_rate)
        if self.verbose:
            _say(f"fitting each neuron's calcium model ({data.shape[0]} neurons)")
        with warnings.catch_warnings():
            # neurons without spikes are kept: they are part of the recording's mix
            warnings.filterwarnings("ignore", message=".*show no spikes above the noise.*")
            spikes = SpikeInference(
                ar_order=self.ar_order,
                frame_rate=rate,
                # the generator's traces have a constant baseline per neuron, so its spikes
                # must explain all the rest: a running baseline would keep slow calcium
                detrend_s=None,
                device=self.device,
                **({} if self.spike_iter is None else {"max_iter": int(self.spike_iter)}),
                random_state=self.random_state,
                verbose=self.verbose,
            ).fit(data)
        self.frame_rate_ = rate
        self.n_neurons_ = int(data.shape[0])
        self.n_frames_fitted_ = int(data.shape[1])
        self.rows_used_ = usable
        self.input_kind_ = spikes.input_kind_
        self.source_ = source
        self.spike_roots_ = np.asarray(spikes.roots_, dtype=np.float64)
        self.spike_gain_ = np.asarray(spikes.gain_, dtype=np.float64)
        self.spike_noise_sd_ = np.asarray(spikes.noise_sd_, dtype=np.float64)
        self.spike_rate_ = np.maximum(np.asarray(spikes.rate_, dtype=np.float64), 1e-6)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*show no spikes above the noise.*")
            recorded = np.asarray(spikes.transform(data), dtype=np.float32)
        self.recorded_spikes_ = np.where(recorded > 0, recorded, np.float32(0))
        self.recorded_states_ = np.zeros(data.shape[1], dtype=np.int32)
        self.has_population_ = self.population == "states"
        if self.has_population_:
            if self.verbose:
                _say(f"fitting the population states (calcium HMM, K = {self.n_states})")
            hmm = CalciumHMM(
                n_states=self.n_states,
                ar_order=self.ar_order,
                **({} if self.hmm_iter is None else {"n_iter": int(self.hmm_iter)}),
                random_state=self.random_state,
                device=self.device,
            ).fit(data, frame_rate=rate)
            self.hmm_rates_ = np.asarray(hmm.rates_, dtype=np.float64)
            self.hmm_roots_ = _roots_from_ar(np.asarray(hmm.decay_, dtype=np.float64))
            self.hmm_gain_ = np.asarray(hmm.gain_, dtype=np.float64)
            self.hmm_noise_sd_ = np.asarray(hmm.noise_sd_, dtype=np.float64)
            occupancy = hmm.state_probabilities_.mean(0)
            self.occupancy_ = occupancy / occupancy.sum()
            self.transmat_ = np.asarray(hmm.transmat_, dtype=np.float64)
            self.recorded_states_ = hmm.state_probabilities_.argmax(1).astype(np.int32)
        else:
            self.hmm_rates_ = self.spike_rate_[None, :].copy()
            self.hmm_roots_ = self.spike_roots_
            self.hmm_gain_ = self.spike_gain_
            self.hmm_noise_sd_ = self.spike_noise_sd_
            self.transmat_ = np.ones((1, 1))
            self.occupancy_ = np.ones(1)
        self._assemble(data)
        return self

    def _assemble(self, data: np.ndarray) -> None:
        """The generating neurons from the two fits, as ``kinetics`` says; then the baseline
        and the noise split, which need the recording (its rows used)."""
        rates = self.hmm_rates_
        mean = self.occupancy_ @ rates
        if self.kinetics == "states" and self.has_population_:
            # the HMM's own kinetics, gain and noise, with which its rates were fitted: its
            # states explain slow changes of rate that a single rate per neuron can only
            # read as a longer decay
            roots, gain, noise = self.hmm_roots_, self.hmm_gain_, self.hmm_noise_sd_
            self.rate_ = np.maximum(mean, 1e-6)
        else:
            # the spike inference's gain and noise, and its mean rate per neuron (the
            # states' rates rescaled to it); "mixed" takes the HMM's decay
            roots = self.hmm_roots_ if self.kinetics == "mixed" else self.spike_roots_
            gain, noise = self.spike_gain_, self.spike_noise_sd_
            rates = rates * (self.spike_rate_ / np.maximum(mean, 1e-12))[None, :]
            self.rate_ = self.spike_rate_
        self.state_rates_ = rates
        self.roots_, self.gain_, self.noise_sd_ = roots, gain, noise
        self.mean_level_ = data.astype(np.float64).mean(1)
        decay = _ar_from_roots(roots)
        mean_calcium = gain * self.rate_ / np.maximum(1.0 - decay.sum(1), 1e-6)
        self.baseline_ = self.mean_level_ - mean_calcium
        self.ar_noise_sd_, self.white_noise_sd_ = split_noise(data, decay, self.baseline_, noise)

    # -- generating -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "state_rates_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this PopulationGenerator is not fitted yet; call fit first")

    def max_neurons(self) -> int:
        """The most neurons :meth:`generate` draws: each fitted neuron at most
        ``max_copies`` times, or once when ``jitter`` is 0."""
        self._check_fitted()
        copies = int(self.max_copies) if float(self.jitter) > 0 else 1
        return self.n_neurons_ * copies

    def generate(
        self,
        n_neurons: int | None = None,
        duration_s: float | None = None,
        *,
        frame_rate: float | None = None,
        seed: int | None = 0,
        independent: bool = False,
        progress: Any = None,
    ) -> GeneratedRecording:
        """Generate ``n_neurons`` (default: as many as fitted) for ``duration_s`` seconds
        (default: the fitted recording's length) at ``frame_rate`` (default: the fitted
        one).

        ``independent=True`` is the no-coupling baseline: each neuron gets its own state
        sequence from the same chain, so it keeps its rates per state and its burstiness
        while the co-activation between neurons is lost. ``progress(done, total, text)``
        is called per block of neurons.
        """
        self._check_fitted()
        self._check_params()
        if not self.has_population_ and not independent:
            raise CalciumAvaeError(
                "this generator has no population model (fitted with population='none'), so "
                "it cannot keep co-activation; fit it with population='states' first "
                "(calcium-avae generate --fit RECORDING), or ask for independent neurons"
            )
        n_fit = self.n_neurons_
        n = n_fit if n_neurons is None else int(n_neurons)
        if n < 1:
            raise CalciumAvaeError(f"the number of neurons must be at least 1, not {n}")
        if n > self.max_neurons():
            per = self.max_neurons() // n_fit
            need = math.ceil(n / per)
            why = (
                "with jitter 0 each is drawn once"
                if float(self.jitter) == 0
                else f"each is drawn at most {per} times (max_copies)"
            )
            raise CalciumAvaeError(
                f"{n} neurons are more than this generator can draw ({self.max_neurons()}): "
                f"it was fitted on {n_fit} neurons and {why}; fit it on a recording with at "
                f"least {need} neurons first, or ask for at most {self.max_neurons()}"
            )
        rate = float(frame_rate or self.frame_rate_)
        if not rate > 0:
            raise CalciumAvaeError(f"frame_rate must be positive, not {frame_rate!r}")
        duration = float(
            self.n_frames_fitted_ / self.frame_rate_ if duration_s is None else duration_s
        )
        n_frames = round(duration * rate)
        if n_frames < 1:
            raise CalciumAvaeError(
                f"duration {duration:g} s is shorter than one frame at {rate:g} Hz"
            )
        rng = np.random.default_rng(seed)

        # which fitted neuron each generated one copies: every neuron once per pass
        passes = math.ceil(n / n_fit)
        template = np.concatenate([rng.permutation(n_fit) for _ in range(passes)])[:n]
        copy = np.repeat(np.arange(passes), n_fit)[:n]
        jit = float(self.jitter)

        def factor() -> np.ndarray:
            f = np.exp(rng.normal(0.0, jit, n)) if jit > 0 else np.ones(n)
            return np.where(copy > 0, f, 1.0)

        f_rate, f_gain, f_noise, f_tau = factor(), factor(), factor(), factor()

        # the fitted model in seconds, then at the new frame interval
        dt_old, dt_new = 1.0 / self.frame_rate_, 1.0 / rate
        roots = np.clip(self.roots_[template], 1e-9, 1 - 1e-9)
        tau_s = -dt_old / np.log(roots)  # (n, p)
        tau_s[:, 0] *= f_tau
        new_roots = np.exp(-dt_new / tau_s)
        gain = self.gain_[template] * f_gain
        # the AR-fed noise keeps its stationary SD (judged on the decay root)
        r0, r1 = roots[:, 0], new_roots[:, 0]
        stretch = np.sqrt((1 - r1**2) / np.maximum(1 - r0**2, 1e-12))
        fed = self.ar_noise_sd_ if self.noise == "split" else np.zeros(n_fit)
        noise = fed[template] * f_noise * stretch
        white = self.white_noise_sd_[template]
        if self.noise == "white":  # a neuron whose split found no white part: all of it
            white = np.where(white > 0, white, self.noise_sd_[template])
        white = white * f_noise
        baseline = self._baseline()[template]
        state_rates = self.state_rates_[:, template] * f_rate[None, :] * (dt_new / dt_old)
        transmat = resample_transitions(self.transmat_, dt_new / dt_old)
        start = _stationary(transmat)
        cum = np.cumsum(transmat, 1)
        cum[:, -1] = 1.0

        burn = int(min(np.ceil(_BURN_IN_TAUS * tau_s[:, 0].max() / dt_new), 20 * n_frames))
        total = burn + n_frames
        if independent:
            states = _sample_chain(cum, start, total, rng, n)
        else:
            states = _sample_chain(cum, start, total, rng, 1)[0]
        segments = self.spike_model == "segments"
        if segments:
            source = _SegmentSource(
                self._segment_spikes(),
                self.recorded_states_,
                dt_new / dt_old,
                round(float(self.segment_s) / dt_new),
            )
            # neurons that share a state sequence share their blocks, except copies: each
            # pass over the fitted neurons draws its own, so a copy is not its template again
            plans = {} if independent else {c: source.plan(states, rng) for c in range(passes)}
            if not independent:  # the states of what was copied, not the chain's skipped ones
                states = source.states_of(plans[0])

        import torch

        from ..model.calcium import ar_from_roots

        gamma = ar_from_roots(torch.as_tensor(new_roots)).numpy()
        traces = np.empty((n, n_frames), np.float32)
        clean = np.empty((n, n_frames), np.float32)
        counts = np.empty((n, n_frames), np.int32)
        blocks = list(range(0, n, _CHUNK_NEURONS))
        for i, b0 in enumerate(blocks):
            rows = slice(b0, min(n, b0 + _CHUNK_NEURONS))
            st = states[rows] if independent else states[None, :]
            if segments:
                amount = np.empty((rows.stop - b0, total))
                for j, neuron in enumerate(range(b0, rows.stop)):
                    if independent:
                        plan = source.plan(states[neuron], rng)
                        states[neuron] = source.states_of(plan)
                    else:
                        plan = plans[copy[neuron]]
                    amount[j] = source.drive(template[neuron], plan, total) * f_rate[neuron]
                whole = np.floor(amount)
                s = (whole + (rng.random(amount.shape) < amount - whole)).astype(np.int32)
                drive = amount * gain[rows, None]
            else:
                lam = np.take_along_axis(
                    state_rates[:, rows].T, np.broadcast_to(st, (rows.stop - b0, total)), 1
                )
                s = rng.poisson(lam)
                drive = s * gain[rows, None]
            eps = rng.standard_normal(s.shape) * noise[rows, None]
            c_clean = _ar_filter(drive, gamma[rows])
            c_noisy = _ar_filter(drive + eps, gamma[rows])
            measured = (
                c_noisy[:, burn:] + rng.standard_normal((s.shape[0], n_frames)) * white[rows, None]
            )
            traces[rows] = (baseline[rows, None] + measured).astype(np.float32)
            clean[rows] = (baseline[rows, None] + c_clean[:, burn:]).astype(np.float32)
            counts[rows] = s[:, burn:]
            if progress is not None:
                progress(i + 1, len(blocks), f"{rows.stop} of {n} neurons")
        out_states = states[:, burn:] if independent else states[burn:]
        if segments:
            mean_rate = self._segment_spikes().mean(1)[template] * f_rate * self.frame_rate_
        else:
            mean_rate = (self.occupancy_ @ self.state_rates_)[template] * f_rate * self.frame_rate_
        neurons = {
            "template_neuron": template.astype(np.int64),
            "copy_index": copy.astype(np.int64),
            "decay_s": tau_s[:, 0],
            "gain": gain,
            "noise_sd": noise,
            "white_noise_sd": white,
            "baseline": baseline,
            "firing_rate_hz": mean_rate,
        }
        facts = {
            "generator": "napari_calcium_avae.generate.PopulationGenerator",
            "seed": seed,
            "independent": bool(independent),
            "n_states": int(self.transmat_.shape[0]),
            "fitted_neurons": n_fit,
            "fitted_frame_rate": self.frame_rate_,
            "jitter": jit,
            "spike_model": self.spike_model,
            "segment_s": float(self.segment_s),
            "kinetics": self.kinetics,
            "noise": self.noise,
            "input_kind": self.input_kind_,
        }
        facts.update({f"source_{k}": v for k, v in self.source_.items()})
        return GeneratedRecording(
            traces=traces,
            noise_free=clean,
            spikes=counts,
            states=out_states,
            frame_rate=rate,
            neurons=neurons,
            facts=facts,
        )

    def _baseline(self) -> np.ndarray:
        """The baseline that gives each neuron its recorded mean under ``spike_model``:
        ``baseline_`` for Poisson counts at ``rate_``; with segments, the same from the
        mean of the copied spikes. (A fitted baseline is traded off against slow calcium,
        a decay near 1, and may sit far off.)"""
        if self.spike_model != "segments":
            return self.baseline_
        rate = self._segment_spikes().mean(1, dtype=np.float64)
        decay = _ar_from_roots(self.roots_)
        mean_calcium = self.gain_ * rate / np.maximum(1.0 - decay.sum(1), 1e-6)
        return self.mean_level_ - mean_calcium

    def _segment_spikes(self) -> np.ndarray:
        """The recorded spikes in the generating gains' units (neurons, frames): the drive
        ``gain_ * s`` equals the spike inference's ``spike_gain_ * spikes``."""
        scale = self.spike_gain_ / np.maximum(self.gain_, 1e-12)
        return self.recorded_spikes_ * scale[:, None].astype(np.float32)

    # -- files ----------------------------------------------------------------------------
    _ARRAYS = (
        "rows_used_",
        "spike_roots_",
        "spike_gain_",
        "spike_noise_sd_",
        "spike_rate_",
        "hmm_rates_",
        "hmm_roots_",
        "hmm_gain_",
        "hmm_noise_sd_",
        "roots_",
        "gain_",
        "noise_sd_",
        "ar_noise_sd_",
        "white_noise_sd_",
        "baseline_",
        "mean_level_",
        "rate_",
        "recorded_spikes_",
        "recorded_states_",
        "state_rates_",
        "transmat_",
        "occupancy_",
    )
    _SCALARS = (
        "frame_rate_",
        "n_neurons_",
        "n_frames_fitted_",
        "input_kind_",
        "has_population_",
        "source_",
    )

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fitted generator to ``path`` (.npz: arrays plus a JSON ``config``; no
        pickle), atomically."""
        from .. import __version__
        from ..files import atomic_output

        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            raise CalciumAvaeError(f"a generator file ends in .npz, not {path.name!r}")
        params = self.get_params()
        config = {
            "format": "napari-calcium-avae population generator",
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "params": params,
            "fitted": {k: _jsonable(getattr(self, k)) for k in self._SCALARS},
        }
        arrays = {k.rstrip("_"): np.asarray(getattr(self, k)) for k in self._ARRAYS}
        with atomic_output(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fh:
                # the recorded spikes are mostly zeros: compressed they take little room
                np.savez_compressed(fh, config=np.array(json.dumps(config)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PopulationGenerator:
        """A generator written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise CalciumAvaeError(f"no such file: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                config = json.loads(str(z["config"]))
                if config.get("format") != "napari-calcium-avae population generator":
                    raise CalciumAvaeError(f"{path} is not a population generator file")
                version = int(config.get("format_version", 0))
                if version > FORMAT_VERSION:
                    raise CalciumAvaeError(
                        f"{path} was written by a newer napari-calcium-avae "
                        f"({config.get('package_version')}); upgrade to read it"
                    )
                if version < 2:
                    raise CalciumAvaeError(
                        f"{path} was written before generators kept the recording's spikes; "
                        "fit it again: calcium-avae generate --fit RECORDING"
                    )
                arrays = {k: z[k.rstrip("_")] for k in cls._ARRAYS}
        except (OSError, ValueError, KeyError) as err:
            if isinstance(err, CalciumAvaeError):
                raise
            raise CalciumAvaeError(
                f"{path} is not a generator file (write one with calcium-avae generate "
                f"--fit RECORDING): {err}"
            ) from err
        params = dict(config["params"])
        if isinstance(params.get("n_states"), list):
            params["n_states"] = tuple(params["n_states"])
        model = cls(**params)
        for k, v in config["fitted"].items():
            setattr(model, k, v)
        for k, v in arrays.items():
            setattr(model, k, v)
        model.rows_used_ = model.rows_used_.astype(bool)
        return model


class _SegmentSource:
    """The recorded spikes cut into blocks that the state chain chooses
    (``spike_model="segments"``).

    ``plan`` walks a generated state sequence: a block starts in the chain's current state
    k, at a random frame of the recording that the fit put in k, and copies the recording
    from there, in its own time order, for as long as the chain stays in k but at least
    ``block_frames`` generated frames; the chain's states within a block are skipped. A
    network burst is kept whole (the culture's bursts flicker between states from frame
    to frame, and copying per state dwell cut them into pieces of different bursts). A
    state never most probable in the fit draws from every frame. ``ratio`` is the
    generated frame interval over the recorded one: with ratio < 1 each source frame's
    spikes land in one random generated frame within its span; with ratio > 1 source
    frames are summed."""

    def __init__(
        self, spikes: np.ndarray, states: np.ndarray, ratio: float, block_frames: int
    ) -> None:
        self.spikes = spikes
        self.states = np.asarray(states, dtype=np.int64)
        self.ratio = float(ratio)
        self.block_frames = max(1, int(block_frames))
        self.n_frames = self.states.size
        self.frames = [np.flatnonzero(self.states == k) for k in range(int(self.states.max()) + 1)]
        self.anywhere = np.arange(self.n_frames)

    def plan(self, states: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(source frames, generated frames, first index of each generated frame's run,
        the source frame behind every generated frame)."""
        states = np.asarray(states, dtype=np.int64)
        total = states.size
        changes = np.r_[np.flatnonzero(states[1:] != states[:-1]) + 1, total]
        begins, firsts, lengths = [], [], []
        t = 0
        while t < total:
            k = int(states[t])
            pool = self.frames[k] if k < len(self.frames) and len(self.frames[k]) else None
            pool = self.anywhere if pool is None else pool
            stay = int(changes[np.searchsorted(changes, t, side="right")]) - t
            length = min(max(stay, self.block_frames), total - t)
            begins.append(t)
            firsts.append(int(pool[rng.integers(len(pool))]))
            lengths.append(length)
            t += length
        begins_a, firsts_a, lengths_a = np.array(begins), np.array(firsts), np.array(lengths)
        n_src = np.maximum(1, np.ceil(lengths_a * self.ratio - 1e-9).astype(np.int64))
        block = np.repeat(np.arange(len(begins_a)), n_src)
        offset = np.arange(block.size) - np.repeat(np.cumsum(n_src) - n_src, n_src)
        src = (firsts_a[block] + offset) % self.n_frames
        jitter = rng.random(block.size) if self.ratio < 1 else 0.0
        tgt = begins_a[block] + np.floor((offset + jitter) / self.ratio).astype(np.int64)
        tgt = np.minimum(tgt, begins_a[block] + lengths_a[block] - 1)
        runs = np.flatnonzero(np.r_[True, tgt[1:] != tgt[:-1]])
        at = np.repeat(np.arange(len(begins_a)), lengths_a)
        step = np.arange(total) - begins_a[at]
        behind = (firsts_a[at] + np.floor(step * self.ratio).astype(np.int64)) % self.n_frames
        return src, tgt[runs], runs, behind

    def drive(self, neuron: int, plan: tuple[np.ndarray, ...], total: int) -> np.ndarray:
        """One neuron's spikes per generated frame under ``plan``."""
        src, frames, runs, _ = plan
        out = np.zeros(total)
        out[frames] = np.add.reduceat(self.spikes[neuron, src].astype(np.float64), runs)
        return out

    def states_of(self, plan: tuple[np.ndarray, ...]) -> np.ndarray:
        """The fitted state of the recorded frame behind every generated frame."""
        return self.states[plan[3]]


def split_noise(
    data: np.ndarray, gamma: np.ndarray, baseline: np.ndarray, innovation_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's noise split into a part fed through the AR process and white
    measurement noise, from the innovations e_t = z_t - sum_i gamma_i z_{t-i}.

    Seed 002's likelihood puts all noise through the AR process; real recordings also
    carry white noise, which makes successive innovations anti-correlated: with
    a = (1, -gamma_1, .., -gamma_p), var(e) = s_ar^2 + s_w^2 sum a_i^2 and
    cov(e_t, e_{t-1}) = s_w^2 sum a_i a_{i+1}. Both moments are taken on the frames
    whose innovation is within 3 robust SDs (spikes left out). Returns (s_ar, s_w)."""
    n = data.shape[0]
    ar_sd = np.array(innovation_sd, dtype=np.float64, copy=True)
    white_sd = np.zeros(n)
    for i in range(n):
        a = np.concatenate([[1.0], -gamma[i]])
        z = np.asarray(data[i], dtype=np.float64) - baseline[i]
        e = np.convolve(z, a, mode="valid")
        med = np.median(e)
        mad = 1.4826 * np.median(np.abs(e - med))
        if not mad > 0:
            continue
        ok = np.abs(e - med) < 3 * mad
        both = ok[1:] & ok[:-1]
        if both.sum() < 10:
            continue
        ec = e - e[ok].mean()
        var = float(np.mean(ec[ok] ** 2))
        cov1 = float(np.mean(ec[1:][both] * ec[:-1][both]))
        lag1 = float(np.sum(a[1:] * a[:-1]))
        total = float(np.sum(a**2))
        w2 = cov1 / lag1 if lag1 < 0 else 0.0
        w2 = float(np.clip(w2, 0.0, var / total))
        white_sd[i] = np.sqrt(w2)
        ar_sd[i] = np.sqrt(max(var - w2 * total, 0.0))
    return ar_sd, white_sd


def _ar_from_roots(roots: np.ndarray) -> np.ndarray:
    """AR coefficients (n, p) of roots (n, p), as ``model.calcium.ar_from_roots``."""
    if roots.shape[1] == 1:
        return roots.copy()
    r1, r2 = roots[:, 0], roots[:, 1]
    return np.stack([r1 + r2, -r1 * r2], 1)


def _roots_from_ar(coefficients: np.ndarray) -> np.ndarray:
    """Roots (n, p), decay first, of AR coefficients (n, p): the inverse of the above."""
    if coefficients.shape[1] == 1:
        return np.clip(coefficients, 1e-6, 1 - 1e-6)
    g1, g2 = coefficients[:, 0], coefficients[:, 1]
    disc = np.sqrt(np.maximum(g1**2 + 4 * g2, 0.0))
    return np.clip(np.stack([(g1 + disc) / 2, (g1 - disc) / 2], 1), 1e-6, 1 - 1e-6)


def _ar_filter(x: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """c_t = sum_i gamma_i c_{t-i} + x_t per row (rows have their own coefficients)."""
    from scipy.signal import lfilter

    out = np.empty_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = lfilter([1.0], np.concatenate([[1.0], -gamma[i]]), x[i])
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _say(message: str) -> None:
    import sys

    print(f"{message}…", file=sys.stderr)
