"""benchmarks/bench_clusters.py: its features and scoring on small cases, so that the
script cannot rot and its baselines mean what the docs say."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_clusters")


def _transients(onsets: np.ndarray, n_frames: int, tau: float, rng) -> np.ndarray:
    s = np.zeros(n_frames)
    s[onsets] = 1.0
    kernel = np.exp(-np.arange(n_frames) / tau)
    c = np.convolve(s, kernel)[:n_frames]
    return 100.0 + 20.0 * c + rng.normal(0, 1.0, n_frames)


def test_timing_free_features_ignore_when_events_happen(bench):
    rng = np.random.default_rng(0)
    n = 4000
    onsets = np.sort(rng.choice(np.arange(100, n - 400), 12, replace=False))
    a = _transients(onsets, n, 50.0, rng)
    b = _transients(np.sort(rng.choice(np.arange(100, n - 400), 12, replace=False)), n, 50.0, rng)
    fast = _transients(onsets, n, 8.0, rng)
    f = bench.timing_free_features(np.stack([a, b, fast]), 100.0)
    assert np.isfinite(f).all()
    same_kind = np.linalg.norm(f[0] - f[1])
    other_kind = np.linalg.norm(f[0] - f[2])
    assert same_kind < 0.5 * other_kind


def test_true_spike_features_separate_bursts_from_single_spikes(bench):
    singles = np.arange(0.0, 30000.0, 1000.0)
    bursts = np.concatenate([t + np.array([0.0, 4.0, 8.0]) for t in singles[::3]])
    f = bench.true_spike_features([singles, bursts, np.array([])], 30.0)
    assert f[0, 1] == 0.0 and f[1, 1] > 0.6  # ISIs under 10 ms
    assert f[1, 2] == pytest.approx(np.log(3.0))  # three spikes per event
    assert np.isfinite(f).all()


def test_score_finds_separated_groups_without_labels(bench):
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    labels = np.repeat(np.array(["RS", "IB", "CH"]), 30)
    Z = centres[np.repeat(np.arange(3), 30)] + rng.normal(0, 0.5, (90, 2))
    s = bench.score(Z, labels)
    assert s["clusters_auto"] == 3
    assert s["ari_auto"] > 0.95 and s["ari_best_eps"] > 0.95
    shuffled = bench.score(Z, rng.permutation(labels))
    assert shuffled["ari_auto"] < 0.1


def test_session_mixing_tells_mixed_from_separated_sessions(bench):
    rng = np.random.default_rng(2)
    labels = np.repeat(["a", "b"], 60)
    sessions = np.tile([0, 1, 2], 40)
    mixed = rng.normal(0, 1, (120, 2)) + 10 * (labels == "b")[:, None]
    separated = mixed + 20 * sessions[:, None]
    good = bench.session_mixing(mixed, sessions, labels)
    assert good["session_mixing"] > 0.8
    assert good["session_mixing"] == pytest.approx(good["session_mixing_chance"], abs=0.05)
    bad = bench.session_mixing(separated, sessions, labels)
    assert bad["session_mixing"] < 0.2 < 0.8 < bad["session_mixing_chance"]
    one_session = bench.session_mixing(mixed, np.zeros(120), labels)
    assert np.isnan(one_session["session_mixing"])
