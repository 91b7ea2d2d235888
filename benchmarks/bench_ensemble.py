#!/usr/bin/env python
"""Ensemble throughput: members per second of one vmapped ensemble against running the
members one by one.

    python benchmarks/bench_ensemble.py [--agents astoria,1000000] [--members 32,256]
                                        [--days 28] [--repeats 2] [--sequential 8]
                                        [--cpu-devices N] [--batch B]

For each population (``astoria`` = the synthetic Astoria, QN0103, 47,303 agents; a number
= a synthetic NYC population of that many agents) and each ensemble size, prints:

- sequential members/s: one jitted run per member (``jaxsim.ensemble.member_metrics``
  under ``jax.jit``, compiled once, the best of ``--repeats`` passes over ``--sequential``
  members), the way a loop over seeds runs them;
- ensemble members/s: ``jaxsim.ensemble.run_ensemble`` over all members (batches chosen
  from the device's free memory, or ``--batch`` per device), spread over every local
  device, compilation excluded (best of ``--repeats``). ``--cpu-devices N`` splits the
  CPU into N devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, set before
  JAX starts), so that the members run on N cores at once; the sequential runs are the
  same single-device program either way;
- the ratio, the batch size, the ensemble's compile seconds and the members' bytes.

The model is the COVID model without interventions (``covid_model()``, the default
``"auto"`` contact method), R(t) = 3, initial exposed and infected shares 0.2% each.
Sequential and ensemble passes alternate, so that a machine shared with other work
slows both alike.
"""

from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="astoria,1000000", help="comma-separated: astoria or agent counts")
    parser.add_argument("--members", default="32,256", help="comma-separated ensemble sizes")
    parser.add_argument("--days", type=int, default=28, help="days per run (default 28)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes, best kept (default 2)")
    parser.add_argument("--sequential", type=int, default=8, help="members timed one by one (default 8)")
    parser.add_argument("--cpu-devices", type=int, help="split the CPU into N devices for the ensemble")
    parser.add_argument("--batch", type=int, help="members per device per call (default: run_ensemble's rule)")
    args = parser.parse_args(argv)
    if args.cpu_devices is not None and args.cpu_devices < 1:
        parser.error(f"--cpu-devices must be >= 1, got {args.cpu_devices}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu_devices is not None:
        import os

        if "jax" in sys.modules:
            raise SystemExit("--cpu-devices must be given before JAX starts (run this file as a script)")
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.cpu_devices}".strip()
    import jax
    import numpy as np

    from jaxsim import ensemble, memory
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}) x {jax.local_device_count()}, "
          f"days per run: {args.days}")
    header = (f"{'agents':>10} {'members':>8} {'devices':>7} {'batch':>6} {'sequential/s':>13} {'ensemble/s':>11} "
              f"{'ratio':>6} {'compile s':>10} {'MiB/member':>11}")
    print(header)
    for spec in [s.strip() for s in args.agents.split(",") if s.strip()]:
        if spec == "astoria":
            population = synthesis.synthesize_nyc_population(["QN0103"], seed=0)
        else:
            population = synthesis.synthesize_population_of_size(int(spec), seed=0)
        world = covid.build_world(population)
        params = covid.default_params(
            world, -(-args.days // 7), contact_normaliser=covid.default_contact_normaliser(world),
            initial_exposed_share=0.002, initial_infected_share=0.002, transmission_rate=3.0,
        )
        model = covid.covid_model()
        single = jax.jit(lambda p, k, w: ensemble.member_metrics(model, k, p, w, args.days))
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
                result = ensemble.run_ensemble(model, keys, params, world, args.days, batch_size=args.batch)
                if compile_seconds is None:
                    compile_seconds = result.compile_seconds
                ens_best = max(ens_best, members / result.run_seconds)
            state = model.init(jax.random.key(0), params, world)
            metrics = jax.eval_shape(lambda k: ensemble.member_metrics(model, k, params, world, args.days),
                                     jax.random.key(0))
            per_member = ensemble.member_bytes(world, state, metrics) / 2**20
            print(f"{population.size:>10,} {members:>8} {result.devices:>7} {result.batch_size:>6} {seq_best:>13.2f} {ens_best:>11.2f} "
                  f"{ens_best / seq_best:>5.2f}x {compile_seconds:>10.1f} {per_member:>11.1f}", flush=True)
        del world
    print(f"(memory available at the end: {memory.device_capacity_bytes() / 2**30:.1f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
