#!/usr/bin/env python
"""Throughput of the full COVID scenario step on synthetic NYC populations.

    python benchmarks/bench_step.py [--sizes 10000,100000,1000000] [--nyc] [--days 28]
                                    [--repeats 3] [--contact-method auto|dense|both]

For each population size (a synthetic NYC population of exactly N agents, household +
community contacts, about 14 contacts per agent) it builds the model, compiles it, runs
``--days`` days once (reported as "1st run": the first execution after compiling is
slower) and then ``--repeats`` more times, and prints a table: ms per simulated day (best
of the repeats),
agent-steps/s, edge-steps/s (directed contact edges x days / s), compile seconds, peak
resident memory and bytes per agent. ``--nyc`` adds all of New York City (8,550,333 agents).

Each size runs in a fresh subprocess so that peak memory is that size's alone. The epidemic
is seeded with 0.2% exposed and 0.2% infected agents (a mid-wave prevalence).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

NYC_PEOPLE = 8_550_333


def worker(n: int, days: int, repeats: int, method: str) -> dict:
    import jax
    import numpy as np

    from jaxsim import engine
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    start = time.perf_counter()
    population = synthesis.synthesize_population_of_size(n, seed=0)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    world = covid.build_world(population)
    params = covid.default_params(
        world, max(1, -(-days // 7)),
        contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.002, initial_infected_share=0.002,
    )
    graph_seconds = time.perf_counter() - start
    model = covid.covid_model(contact_method=method)
    directed_edges = sum(layer.num_directed_edges for layer in world.graph.values())
    best, compile_seconds, first_run = float("inf"), None, None
    for repeat in range(repeats + 1):  # the first run (right after compiling) is reported apart
        state = model.init(jax.random.key(1), params, world)
        result = engine.run(
            model, jax.random.key(0), state, params, world, days, chunk_days=days, progress=False,
            donate=True,
        )
        if compile_seconds is None:
            compile_seconds, first_run = result.compile_seconds, result.run_seconds
        else:
            best = min(best, result.run_seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "agents": n,
        "directed_edges": directed_edges,
        "method": method,
        "days": days,
        "ms_per_day": 1e3 * best / days,
        "first_run_ms_per_day": 1e3 * first_run / days,
        "agent_steps_per_s": n * days / best,
        "edge_steps_per_s": directed_edges * days / best,
        "compile_s": compile_seconds,
        "build_s": build_seconds,
        "graph_s": graph_seconds,
        "peak_rss_bytes": peak,
        "bytes_per_agent": peak / n,
        "infected_peak": int(np.max(result.metrics["infected"])),
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--nyc", action="store_true", help=f"add all of NYC ({NYC_PEOPLE:,} agents)")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contact-method", default="auto", choices=["auto", "dense", "both"])
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", nargs=4, metavar=("N", "DAYS", "REPEATS", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        n, days, repeats, method = args.worker
        print(json.dumps(worker(int(n), int(days), int(repeats), method)))
        return 0

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    if args.nyc:
        sizes.append(NYC_PEOPLE)
    methods = ["auto", "dense"] if args.contact_method == "both" else [args.contact_method]
    rows = []
    header = (f"{'agents':>10} {'edges':>11} {'method':>6} {'ms/day':>9} {'1st run':>8} {'agent-steps/s':>14} "
              f"{'edge-steps/s':>13} {'compile s':>9} {'build s':>8} {'peak GiB':>8} {'B/agent':>8}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        for method in methods:
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", str(n), str(args.days),
                 str(args.repeats), method],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                print(f"{n:>10} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{row['agents']:>10,} {row['directed_edges']:>11,} {method:>6} {row['ms_per_day']:>9.3f} "
                  f"{row['first_run_ms_per_day']:>8.3f} "
                  f"{row['agent_steps_per_s']:>14.3e} {row['edge_steps_per_s']:>13.3e} "
                  f"{row['compile_s']:>9.2f} {row['build_s']:>8.1f} {row['peak_rss_bytes'] / 2**30:>8.2f} "
                  f"{row['bytes_per_agent']:>8.0f}", flush=True)
    if rows:
        print(f"\nbackend: {rows[0]['backend']} ({rows[0]['device']}); days per run: {args.days}; "
              f"ms/day: best of {args.repeats} runs after a first run ('1st run', right after "
              f"compiling); peak = process max RSS (population build included)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
