"""AssemblyDetector: planted assemblies found, noise left alone, overrides and bad input."""

import numpy as np
import pytest
from scipy.signal import lfilter
from sklearn.metrics import adjusted_rand_score

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.population import AssemblyDetector


def planted(
    n: int = 60,
    groups: tuple[int, ...] = (10, 10, 10, 10),
    frames: int = 5000,
    sigma: float = 2.5,
    seed: int = 0,
    both: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calcium traces (F0 = 42, 0.113 dF/F per spike, decay 1.82 s at 10 Hz) of Poisson
    neurons, groups of which fire together at shared activations; ``both`` extra neurons
    join the first two groups. Returns traces, main labels and the activation frames."""
    rng = np.random.default_rng(seed)
    labels = np.full(n, -1)
    start = 0
    member = np.zeros((n, len(groups)), dtype=bool)
    for a, size in enumerate(groups):
        labels[start : start + size] = a
        member[start : start + size, a] = True
        start += size
    member[start : start + both, :2] = True
    spikes = rng.poisson(0.05, (n, frames)).astype(float)
    onsets = []
    for a in range(len(groups)):
        on = np.flatnonzero(rng.random(frames) < 0.01)
        rows = np.flatnonzero(member[:, a])
        spikes[np.ix_(rows, on)] += rng.poisson(2.0, (rows.size, on.size)) * (
            rng.random((rows.size, on.size)) < 0.7
        )
        onsets.append(on)
    calcium = lfilter([1.0], [1.0, -np.exp(-0.1 / 1.82)], spikes, axis=1)
    traces = 42 * (1 + 0.113 * calcium) + sigma * rng.standard_normal((n, frames))
    return traces.astype(np.float32), labels, member, onsets


@pytest.mark.parametrize("method", ["ica", "graph", "events"])
def test_planted_assemblies_are_found(method):
    traces, labels, _, onsets = planted()
    det = AssemblyDetector(method=method).fit(traces)
    assert det.n_assemblies_ == 4
    assert adjusted_rand_score(labels, det.labels_) >= 0.9
    assert (det.p_values_ < 0.05).all() and det.significant_.all()
    assert det.activity_.shape == (4, traces.shape[1])
    # each assembly's activity is highest at its own group's activations
    for a in range(4):
        group = np.bincount(labels[det.memberships_[:, a]] + 1).argmax() - 1
        on = onsets[group]
        assert det.activity_[a, on].mean() > 5 * np.median(det.activity_[a])


@pytest.mark.parametrize("method", ["ica", "graph", "events"])
def test_noise_gives_no_assembly(method):
    traces, _, _, _ = planted(groups=())
    det = AssemblyDetector(method=method).fit(traces)
    assert det.n_assemblies_ == 0
    assert (det.labels_ == -1).all()
    assert det.memberships_.shape == (60, 0) and det.activity_.shape == (0, 5000)


def test_override_on_noise_warns_and_is_not_significant():
    traces, _, _, _ = planted(groups=())
    with pytest.warns(CalciumAvaeWarning, match="not significant"):
        det = AssemblyDetector(n_assemblies=2, method="ica", member_threshold=1.0).fit(traces)
    assert det.n_assemblies_ >= 1
    assert not det.significant_.any()


def test_override_sets_the_number():
    traces, _, _, _ = planted(sigma=1.0)
    for k in (3, 4):
        det = AssemblyDetector(n_assemblies=k).fit(traces)
        assert det.n_assemblies_ == k
    assert AssemblyDetector(method="graph", n_assemblies=3).fit(traces).n_assemblies_ == 3


def test_a_neuron_in_two_assemblies_is_in_both():
    traces, _, member, _ = planted(n=60, groups=(12, 12, 12), both=3, sigma=1.0)
    det = AssemblyDetector(method="ica").fit(traces)
    assert det.n_assemblies_ == 3
    shared = np.flatnonzero(member.sum(axis=1) == 2)
    counts = det.memberships_.sum(axis=1)
    assert (counts[shared] == 2).sum() >= 2  # most shared neurons are found in both
    assert (counts[np.setdiff1d(np.arange(60), shared)] <= 1).all()
    # the main assembly is one of each ROI's memberships, -1 exactly when it has none
    has = det.memberships_.any(axis=1)
    assert (det.labels_[~has] == -1).all()
    assert det.memberships_[np.flatnonzero(has), det.labels_[has]].all()


def test_events_extend_members_to_a_second_assembly():
    # method="events": the graph gives each ROI one community; ROIs that follow a second
    # community's activity beyond chance join it too (3 shared ROIs per recording)
    found = 0
    for seed in range(3):
        traces, _, member, _ = planted(n=60, groups=(12, 12, 12), both=3, sigma=1.0, seed=seed)
        det = AssemblyDetector(method="events").fit(traces)
        assert det.n_assemblies_ == 3
        shared = np.flatnonzero(member.sum(axis=1) == 2)
        counts = det.memberships_.sum(axis=1)
        found += int((counts[shared] == 2).sum())
        assert (counts[np.setdiff1d(np.arange(60), shared)] <= 1).all()
        # numbered by strength; the main assembly is the strongest one a ROI is in
        assert (np.diff(det.strength_) <= 0).all()
        has = det.memberships_.any(axis=1)
        np.testing.assert_array_equal(det.labels_[has], det.memberships_[has].argmax(axis=1))
    assert found >= 3  # of 9 (4 when written; 0 before the extension)


def test_the_graphs_give_the_number_asked_for():
    # n_assemblies=1: the resolution is searched down until the groups merge, and where
    # no resolution reaches the number (a graph in pieces), the largest communities stay
    traces, labels, _, _ = planted(groups=(12, 8))
    for method in ("graph", "events"):
        det = AssemblyDetector(method=method, n_assemblies=1).fit(traces)
        assert det.n_assemblies_ == 1 and det.method_ == method
        assert set(np.flatnonzero(labels == 0)) <= set(np.flatnonzero(det.labels_ == 0))


def test_transform_and_unusable_rois():
    traces, labels, _, _ = planted()
    traces[5] = np.nan
    with pytest.warns(CalciumAvaeWarning, match="NaN"):
        det = AssemblyDetector().fit(traces)
    assert det.labels_[5] == -1 and not det.usable_[5] and (det.weights_[:, 5] == 0).all()
    np.testing.assert_allclose(det.transform(traces), det.activity_, rtol=1e-4, atol=1e-4)
    assert adjusted_rand_score(np.delete(labels, 5), np.delete(det.labels_, 5)) >= 0.9


def test_events_binarise_and_transform_the_same_way():
    traces, labels, _, _ = planted(sigma=1.0)
    traces[7] = 42.0
    traces[7, 100] = 60.0  # one sample above: a usable ROI with a single event
    traces[8] = np.tile([41.0, 43.0], 2500).astype(np.float32)  # never 2 SDs above its mean
    with pytest.warns(CalciumAvaeWarning, match="no events"):
        det = AssemblyDetector(method="events").fit(traces)
    assert not det.usable_[8] and det.labels_[8] == -1 and np.isnan(det.event_threshold_[8])
    assert det.usable_[7]
    keep = np.setdiff1d(np.arange(60), [7, 8])
    assert adjusted_rand_score(labels[keep], det.labels_[keep]) >= 0.9
    np.testing.assert_allclose(det.transform(traces), det.activity_, rtol=1e-4, atol=1e-4)
    # new frames are binarised at the fitted levels, not their own: raised far above
    # them, every ROI is always active, so nothing is co-active beyond that
    assert not det.transform(traces + 100.0).any()


def test_bad_input_is_one_line():
    traces, _, _, _ = planted(n=20, groups=(5,), frames=200)
    cases = [
        (traces[:1], "at least 2 ROIs"),
        (np.full((5, 200), np.nan), "usable ROI"),
        (traces[:, :10], "frames"),
        (traces[0], "2-D"),
    ]
    for data, match in cases:
        with pytest.warns(CalciumAvaeWarning) if np.isnan(data).any() else _nothing():
            with pytest.raises(CalciumAvaeError, match=match) as err:
                AssemblyDetector().fit(data)
        assert "\n" not in str(err.value)
    with pytest.raises(CalciumAvaeError, match="only 20 usable"):
        AssemblyDetector(n_assemblies=30).fit(traces)
    for params in ({"n_assemblies": 0}, {"n_assemblies": "many"}, {"method": "kmeans"}):
        with pytest.raises(CalciumAvaeError):
            AssemblyDetector(**params).fit(traces)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
