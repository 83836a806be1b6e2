import numpy as np
import pytest

from napari_calcium_avae.analysis import latent_diagnostics, latents_identical
from napari_calcium_avae.analysis.diagnostics import (
    ACTIVE_VARIANCE,
    kl_per_dimension,
    reconstruction_r2,
)


def traces(n: int = 40, frames: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine waves of random phase and amplitude, and the clean waves."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, frames)
    clean = rng.uniform(0.5, 2, (n, 1)) * np.sin(t + rng.uniform(0, 2 * np.pi, (n, 1)))
    return clean + rng.normal(0, 0.3, clean.shape), clean


def test_healthy_latents_and_fit_raise_no_warning():
    X, clean = traces()
    z = np.random.default_rng(1).normal(size=(len(X), 4))
    found = latent_diagnostics(z, X, clean, kl=np.array([0.5, 0.2, 0.05, 1.0]))
    assert found.warnings == []
    assert not found.identical and found.active_units == 4
    assert found.r2 > 0.8
    np.testing.assert_allclose(found.spread, z.std(axis=0))
    assert found.facts()["latent_warnings"] == "none"


def test_identical_latents_are_reported_and_not_embedded():
    X, clean = traces()
    z = np.tile([0.3, -1.2, 0.0], (len(X), 1)) + 1e-6 * np.arange(len(X))[:, None]
    found = latent_diagnostics(z, X, clean)
    assert found.identical and latents_identical(z)
    ((line,),) = [found.warnings]
    assert "all 3 latent dimensions are the same for every ROI" in line
    assert "no embedding is drawn" in line
    assert ";" not in line  # provenance facts are "; "-separated in NWB descriptions
    assert found.facts()["latent_warnings"] == line


def test_inactive_units_without_identical_latents():
    X, clean = traces()
    z = np.random.default_rng(2).normal(0, 0.05, size=(len(X), 2))
    assert (z.var(axis=0) < ACTIVE_VARIANCE).all()
    found = latent_diagnostics(z, X, clean, kl=np.array([0.2, 1.5]))
    assert found.active_units == 0 and not found.identical
    assert [w.split(" (")[0] for w in found.warnings] == ["no latent dimension is active"]
    # without a posterior the latents' scale is unknown: no count, no such warning
    assert latent_diagnostics(z, X, clean).active_units is None


def test_a_shared_posterior_off_the_prior_is_not_active():
    """The zebrafish case: KL from the prior is large, yet every ROI has the same latents."""
    found = latent_diagnostics(np.tile([0.0, 1.4], (30, 1)), kl=np.array([0.006, 1.93]))
    assert found.identical and found.active_units == 0


def test_a_fit_no_better_than_the_mean_is_reported():
    X, _ = traces()
    flat = np.repeat(X.mean(axis=1, keepdims=True), X.shape[1], axis=1)
    noise = flat + np.random.default_rng(3).normal(0, 0.3, X.shape)
    z = np.random.default_rng(4).normal(size=(len(X), 3))
    for bad in (flat, noise):
        found = latent_diagnostics(z, X, bad)
        ((line,),) = [found.warnings]
        assert line.startswith("the reconstruction is no better than each trace's mean")
    np.testing.assert_allclose(reconstruction_r2(X, flat), 0.0, atol=1e-12)
    np.testing.assert_allclose(reconstruction_r2(X, X), 1.0)


def test_kl_per_dimension_against_the_closed_form():
    mean = np.array([[0.0, 1.0], [0.0, -1.0]])
    logvar = np.array([[0.0, np.log(0.5)], [0.0, np.log(0.5)]])
    # KL(N(m, s2) || N(0, 1)) = (m^2 + s2 - log s2 - 1) / 2
    expected = [0.0, 0.5 * (1.0 + 0.5 - np.log(0.5) - 1.0)]
    np.testing.assert_allclose(kl_per_dimension(mean, logvar), expected)


def test_identical_ignores_unusable_rows():
    z = np.zeros((5, 2))
    z[1] = np.nan
    assert latents_identical(z)
    z[3] = [1.0, 0.0]
    assert not latents_identical(z)


@pytest.mark.parametrize("d", [1, 8])
def test_facts_are_flat_scalars(d):
    X, clean = traces(n=10)
    found = latent_diagnostics(np.zeros((10, d)), X, clean, kl=np.zeros(d))
    facts = found.facts()
    assert all(isinstance(v, str | int | float) for v in facts.values())
    assert facts["latent_active_units"] == f"0 of {d}"
