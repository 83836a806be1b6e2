"""Small simulated sessions shared by the end-to-end tests (pipeline, CLI, demo)."""

from pathlib import Path

import pytest

from napari_calcium_avae.simulate import simulate_dataset


@pytest.fixture(scope="session")
def tiny_sessions(tmp_path_factory) -> list[Path]:
    """Three cultures (RS, IB, CH), 12 imaged neurons each, 6 s at 20 Hz."""
    out = tmp_path_factory.mktemp("tiny_sessions")
    return simulate_dataset(
        out,
        cultures_per_type=1,
        neurons_per_culture=12,
        duration_s=6.0,
        frame_rate=20.0,
        noise_levels=(1.0,),
        seed=3,
        density_per_mm2=250.0,
        dish_size_mm=1.0,
    )
