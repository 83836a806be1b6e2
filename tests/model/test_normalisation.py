"""Min-max normalisation to [-0.5, 0.5], checked against values worked out by hand."""

import numpy as np
import pytest

from napari_calcium_avae.model import AVAE, PCABaseline

SMALL = dict(
    hidden_size=8, latent_size=2, timing_channels=0, batch_size=4, max_epochs=1, device="cpu"
)
ESTIMATORS = [lambda **kw: AVAE(**SMALL, **kw), lambda **kw: PCABaseline(n_components=1, **kw)]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_per_trace_maps_each_trace_min_to_minus_half_and_max_to_half(make):
    X = np.array([[2.0, 4.0, 6.0, 3.0], [-3.0, 7.0, 2.0, -3.0], [10.0, 10.5, 11.0, 12.0]])
    Xn, (lo, span) = make().normalise(X)
    expected = [[-0.5, 0.0, 0.5, -0.25], [-0.5, 0.5, 0.0, -0.5], [-0.5, -0.25, 0.0, 0.5]]
    np.testing.assert_allclose(Xn, expected, atol=1e-7)
    assert Xn.dtype == np.float32
    np.testing.assert_array_equal(lo, [[2.0], [-3.0], [10.0]])
    np.testing.assert_array_equal(span, [[4.0], [10.0], [2.0]])


@pytest.mark.parametrize("make", ESTIMATORS)
def test_per_trace_ignores_offset_and_scale_of_each_trace(make):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 50))
    X = np.vstack([base, 3 * base + 100, 0.01 * base - 7])
    Xn, _ = make().normalise(X)
    np.testing.assert_allclose(Xn, np.repeat(Xn[:1], 3, axis=0), atol=1e-6)


@pytest.mark.parametrize("make", ESTIMATORS)
def test_global_uses_the_training_range_for_every_trace(make):
    train = np.array([[-2.0, 0.0, 3.0, 1.0], [8.0, 5.0, -1.0, 0.0], [1, 2, 3, 4], [4, 3, 2, 2]])
    model = make(normalisation="global").fit(train)
    assert model.norm_ == (-2.0, 10.0)
    Xn, (lo, span) = model.normalise(np.array([[-2.0, 3.0, 8.0, 18.0], [0.0, 0.0, 0.0, 0.0]]))
    # a flat trace is fine here, and values outside the training range stay outside
    np.testing.assert_allclose(Xn, [[-0.5, 0.0, 0.5, 1.5], [-0.3, -0.3, -0.3, -0.3]], atol=1e-7)
    np.testing.assert_array_equal(lo, [[-2.0], [-2.0]])
    np.testing.assert_array_equal(span, [[10.0], [10.0]])


@pytest.mark.parametrize("normalisation", ["per_trace", "global"])
def test_full_rank_pca_reconstructs_the_source_units_exactly(normalisation):
    """A lossless projection isolates the round trip: normalise, then (Xn + 0.5) * span + lo."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 20)) * rng.uniform(0.5, 50, (6, 1)) + rng.uniform(-100, 100, (6, 1))
    pca = PCABaseline(n_components=6, normalisation=normalisation).fit(X)
    np.testing.assert_allclose(pca.reconstruct(X), X, rtol=1e-4, atol=1e-3)
