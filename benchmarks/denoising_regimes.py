"""When does a reconstruction beat the noisy input? The AVAE with and without its timing
path, PCA, a Gaussian filter and a flat line over noise levels, on held-out neurons of
simulated cultures (figures go to docs/benchmarks.md).

Run: .venv/bin/python benchmarks/denoising_regimes.py [--seeds 3] [--noise-levels 1 2.5 5 8]
Each seed simulates 3 types x 2 cultures (2 mm dish, 20 s at 20 Hz) and images 30 active
neurons per culture; a third of the neurons are held out. MSE is the paper's (against the
noise-free trace, in the noisy trace's [-0.5, 0.5] scale). "flat" is each held-out trace's
own mean, what a model that ignored its input would give; the Gaussian filter (SD 2
frames) is the simplest denoiser there is. kNN is the 5-neighbour accuracy of the held-out
latents' types (chance 1/3).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.neighbors import KNeighborsClassifier

from napari_calcium_avae.analysis import reconstruction_mse
from napari_calcium_avae.model import AVAE, PCABaseline
from napari_calcium_avae.simulate import simulate_imaged_cultures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise-levels", type=float, nargs="+", default=[1.0, 2.5, 5.0, 8.0])
    args = parser.parse_args()
    rows: dict[tuple[float, str], list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        cultures = list(
            simulate_imaged_cultures(
                cultures_per_type=2,
                neurons_per_culture=30,
                duration_s=20.0,
                frame_rate=20.0,
                noise_levels=tuple(args.noise_levels),
                seed=seed,
                dish_size_mm=2.0,
            )
        )
        clean = np.concatenate([c.clean for c in cultures])
        types = np.concatenate([[c.culture.neuron_type] * len(c.imaged) for c in cultures])
        noisy_levels = [
            np.concatenate([c.noisy[i] for c in cultures]) for i in range(len(args.noise_levels))
        ]
        order = np.random.default_rng(seed).permutation(len(clean))
        test, train = order[: len(order) // 3], order[len(order) // 3 :]
        for sigma, noisy in zip(args.noise_levels, noisy_levels, strict=True):
            x_test = noisy[test]
            flat = np.repeat(x_test.mean(axis=1, keepdims=True), x_test.shape[1], axis=1)
            candidates = {
                "noisy input": (x_test, np.nan),
                "flat (trace mean)": (flat, np.nan),
                "Gaussian filter, SD 2 frames": (gaussian_filter1d(x_test, 2.0, axis=1), np.nan),
            }
            models = {"PCA, D2 = 8": PCABaseline(8)}
            for beta, timing in ((0.5, 0), (0.0, 0), (0.5, 2)):
                name = f"AVAE (128, 8), beta {beta:g}" + (", timing path" if timing else "")
                models[name] = AVAE(
                    hidden_size=128,
                    latent_size=8,
                    beta=beta,
                    timing_channels=timing,
                    batch_size=16,
                    max_epochs=150,
                    patience=15,
                    device="cpu",
                    random_state=seed,
                )
            for name, model in models.items():
                model.fit(noisy[train])
                knn = KNeighborsClassifier(5).fit(model.transform(noisy[train]), types[train])
                accuracy = knn.score(model.transform(x_test), types[test])
                candidates[name] = (model.reconstruct(x_test), accuracy)
            for name, (reconstruction, accuracy) in candidates.items():
                mse = float(reconstruction_mse(reconstruction, clean[test], x_test).mean())
                rows.setdefault((sigma, name), []).append((mse, accuracy))
            print(f"seed {seed}, sigma {sigma}: done", flush=True)
    print("\n| sigma | reconstruction | MSE x1e3 (mean over seeds) | kNN accuracy |")
    print("|---|---|---|---|")
    for (sigma, name), values in rows.items():
        mse, accuracy = np.mean(values, axis=0)
        shown = "" if np.isnan(accuracy) else f"{accuracy:.2f}"
        print(f"| {sigma:g} | {name} | {mse * 1e3:.2f} | {shown} |")


if __name__ == "__main__":
    main()
