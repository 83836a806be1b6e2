"""Izhikevich network with depressing synapses, event-driven so that it scales.

Between spikes every synaptic output P_j decays with the same time constant, so the total
input ``I = W P`` decays with it too: the simulation keeps ``I`` itself, multiplies it by
exp(-dt / tau_P) each step, and adds the columns of ``W`` of the neurons that just spiked.
The resource R is only needed at a spike, so its recovery is computed then, from the time
since that neuron's previous spike. No step does N x N work.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import CalciumAvaeError

# Table 1 of Abante et al. 2025: (a, b, v0 = c, du = d)
NEURON_TYPES: dict[str, tuple[float, float, float, float]] = {
    "RS": (0.02, 0.2, -65.0, 8.0),
    "IB": (0.02, 0.2, -55.0, 4.0),
    "CH": (0.02, 0.2, -50.0, 2.0),
}
PARAMETER_SD = 0.05
NOISE_SIGMA = 2.25
TAU_P_MS = 10.0
TAU_R_MS = 8000.0
RESOURCE_KEPT = 0.2
V_PEAK = 30.0
_NOISE_BLOCK = 500  # steps of noise drawn at once


@dataclass(frozen=True)
class NeuronParameters:
    """Per-neuron Izhikevich parameters (a, b, v0 = c, du = d)."""

    a: np.ndarray
    b: np.ndarray
    v0: np.ndarray
    du: np.ndarray


def draw_parameters(neuron_type: str, n: int, rng: np.random.Generator) -> NeuronParameters:
    """The type's four values, each multiplied by N(1, 0.05) per neuron."""
    if neuron_type not in NEURON_TYPES:
        known = ", ".join(NEURON_TYPES)
        raise CalciumAvaeError(f"Unknown neuron type {neuron_type!r}; choose one of {known}.")
    base = np.array(NEURON_TYPES[neuron_type])
    values = base[None, :] * rng.normal(1.0, PARAMETER_SD, (n, 4))
    return NeuronParameters(*(values[:, k].copy() for k in range(4)))


