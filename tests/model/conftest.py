import numpy as np
import pytest


def two_families(n_per: int = 40, n_frames: int = 128, noise: float = 0.2, seed: int = 0):
    """(noisy, clean, family) traces: a transient of random size and onset near frame 16,
    decaying fast (family 0) or slowly (family 1): low-dimensional, so denoisable."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)
    clean, family = [], []
    for fam, tau in ((0, 4.0), (1, 24.0)):
        for _ in range(n_per):
            onset = 16 + rng.integers(-2, 3)
            amp = rng.uniform(0.7, 1.3)
            clean.append(np.where(t >= onset, amp * np.exp(-(t - onset) / tau), 0.0))
            family.append(fam)
    clean = np.array(clean)
    noisy = clean + rng.normal(0, noise, clean.shape)
    return noisy.astype(np.float32), clean.astype(np.float32), np.array(family)


@pytest.fixture
def make_families():
    return two_families


@pytest.fixture
def traces():
    noisy, _, _ = two_families(n_per=10, n_frames=64)
    return noisy
