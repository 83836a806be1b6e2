"""benchmarks/experiment_crop_feature_vae.py: its controls run on small synthetic traces
(the model itself is tested in tests/model/test_crop_vae.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def exp():
    yield from benchmark_module("experiment_crop_feature_vae")


def test_averaged_crop_features_and_supervised_accuracy(exp):
    rng = np.random.default_rng(0)
    X = 100.0 + rng.normal(0, 1, (20, 1500))
    X[10:] += np.sin(np.arange(1500) / 3.0)  # a second kind with a spectral line
    F = exp.averaged_crop_features(X, 100.0, crop_s=5.0)
    assert F.shape[0] == 20 and np.isfinite(F).all()
    labels = np.repeat([0, 1], 10)
    assert exp.supervised_accuracy(F, labels) > 0.9