def draw_types(shares: Mapping[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """Each of n neurons' type, drawn independently with the given shares (summing to 1)."""
    names = [t for t in NEURON_TYPES if shares.get(t, 0.0) > 0]
    unknown = set(shares) - set(NEURON_TYPES)
    if unknown or not names:
        known = ", ".join(NEURON_TYPES)
        raise CalciumAvaeError(f"A type mix needs shares > 0 of {known}; got {dict(shares)}.")
    p = np.array([shares[t] for t in names], dtype=np.float64)
    return np.array(names)[rng.choice(len(names), n, p=p / p.sum())]


def draw_mixed_parameters(types: np.ndarray, rng: np.random.Generator) -> NeuronParameters:
    """Per-neuron parameters of a mixed culture: each neuron's from its own type
    (``draw_parameters`` on each type's neurons, types in NEURON_TYPES order)."""
    if not np.isin(types, list(NEURON_TYPES)).all():
        raise CalciumAvaeError("Every neuron's type must be one of " + ", ".join(NEURON_TYPES))
    values = np.empty((len(types), 4))
    for name in NEURON_TYPES:
        rows = np.flatnonzero(types == name)
        if rows.size:
            p = draw_parameters(name, rows.size, rng)
            values[rows] = np.column_stack([p.a, p.b, p.v0, p.du])
    return NeuronParameters(*(values[:, k].copy() for k in range(4)))


def gaussian_block(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal float32 samples by Box-Muller: about 3x faster than numpy's
    ``standard_normal`` here, and the noise is the largest cost of a big network."""
    size = shape[0] * shape[1]
    half = (size + 1) // 2
    radius = np.sqrt(-2.0 * np.log1p(-rng.random(half, dtype=np.float32)))
    angle = rng.random(half, dtype=np.float32)
    angle *= np.float32(2 * np.pi)
    out = np.empty(2 * half, dtype=np.float32)
    np.multiply(radius, np.cos(angle), out=out[:half])
    np.multiply(radius, np.sin(angle), out=out[half:])
    return out[:size].reshape(shape)


def simulate_spikes(
    weights: sp.csc_matrix,
    params: NeuronParameters,
    n_steps: int,
    rng: np.random.Generator,
    n_discard: int = 0,
    dt_ms: float = 1.0,
    noise_sigma: float = NOISE_SIGMA,
) -> list[np.ndarray]:
    """Run ``n_discard + n_steps`` steps; spike times (ms) per neuron.

    Times count from the end of the discarded stretch, so spikes of that stretch are
    negative (callers drop them, but their calcium is still in the first frames).
    v is advanced in two half-steps of dt / 2 (as in Izhikevich 2003) with the noise
    sqrt(2 sigma dt) xi added once per step; a neuron spikes when v >= 30 mV. On a spike
    the synaptic output P jumps by the recovered resource R, and R keeps a fifth.
    """
    w = sp.csc_matrix(weights)
    n = w.shape[0]
    a, b, c, d = params.a, params.b, params.v0, params.du
    v = rng.uniform(c, c + 30.0)
    u = b * v
    p0 = rng.random(n)
    resource = rng.random(n)
    current = np.asarray(w @ p0).ravel()
    last_spike = np.zeros(n)
    decay_p = np.exp(-dt_ms / TAU_P_MS)
    half = 0.5 * dt_ms
    noise_scale = np.sqrt(2.0 * noise_sigma * dt_ms)
    indptr, indices, data = w.indptr, w.indices, w.data
    # coefficients folded so that each half-step and the u update take few array passes
    u_keep = 1.0 - a * dt_ms
    u_from_v = a * b * dt_ms
    drive = np.empty(n)
    dv = np.empty(n)
    spike_steps: list[int] = []
    spike_ids: list[np.ndarray] = []
    total = n_discard + n_steps

    def draw(steps: int) -> np.ndarray:
        block = gaussian_block(rng, (steps, n))
        block *= np.float32(noise_scale * half)
        block += np.float32(140.0 * half)
        return block

    # Gaussian draws cost as much as the integration; a second thread makes the next
    # block while this one integrates (one producer, in order: results stay reproducible)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, min(_NOISE_BLOCK, total))
        for t in range(total):
            k = t % _NOISE_BLOCK
            if k == 0:
                noise = pending.result()
                if t + _NOISE_BLOCK < total:
                    pending = pool.submit(draw, min(_NOISE_BLOCK, total - t - _NOISE_BLOCK))
            # drive = half * (140 + I - u + noise)
            np.subtract(current, u, out=drive)
            drive *= half
            drive += noise[k]
            for _ in range(2):
                np.multiply(v, 0.04 * half, out=dv)
                dv += 5.0 * half
                dv *= v
                dv += drive
                v += dv
            u *= u_keep
            np.multiply(v, u_from_v, out=dv)
            u += dv
            current *= decay_p
            fired = np.flatnonzero(v >= V_PEAK)
            if fired.size == 0:
                continue
            v[fired] = c[fired]
            u[fired] += d[fired]
            now = t * dt_ms
            recovered = 1.0 - (1.0 - resource[fired]) * np.exp(
                -(now - last_spike[fired]) / TAU_R_MS
            )
            resource[fired] = RESOURCE_KEPT * recovered
            last_spike[fired] = now
            if fired.size == 1:
                j = fired[0]
                sl = slice(indptr[j], indptr[j + 1])
                current[indices[sl]] += data[sl] * recovered[0]
            else:
                lo, hi = indptr[fired], indptr[fired + 1]
                counts = hi - lo
                m = int(counts.sum())
                shift = np.repeat(lo - np.cumsum(counts) + counts, counts)
                idx = shift + np.arange(m)
                current += np.bincount(
                    indices[idx], data[idx] * np.repeat(recovered, counts), minlength=n
                )
            spike_steps.append(t - n_discard)
            spike_ids.append(fired)
    return _per_neuron(spike_steps, spike_ids, n, dt_ms)


def _per_neuron(steps: list[int], ids: list[np.ndarray], n: int, dt_ms: float) -> list[np.ndarray]:
    if not ids:
        return [np.empty(0) for _ in range(n)]
    counts = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    times = np.repeat(np.asarray(steps, dtype=np.float64) * dt_ms, counts)
    who = np.concatenate(ids)
    order = np.argsort(who, kind="stable")
    bounds = np.searchsorted(who[order], np.arange(n + 1))
    sorted_times = times[order]
    return [sorted_times[bounds[i] : bounds[i + 1]] for i in range(n)]
