"""benchmarks/bench_spikes.py on a tiny case, so that the script cannot rot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_spikes")


TINY = dict(
    duration_s=6.0,
    types=("RS",),
    cultures_per_type=1,
    neurons_per_culture=5,
    dish_size_mm=1.0,
    throughput_neurons=7,
    throughput_frames=300,
)


def _methods(bench, with_oasis: bool) -> list:
    methods = [bench.Method("first difference", bench._first_difference, False)]
    if with_oasis:
        methods.append(bench.Method("OASIS AR(1)", bench._oasis(1), False))
    return methods


def _check_run(bench, methods: list, tmp_path: Path) -> list[dict]:
    protocol = bench.Protocol(**TINY)
    rows, example = bench.accuracy(protocol, methods, ["GCaMP6s"], progress=False)
    assert len(rows) == len(bench.RATES) * len(bench.NOISE) * len(methods)
    for r in rows:
        assert r["neurons"] == 5 and 0 < r["scored"] <= 5
        assert -1 <= r["mean_r"] <= 1
        assert r["bin_frames"] == (4 if r["rate_hz"] == 100 else 1)
    r = {(r["rate_hz"], r["noise"], r["method"]): r["mean_r"] for r in rows}
    for m in methods:
        assert r[(100.0, "easy", m.name)] > r[(100.0, "hard", m.name)]
    speed = bench.throughput(protocol, methods, "GCaMP6s")
    assert [s["neurons"] for s in speed] == [7] * len(methods)
    assert all(s["frames"] == 300 and s["neuron_frames_per_s"] > 0 for s in speed)
    text = bench.summary(rows, speed, [m.name for m in methods], ["a note"], "cmd")
    assert "| GCaMP6s | 100 | hard (1) | " in text and "## Throughput (7 neurons" in text
    bench.figures(rows, example, tmp_path)
    assert (tmp_path / "spikes_r.png").stat().st_size > 0
    assert (tmp_path / "spikes_example.png").stat().st_size > 0
    return rows


def test_core_with_the_floor(bench, tmp_path: Path) -> None:
    rows = _check_run(bench, _methods(bench, False), tmp_path)
    easy = [r["mean_r"] for r in rows if r["noise"] == "easy"]
    assert min(easy) > 0.3  # the floor sees spikes in clean traces
    assert all(np.isnan(r["mean_abs_count_error"]) for r in rows)  # not in spikes


def test_core_with_oasis(bench, tmp_path: Path) -> None:
    pytest.importorskip("oasis.functions")
    rows = _check_run(bench, _methods(bench, True), tmp_path)
    r = {(r["rate_hz"], r["noise"], r["method"]): r["mean_r"] for r in rows}
    assert r[(100.0, "medium", "OASIS AR(1)")] > r[(100.0, "medium", "first difference")]


def test_targets_are_decided_from_the_numbers(bench) -> None:
    per_indicator = {("X", "ours AR(1)"): 0.60, ("X", "OASIS AR(1)"): 0.56}
    speed = [{"method": "ours AR(1)", "ratio_to_oasis": 12.0}]
    lines = bench.targets(per_indicator, speed, ["OASIS AR(1)", "ours AR(1)"])
    assert "does not hold" in lines[0] and "+0.040" in lines[0]
    assert "10x OASIS holds" in lines[1]
    assert bench.targets(per_indicator, speed, ["OASIS AR(1)"])[0].startswith("- not decided")


def test_memory_reports_the_peak(bench) -> None:
    line = bench.memory(4, 200)
    assert line.startswith("memory: 4 x 200: peak RSS ") and " GB" in line
