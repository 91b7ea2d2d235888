#!/usr/bin/env python
"""Ensemble throughput: members per second of one vmapped ensemble against running the
members one by one.

    python benchmarks/bench_ensemble.py [--agents astoria,1000000] [--members 32,256]
                                        [--days 28] [--repeats 2] [--sequential 8]

For each population (``astoria`` = the synthetic Astoria, QN0103, 47,303 agents; a number
= a synthetic NYC population of that many agents) and each ensemble size, prints:

- sequential members/s: one jitted run per member (``jaxsim.ensemble.member_metrics``
  under ``jax.jit``, compiled once, the best of ``--repeats`` passes over ``--sequential``
  members), the way a loop over seeds runs them;
- ensemble members/s: ``jaxsim.ensemble.run_ensemble`` over all members (batches chosen
  from the device's free memory), compilation excluded (best of ``--repeats``);
- the ratio, the batch size, the ensemble's compile seconds and the members' bytes.

The model is the COVID model without interventions (``covid_model()``, the default
``"auto"`` contact method), R(t) = 3, initial exposed and infected shares 0.2% each.
Sequential and ensemble passes alternate, so that a machine shared with other work
slows both alike.
"""

from __future__ import annotations

import argparse
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="astoria,1000000", help="comma-separated: astoria or agent counts")
    parser.add_argument("--members", default="32,256", help="comma-separated ensemble sizes")
    parser.add_argument("--days", type=int, default=28, help="days per run (default 28)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes, best kept (default 2)")
    parser.add_argument("--sequential", type=int, default=8, help="members timed one by one (default 8)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax
    import numpy as np

    from jaxsim import covid, ensemble, memory, synthetic

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), days per run: {args.days}")
    header = (f"{'agents':>10} {'members':>8} {'batch':>6} {'sequential/s':>13} {'ensemble/s':>11} "
              f"{'ratio':>6} {'compile s':>10} {'MiB/member':>11}")
    print(header)
    for spec in [s.strip() for s in args.agents.split(",") if s.strip()]:
        if spec == "astoria":
            population = synthetic.synthesize_nyc_population(["QN0103"], seed=0)
        else:
            population = synthetic.synthesize_population_of_size(int(spec), seed=0)
        world = covid.build_world(population)
        params = covid.default_params(
            population, -(-args.days // 7), contact_normaliser=covid.default_contact_normaliser(world),
            initial_exposed_share=0.002, initial_infected_share=0.002, transmission_rate=3.0,
        )
        model = covid.covid_model()
        single = jax.jit(lambda p, k, w: ensemble.member_metrics(model, p, w, k, args.days))
        seq_keys = ensemble.member_keys(1, args.sequential)
        jax.block_until_ready(single(params, seq_keys[0], world))  # compile

        def sequential() -> float:
            start = time.perf_counter()
            for key in seq_keys:
                jax.block_until_ready(single(params, key, world))
            return args.sequential / (time.perf_counter() - start)

        for members in [int(m) for m in args.members.split(",") if m.strip()]:
            keys = ensemble.member_keys(2, members)
            seq_best, ens_best, result = 0.0, 0.0, None
            compile_seconds = None
            for _ in range(max(1, args.repeats)):
                seq_best = max(seq_best, sequential())
                result = ensemble.run_ensemble(model, params, world, keys, args.days)
                if compile_seconds is None:
                    compile_seconds = result.compile_seconds
                ens_best = max(ens_best, members / result.run_seconds)
            state = covid.initial_state(params, jax.random.key(0), world)
            metrics = jax.eval_shape(lambda k: ensemble.member_metrics(model, params, world, k, args.days),
                                     jax.random.key(0))
            per_member = ensemble.member_bytes(world, state, metrics) / 2**20
            print(f"{population.size:>10,} {members:>8} {result.batch_size:>6} {seq_best:>13.2f} {ens_best:>11.2f} "
                  f"{ens_best / seq_best:>5.2f}x {compile_seconds:>10.1f} {per_member:>11.1f}", flush=True)
        del world
    print(f"(memory available at the end: {memory.device_capacity_bytes() / 2**30:.1f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
