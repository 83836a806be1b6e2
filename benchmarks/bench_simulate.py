"""Speed and firing statistics of the culture simulator (figures go to docs/simulator.md).

Run: .venv/bin/python benchmarks/bench_simulate.py [--large]
Times growth (placement, axons, wiring), dynamics (discarded stretch included; wall time
and CPU time, as the noise is drawn by a second thread) and fluorescence separately for
the paper's culture (2,250 neurons, 30 s at 1 ms) of each type, and with --large a
20,000-neuron culture (RS, same density on a larger dish).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from napari_calcium_avae.simulate import firing_statistics, fluorescence
from napari_calcium_avae.simulate.dynamics import draw_parameters, simulate_spikes
from napari_calcium_avae.simulate.network import build_network
from napari_calcium_avae.simulate.session import Culture


def run(neuron_type: str, n: int, dish_size_mm: float, released: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    net = build_network(n, dish_size_mm, rng, released_wiring=released)
    t1, c1 = time.perf_counter(), time.process_time()
    params = draw_parameters(neuron_type, n, rng)
    n_discard = round(rng.uniform(1.0, 3.0) * 1000)
    main_cpu, all_cpu = time.thread_time(), time.process_time()
    times = simulate_spikes(net.weights, params, 30_000, rng, n_discard)
    main_cpu, all_cpu = time.thread_time() - main_cpu, time.process_time() - all_cpu
    t2 = time.perf_counter()
    recorded = [t[t >= 0] for t in times]
    imaged = rng.choice(n, 50, replace=False)
    c2 = time.process_time()
    fluorescence([times[i] for i in imaged], 30.0, 500.0)
    t3, c3 = time.perf_counter(), time.process_time()
    fluorescence(times, 30.0, 500.0)
    t4 = time.perf_counter()
    culture = Culture(
        neuron_type, net.positions_um, net.dish_radius_um, net.weights, net.excitatory,
        params.a, params.b, params.v0, params.du, net.axon_length_um,
        net.dendrite_radius_um, recorded, [t[t < 0] for t in times], n_discard, 30.0, 1.0,
        seed, released,
    )  # fmt: skip
    s = firing_statistics(culture)
    wiring = "released" if released else "biological"
    print(
        f"{neuron_type} n={n} {wiring:10s} growth {t1 - t0:5.2f} s  dynamics "
        f"({n_discard / 1000:.1f}+30 s) {t2 - t1:5.2f} s (CPU: main thread {main_cpu:4.2f} s, "
        f"both {all_cpu:4.2f} s)  fluorescence 50 ROIs {t3 - t2:4.2f} s"
        f" / all {t4 - t3:4.2f} s  total(50) {t3 - t0:5.2f} s, CPU "
        f"{(c1 - c0) + all_cpu + (c3 - c2):5.2f} s | rate "
        f"{s['mean_rate_hz']:.2f} Hz, silent {100 * s['fraction_silent']:.1f}%, bursts "
        f"{s['n_bursts']:.0f}, participation {100 * s['burst_participation']:.0f}% (max "
        f"{100 * s['max_burst_participation']:.0f}%), "
        f"spikes/burst {s['spikes_per_burst']:.2f}, ISI<10ms "
        f"{100 * s['fraction_isi_below_10ms']:.0f}%, out-degree {s['mean_out_degree']:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", action="store_true", help="also a 20,000-neuron culture")
    args = parser.parse_args()
    print(f"load average before the run: {os.getloadavg()[0]:.1f}", flush=True)
    for released in (False, True):
        for neuron_type in ("RS", "IB", "CH"):
            run(neuron_type, 2250, 3.0, released, seed=1)
    if args.large:
        run("RS", 20_000, 3.0 * np.sqrt(20_000 / 2250), False, seed=1)


if __name__ == "__main__":
    main()
