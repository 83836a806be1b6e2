"""Do the latents say anything? Collapse and under-training, caught before anyone reads clusters.

A VAE whose posterior has collapsed gives every ROI the same latent vector: DBSCAN then
finds one cluster at a vanishing eps, and t-SNE spreads identical points into a cloud
that looks like structure. An undertrained model reconstructs each trace no better than
a flat line at its mean. Both are easy to miss in a plot and cheap to measure here.

Three measures, each with the usual reading:

- spread: the standard deviation across ROIs of each latent dimension. Both models'
  latents live on a unit scale (the AVAE's prior is N(0, I); the PCA baseline projects
  traces scaled to [-0.5, 0.5]), so a spread below ``IDENTICAL_SPREAD`` means the
  dimension is the same for every ROI.
- active units (Burda et al. 2016, "Importance weighted autoencoders"): a dimension is
  active when the variance across ROIs of its posterior mean exceeds ``ACTIVE_VARIANCE``.
  The criterion is on the prior's scale, so it is counted only for models with a
  posterior (the AVAE), whose KL from the prior per dimension is reported next to it.
  The KL alone does not tell: on the zebrafish recording a collapsed model gave every
  ROI the same posterior, off the prior, and so 4 of 8 dimensions above 0.01 nats.
- R² of the reconstruction against each trace's own mean: 0 is a flat line at the mean,
  1 a perfect fit; the median over ROIs is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IDENTICAL_SPREAD = 1e-2
"""A latent dimension whose spread across ROIs is below this is the same for every ROI:
a hundredth of the prior's scale. The zebrafish recording's collapsed models gave 5e-6
(patience 30) and at most 3.4e-3 (the default patience, stopped at epoch 9)."""
ACTIVE_VARIANCE = 0.01
"""Variance across ROIs of a posterior mean above which its dimension is active."""
MIN_R2 = 0.05
"""Median R² below which a reconstruction is no better than each trace's mean."""
_ROWS_PER_BLOCK = 256


@dataclass
class LatentDiagnostics:
    """What the latents and reconstructions of one recording tell about the model."""

    spread: np.ndarray
    """(D,) standard deviation across ROIs of each latent dimension."""
    kl: np.ndarray | None
    """(D,) KL from the prior per dimension, mean over ROIs (nats); None without a posterior."""
    r2: float | None
    """Median over ROIs of the reconstruction's R² against each trace's mean."""
    warnings: list[str] = field(default_factory=list)
    """One line per problem found; empty for a healthy model."""

    @property
    def identical(self) -> bool:
        """True when every latent dimension is the same for every ROI."""
        return _identical(self.spread)

    @property
    def active_units(self) -> int | None:
        """Dimensions whose posterior mean varies across ROIs (None without a posterior)."""
        return None if self.kl is None else int((self.spread**2 > ACTIVE_VARIANCE).sum())

    def facts(self) -> dict[str, str | int | float]:
        """Flat facts for provenance (and so for the NWB descriptions)."""
        facts: dict[str, str | int | float] = {
            "latent_spread": _listed(self.spread),
            "latent_warnings": " | ".join(self.warnings) or "none",
        }
        if self.kl is not None:
            facts["latent_kl_nats"] = _listed(self.kl)
            facts["latent_active_units"] = f"{self.active_units} of {len(self.kl)}"
        if self.r2 is not None:
            facts["reconstruction_median_r2"] = round(self.r2, 4)
        return facts


def _listed(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def _identical(spread: np.ndarray) -> bool:
    return bool(np.all(spread < IDENTICAL_SPREAD))


def latent_spread(latents: np.ndarray) -> np.ndarray:
    """(D,) standard deviation across ROIs of each dimension (rows with NaN left out)."""
    z = np.asarray(latents, dtype=np.float64)
    z = z[np.isfinite(z).all(axis=1)]
    return z.std(axis=0) if len(z) else np.zeros(z.shape[1])


def latents_identical(latents: np.ndarray) -> bool:
    """True when the latent vectors are (nearly) the same for every ROI: an embedding of
    them would draw rounding noise as if it were structure."""
    return _identical(latent_spread(latents))


def kl_per_dimension(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of each dimension, averaged over rows (nats)."""
    mean = np.asarray(mean, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    return (0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0)).mean(axis=0)


def reconstruction_r2(X: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-trace R² of a reconstruction against the trace's own mean (a block at a time)."""
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        x = np.asarray(X[rows], dtype=np.float64)
        residual = ((x - reconstruction[rows]) ** 2).sum(axis=1)
        total = ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[rows] = 1.0 - residual / total
    return out


def latent_diagnostics(
    latents: np.ndarray,
    X: np.ndarray | None = None,
    reconstruction: np.ndarray | None = None,
    kl: np.ndarray | None = None,
) -> LatentDiagnostics:
    """Spread, active units and reconstruction quality of one recording, with warnings.

    ``latents``, ``X`` and ``reconstruction`` are the usable ROIs' (finite rows);
    ``kl`` is :func:`kl_per_dimension` of the posterior where the model has one (and then
    active units are counted).
    """
    spread = latent_spread(latents)
    r2 = None
    if X is not None and reconstruction is not None and len(X):
        r2 = float(np.nanmedian(reconstruction_r2(X, reconstruction)))
    found = LatentDiagnostics(spread=spread, kl=kl, r2=r2)
    d = len(spread)
    if found.identical:
        found.warnings.append(
            f"all {d} latent dimensions are the same for every ROI (largest spread "
            f"{spread.max(initial=0.0):.2g}): the model has collapsed, its latents and "
            "clusters say nothing about the neurons, and no embedding is drawn"
        )
    elif found.active_units == 0:
        found.warnings.append(
            f"no latent dimension is active (variance across ROIs below {ACTIVE_VARIANCE} "
            f"in all {d}): the latents barely differ between ROIs, so clusters and the "
            "embedding show noise"
        )
    if r2 is not None and not r2 >= MIN_R2:
        found.warnings.append(
            f"the reconstruction is no better than each trace's mean (median R² "
            f"{r2:.3f}): the model is undertrained, train longer (a larger patience)"
        )
    return found
