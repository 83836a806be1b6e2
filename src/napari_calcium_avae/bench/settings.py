"""A benchmark protocol: the paper's (Abante et al. 2025, sections 2.1, 2.5-2.7) or quick."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CalciumAvaeError
from ..simulate import SimulationSettings


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark protocol; the defaults are the paper's (sections 2.1, 2.5-2.7)."""

    types: tuple[str, ...] = ("RS", "IB", "CH")
    cultures_per_type: int = 5
    neurons_per_culture: int = 50
    duration_s: float = 30.0
    frame_rate: float = 500.0
    noise_levels: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5)
    partitions: int = 10
    test_fraction: float = 0.2
    architectures: tuple[str, ...] = ("released", "recurrent")
    sizes: tuple[tuple[int, int], ...] = ((32, 2), (64, 4), (128, 8), (256, 16))
    betas: tuple[float, ...] = (0.0, 0.5, 1.0)
    timing_channels: int = 0
    """0 scores the paper's model; > 0 adds the timing path to every AVAE (docs/model.md)."""
    crop_vae: bool = True
    """Also score the product's default model (``CropFeatureVAE``, its own settings but D2,
    at most ``max_epochs``) at each D2, and check the claims for it too (issue 15)."""
    learning_rate: float = 5e-3
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 5
    min_delta: float = 0.005
    min_samples: int = 5
    seed: int = 0
    showcase: tuple[str, int, int, float] = ("released", 128, 8, 0.5)
    """(architecture, D1, D2, beta) of the model shown in Figs. 3A, 4 and 5B."""
    showcase_noise: float = 1.0

    @classmethod
    def quick(cls) -> BenchSettings:
        """A reduced protocol that keeps every step and the trends, <= 30 min on 2 CPU cores."""
        return cls(
            frame_rate=50.0,
            noise_levels=(0.5, 1.5, 2.5),
            partitions=2,
            betas=(0.0, 1.0),
            batch_size=32,
            max_epochs=60,
            showcase=("released", 128, 8, 1.0),
            showcase_noise=1.5,
        )

    def check(self) -> None:
        """Refuse settings that cannot give a score, before minutes of simulation."""
        self.simulation()
        if not self.noise_levels or min(self.noise_levels) <= 0:
            raise CalciumAvaeError("noise levels must be positive and at least one is needed")
        if len(set(self.noise_levels)) != len(self.noise_levels):
            raise CalciumAvaeError("noise levels must be distinct")
        if self.partitions < 1:
            raise CalciumAvaeError("at least one train/test partition is needed")
        if not 0 < self.test_fraction < 1:
            raise CalciumAvaeError(f"test fraction must be in (0, 1), got {self.test_fraction}")
        if not self.sizes or not self.betas or not self.architectures:
            raise CalciumAvaeError("the model grid is empty: give sizes, betas, architectures")
        n = len(self.types) * self.cultures_per_type * self.neurons_per_culture
        n_test = round(self.test_fraction * n)
        if n_test < self.min_samples or n - n_test < 4:
            raise CalciumAvaeError(
                f"{n} neurons give {n_test} test neurons: too few for min_samples = "
                f"{self.min_samples} or for training; simulate more neurons"
            )

    def simulation(self) -> SimulationSettings:
        """The dataset this protocol simulates (checked on creation)."""
        return SimulationSettings(
            types=self.types,
            cultures_per_type=self.cultures_per_type,
            neurons_per_culture=self.neurons_per_culture,
            duration_s=self.duration_s,
            frame_rate=self.frame_rate,
            noise_levels=self.noise_levels,
            seed=self.seed,
        )

    def showcase_config(self) -> tuple[str, int, int, float]:
        """The showcase model if the grid holds it, else the grid's first AVAE."""
        arch, d1, d2, beta = self.showcase
        if arch in self.architectures and (d1, d2) in self.sizes and beta in self.betas:
            return self.showcase
        return (self.architectures[0], *self.sizes[0], self.betas[0])

    def showcase_level(self) -> float:
        return min(self.noise_levels, key=lambda s: abs(s - self.showcase_noise))
