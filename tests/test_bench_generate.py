"""benchmarks/bench_generate.py: its table marks the targets; its speed run writes a file."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_generate")


def _scores(ratio: float) -> dict:
    return {"distance": ratio, "yardstick": 1.0, "ratio": ratio}


def test_table_marks_only_the_target_statistics(bench) -> None:
    result = {
        "n_states": 4,
        "scores": {
            side: {
                "firing_rate": _scores(1.2),
                "pairwise_correlation": _scores(1.7 if side == "generated" else 4.0),
                "burst_rate": _scores(3.0),
            }
            for side in ("generated", "independent", "simulator")
        },
    }
    text = bench.table("zebrafish", result)
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if "|" in line}
    assert "1.20 ✓" in lines["**firing_rate**"]
    assert "1.70 ✗" in lines["**pairwise_correlation**"]
    assert "4.00" in lines["**pairwise_correlation**"]
    assert "✓" not in lines["burst_rate"] and "✗" not in lines["burst_rate"]


def test_speed_generates_and_writes(bench, tmp_path, monkeypatch) -> None:
    from napari_calcium_avae.generate import PopulationGenerator

    gen = PopulationGenerator(population="none")
    n = 3
    for key, value in {
        "frame_rate_": 10.0,
        "n_neurons_": n,
        "n_frames_fitted_": 100,
        "input_kind_": "dff",
        "has_population_": False,
        "source_": {},
        "rows_used_": np.ones(n, bool),
        "roots_": np.full((n, 1), 0.9),
        "gain_": np.ones(n),
        "noise_sd_": np.full(n, 0.1),
        "ar_noise_sd_": np.full(n, 0.05),
        "white_noise_sd_": np.full(n, 0.05),
        "baseline_": np.zeros(n),
        "rate_": np.full(n, 0.1),
        "state_rates_": np.full((1, n), 0.1),
        "transmat_": np.ones((1, 1)),
        "occupancy_": np.ones(1),
    }.items():
        setattr(gen, key, value)
    # the speed run asks for a coupled population; these fields hold Poisson counts only
    gen.set_params(population="states", spike_model="poisson")
    gen.has_population_ = True
    monkeypatch.setattr(bench, "SPEED", {"n_neurons": 5, "duration_s": 2.0, "frame_rate": 30.0})
    out = bench.speed(gen, tmp_path)
    assert out["generate_s"] > 0 and out["file_mb"] > 0
    assert (tmp_path / "speed.nwb").exists()
