#!/usr/bin/env python
"""Step time with agents in an arbitrary order vs reordered for locality, in one run.

    python benchmarks/bench_locality.py [--agents 1000000] [--days 28] [--repeats 3]

A synthetic NYC population (agents already grouped by NTA and household) is shuffled to
stand for a population file in arbitrary order, then reordered by
:func:`jaxsim.locality.localize`; both are stepped with the same model and seed. Prints
ms per day for each order and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from jaxsim import engine, locality
from jaxsim.models import covid
from jaxsim.nyc import synthesis


def ms_per_day(population, days: int, repeats: int, method: str) -> float:
    world = covid.build_world(population)
    params = covid.default_params(
        world, -(-days // 7), contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.002, initial_infected_share=0.002,
    )
    model = covid.covid_model(contact_method=method)
    best = float("inf")
    # The first run (right after compiling, or the first with this world: models built
    # alike share their compiled programs, so the second order may compile nothing) is not counted.
    for repeat in range(repeats + 1):
        state = model.init(jax.random.key(1), params, world)
        result = engine.run(model, jax.random.key(0), state, params, world, days,
                            chunk_days=days, progress=False, donate=True)
        best = min(best, result.run_seconds) if repeat > 0 else best
    return 1e3 * best / days


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contact-methods", default="auto,dense")
    args = parser.parse_args(argv)
    population = synthesis.synthesize_population_of_size(args.agents, seed=0)
    shuffled = locality.reorder(population, np.random.default_rng(0).permutation(population.size))
    start = time.perf_counter()
    localized = locality.localize(shuffled)
    reorder_seconds = time.perf_counter() - start
    print(f"{args.agents:,} agents, {population.num_contacts:,} contacts, {args.days} days, "
          f"best of {args.repeats}; reordering took {reorder_seconds:.1f} s")
    print(f"{'contact method':>14} {'shuffled ms/day':>16} {'localized ms/day':>17} {'ratio':>7}")
    for method in [m.strip() for m in args.contact_methods.split(",") if m.strip()]:
        before = ms_per_day(shuffled, args.days, args.repeats, method)
        after = ms_per_day(localized, args.days, args.repeats, method)
        print(f"{method:>14} {before:>16.3f} {after:>17.3f} {before / after:>6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
