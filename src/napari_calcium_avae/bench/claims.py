"""The paper's claims, each decided from the benchmark's own numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PARAMETERS = ("a", "b", "v0", "du")
"""Izhikevich parameters per ROI; v0 and du tell the types apart, a and b do not."""
STRONG_CORRELATION = 0.5
WEAK_CORRELATION = 0.3
STABLE_DROP = 0.05
"""An ARI that falls by no more than this from the smallest to the largest D2 is stable."""
ARI_MARGIN = 0.2
CROP_VAE = "crop-VAE"
"""The product's default model (``CropFeatureVAE``) in runs.csv, the claims and figures."""


@dataclass
class Claim:
    statement: str
    holds: bool | None
    """None when the protocol cannot test it (e.g. a single latent size)."""
    evidence: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not tested"}[self.holds]


def latent_correlations(latents: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Pearson r of each latent coordinate with a, b, v0, du (Fig. 5B): parameters x z_k."""
    z = np.asarray(latents, dtype=np.float64)
    out = np.full((len(PARAMETERS), z.shape[1]), np.nan)
    for i, name in enumerate(PARAMETERS):
        p = table[name].to_numpy(dtype=np.float64)
        for k in range(z.shape[1]):
            if np.std(p) > 0 and np.std(z[:, k]) > 0:
                out[i, k] = np.corrcoef(p, z[:, k])[0, 1]
    return pd.DataFrame(
        out, index=list(PARAMETERS), columns=[f"z{k + 1}" for k in range(z.shape[1])]
    )


def family_of(row: pd.Series) -> str:
    if row["model"] != "AVAE":
        return str(row["model"])
    return f"AVAE {row['architecture']} β={row['beta']:g}"


def medians(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median over partitions, indexed by (family, latent_size), one column per noise level."""
    runs = runs.assign(family=runs.apply(family_of, axis=1))
    return runs.pivot_table(
        index=["family", "latent_size"], columns="noise_sigma", values=metric, aggfunc="median"
    )


def check_claims(
    runs: pd.DataFrame, correlations: pd.DataFrame, model: str = "AVAE"
) -> list[Claim]:
    """The paper's four claims for ``model`` (the paper's "AVAE", or another model of the
    runs) against PCA, each decided from the benchmark's own numbers; ``correlations``
    are that model's (``latent_correlations``)."""
    runs = runs[runs["model"].isin([model, "PCA"])]
    claims = []
    mse = medians(runs, "mse")
    avae = mse.drop(index="PCA", level="family")
    pca = mse.xs("PCA", level="family")
    best_avae, best_pca = avae.min(), pca.min()
    lines = [
        f"σ={s:g}: best {model} {best_avae[s] * 1e3:.3f} vs best PCA {best_pca[s] * 1e3:.3f}"
        for s in mse.columns
    ]
    claims.append(
        Claim(
            f"The best {model} reconstructs held-out traces with a lower MSE than PCA at "
            "every noise level (median over partitions, x1e3).",
            bool((best_avae < best_pca).all()),
            "; ".join(lines),
        )
    )
    for metric, label in (("ari_oracle", "oracle eps"), ("ari_auto", "label-free eps")):
        ari = medians(runs, metric)
        gap = ari.drop(index="PCA", level="family").groupby(level="latent_size").max() - ari.xs(
            "PCA", level="family"
        )
        where = gap.stack().idxmax()
        claims.append(
            Claim(
                f"The best {model}'s ARI ({label}) exceeds PCA's by more than {ARI_MARGIN} in "
                "some setting (same D2 and noise level).",
                bool(gap.to_numpy().max() > ARI_MARGIN),
                f"largest gap {gap.to_numpy().max():+.3f} at D2={where[0]}, σ={where[1]:g}",
            )
        )
    claims.append(_stability_claim(runs, model))
    claims.append(_correlation_claim(correlations, model))
    return claims


def _stability_claim(runs: pd.DataFrame, model: str) -> Claim:
    statement = (
        f"{model} ARI (oracle eps) does not drop as D2 grows, while PCA's does (change = median "
        "ARI at the largest D2 minus at the smallest, mean over noise levels; stable if >= "
        f"-{STABLE_DROP}, a drop if below)."
    )
    ari = medians(runs, "ari_oracle")
    sizes = sorted(ari.index.get_level_values("latent_size").unique())
    if len(sizes) < 2:
        return Claim(statement, None, "only one latent size in this protocol")

    def change(family: str) -> float:
        by_size = ari.xs(family, level="family")
        return float((by_size.loc[sizes[-1]] - by_size.loc[sizes[0]]).mean())

    families = [f for f in ari.index.get_level_values("family").unique() if f != "PCA"]
    best = max(families, key=lambda f: float(ari.xs(f, level="family").to_numpy().mean()))
    others = ", ".join(f"{f} {change(f):+.3f}" for f in families if f != best)
    return Claim(
        statement,
        change(best) >= -STABLE_DROP > change("PCA"),
        f"D2 {sizes[0]} -> {sizes[-1]}: {best} (best mean ARI) {change(best):+.3f}, PCA "
        f"{change('PCA'):+.3f}" + (f"; other {model} families: {others}" if others else ""),
    )


def _correlation_claim(correlations: pd.DataFrame, model: str) -> Claim:
    peak = correlations.abs().max(axis=1)
    holds = bool(
        min(peak["v0"], peak["du"]) >= STRONG_CORRELATION
        and max(peak["a"], peak["b"]) < WEAK_CORRELATION
    )
    return Claim(
        f"{model} latent coordinates correlate with v0 and du (max |r| >= "
        f"{STRONG_CORRELATION}) and "
        f"not with a and b (max |r| < {WEAK_CORRELATION}).",
        holds,
        ", ".join(f"{name} {peak[name]:.2f}" for name in PARAMETERS),
    )
