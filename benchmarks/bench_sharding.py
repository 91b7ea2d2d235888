#!/usr/bin/env python
"""One population split over several devices: step time and what crosses devices.

    python benchmarks/bench_sharding.py [--sizes 100000,1000000] [--devices 1,2,4]
                                        [--days 28] [--repeats 3] [--halo-devices 2,4,8,16,64]
                                        [--skip-timing] [--skip-halo]

Timing: for each population size (a synthetic NYC population of exactly N agents) and each
device count, the COVID model runs ``--days`` days on CPU split into host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=<max devices>``, set for every row,
the 1-device rows included); ms per day is the best of ``--repeats`` runs after a first
one. "1 (auto)" and "1 (dense)" are the unsplit path with its two contact methods; split
runs always pull over every edge (like "dense"). Each row runs in its own subprocess.
Host devices share the machine's cores, so this measures the overhead of splitting, not
a speed-up: on a CPU the devices are threads of one process.

Halo: for Astoria (47,303 agents) and 1 M agents in locality order (by neighbourhood, then
household: :func:`jaxsim.locality.localize`) and, for contrast, in a random order, the
values that cross devices per day (distinct (agent, receiving device) pairs), as a share
of the agents, the values the padded ``all_to_all`` buffer moves, and the share of edges
whose two ends are on different devices. Host-side tables only (no run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def timing_worker(n: int, devices: int, method: str, days: int, repeats: int) -> dict:
    import jax

    from jaxsim import engine, sharding
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    population = synthesis.synthesize_population_of_size(n, seed=0)
    world = covid.build_world(population)
    params = covid.default_params(
        world, max(1, -(-days // 7)), contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.002, initial_infected_share=0.002,
    )
    mesh = sharding.make_mesh(devices) if devices > 1 else None
    if mesh is not None:
        start = time.perf_counter()
        world = sharding.shard_world(world, mesh)
        shard_seconds = time.perf_counter() - start
        params = sharding.replicate(params, mesh)
    else:
        shard_seconds = 0.0
    model = covid.covid_model(contact_method=method)
    best, compile_seconds, first = float("inf"), None, None
    for _ in range(repeats + 1):
        state = model.init(jax.random.key(1), params, world)
        key = jax.random.key(0)
        if mesh is not None:
            state = sharding.shard_state(state, mesh, world)
            key = sharding.replicate(key, mesh)
        result = engine.run(model, key, state, params, world, days, chunk_days=days, progress=False, donate=True)
        if compile_seconds is None:
            compile_seconds, first = result.compile_seconds, result.run_seconds
        else:
            best = min(best, result.run_seconds)
    stats = sharding.halo_stats(world)
    return {
        "agents": n, "devices": devices, "method": method, "days": days,
        "ms_per_day": 1e3 * best / days, "first_run_ms_per_day": 1e3 * first / days,
        "compile_s": compile_seconds, "shard_s": shard_seconds,
        "values_per_day": None if stats is None else stats.values_per_day,
        "infections": int(result.metrics["new_infections"].sum()),
        "host_devices": jax.device_count(),
    }


def halo_rows(label: str, population, device_counts) -> list[dict]:
    import numpy as np

    from jaxsim import sharding

    rows = []
    for d in device_counts:
        start = time.perf_counter()
        stats = sharding.partition_population(population, d).stats
        rows.append({
            "population": label, "agents": population.size, "devices": d,
            "values_per_day": stats.values_per_day,
            "share_of_agents": stats.values_per_day / population.size,
            "padded_values_per_day": stats.padded_values_per_day,
            "halo_slots": stats.halo_slots,
            "cross_edge_share": stats.cross_edges / max(1, stats.directed_edges),
            "max_received": int(np.max(stats.received_per_device)),
            "seconds": time.perf_counter() - start,
        })
    return rows


def run_halo(device_counts) -> list[dict]:
    import numpy as np

    from jaxsim import locality
    from jaxsim.nyc import synthesis

    rows = []
    for label, population in (
        ("Astoria", synthesis.synthesize_nyc_population(["QN0103"], seed=0)),
        ("1M", synthesis.synthesize_population_of_size(1_000_000, seed=0)),
    ):
        rows += halo_rows(f"{label} locality", locality.localize(population), device_counts)
        shuffled = locality.reorder(population, np.random.default_rng(0).permutation(population.size))
        rows += halo_rows(f"{label} random order", shuffled, device_counts)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--halo-devices", default="2,4,8,16,64")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-halo", action="store_true")
    parser.add_argument("--json", help="also write all rows to this JSON file")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        n, devices, method, days, repeats = args.worker
        print(json.dumps(timing_worker(int(n), int(devices), method, int(days), int(repeats))))
        return 0

    out = {"timing": [], "halo": []}
    if not args.skip_timing:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
        counts = [int(d) for d in args.devices.split(",") if d.strip()]
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={max(counts)}")
        header = (f"{'agents':>10} {'devices':>10} {'ms/day':>9} {'1st run':>8} {'compile s':>9} "
                  f"{'shard s':>8} {'values/day':>11} {'infections':>10}")
        print(header)
        print("-" * len(header))
        for n in sizes:
            configs = [(d, m) for d in counts for m in (("auto", "dense") if d == 1 else ("dense",))]
            for devices, method in configs:
                done = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--worker", str(n), str(devices), method,
                     str(args.days), str(args.repeats)],
                    capture_output=True, text=True, env=env,
                )
                name = f"{devices} ({method})" if devices == 1 else str(devices)
                if done.returncode != 0:
                    print(f"{n:>10,} {name:>10} failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                out["timing"].append(row)
                values = "-" if row["values_per_day"] is None else f"{row['values_per_day']:,}"
                print(f"{n:>10,} {name:>10} {row['ms_per_day']:>9.2f} {row['first_run_ms_per_day']:>8.2f} "
                      f"{row['compile_s']:>9.2f} {row['shard_s']:>8.2f} {values:>11} {row['infections']:>10,}",
                      flush=True)
        print(f"\n{args.days} days per run, best of {args.repeats} after a first run; "
              f"{max(counts)} host devices on {os.cpu_count()} cores\n")
    if not args.skip_halo:
        counts = [int(d) for d in args.halo_devices.split(",") if d.strip()]
        header = (f"{'population':>20} {'devices':>7} {'values/day':>11} {'% agents':>8} "
                  f"{'padded/day':>11} {'H':>8} {'cross edges':>11} {'max recv':>9} {'table s':>7}")
        print(header)
        print("-" * len(header))
        for row in run_halo(counts):
            out["halo"].append(row)
            print(f"{row['population']:>20} {row['devices']:>7} {row['values_per_day']:>11,} "
                  f"{100 * row['share_of_agents']:>7.2f}% {row['padded_values_per_day']:>11,} "
                  f"{row['halo_slots']:>8,} {100 * row['cross_edge_share']:>10.2f}% "
                  f"{row['max_received']:>9,} {row['seconds']:>7.2f}", flush=True)
        print("\nvalues/day: infectiousness values sent between devices per day (4 bytes each); "
              "padded/day: what the all_to_all moves (D (D-1) H); cross edges: share of directed "
              "edges with ends on different devices")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
