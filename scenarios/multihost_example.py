#!/usr/bin/env python
"""One population split over the devices of several processes (multi-host), on localhost.

Every process runs this same script with its own ``--process-id``; they meet at the
coordinator (process 0's address) through ``jax.distributed.initialize``, after which
``jax.devices()`` lists the devices of all processes. The agents are split over all of
them in contiguous blocks (:mod:`jaxsim.sharding`): each process holds its own devices'
blocks, and the only traffic between processes is the daily halo exchange of the contact
sum (one ``all_to_all``) and the per-day counts (one ``all_reduce``).

Two processes with two CPU devices each (four devices in all), in two terminals or with
``&``::

    python scenarios/multihost_example.py --process-id 0 --num-processes 2 --coordinator 127.0.0.1:12355 &
    python scenarios/multihost_example.py --process-id 1 --num-processes 2 --coordinator 127.0.0.1:12355

or let the script start both on a free local port and wait for them::

    python scenarios/multihost_example.py --launch 2

Process 0 writes ``--out`` (default ``out/multihost``): ``metrics.csv`` (one row per day),
``metrics.npz`` (the exact per-day arrays) and ``run.json`` (devices, halo statistics,
timing). The metrics equal a one-device run of the same population and seed, bitwise
(``tests/test_sharding.py`` launches this script and checks it).

On real hosts: run the same command on each host with its ``--process-id``, the same
``--num-processes``, ``--coordinator`` set to an address of process 0 that every host can
reach, and ``--local-devices 0`` to use each host's accelerators instead of splitting its
CPU. On CPU the processes exchange data with gloo (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_AGENTS = 20_000
DEFAULT_DAYS = 21
#: R(t) of the example: a growing epidemic (the scenarios' default 2.5 declines here).
TRANSMISSION_RATE = 5.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--process-id", type=int, help="this process's index, 0 .. num-processes - 1")
    parser.add_argument("--num-processes", type=int, default=2, help="processes in all (default 2)")
    parser.add_argument("--coordinator", default="127.0.0.1:12355", help="HOST:PORT of process 0")
    parser.add_argument(
        "--launch", type=int, metavar="P",
        help="start P processes of this script on localhost (free port) and wait for them",
    )
    parser.add_argument(
        "--local-devices", type=int, default=2,
        help="CPU devices per process (default 2); 0 keeps the platform's own devices",
    )
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS, help="synthetic NYC agents")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/multihost", help="output folder (written by process 0)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait with --launch")
    args = parser.parse_args(argv)
    if args.launch is None and args.process_id is None:
        parser.error("give --process-id (one process) or --launch P (all processes here)")
    if args.launch is not None and args.launch < 1:
        parser.error(f"--launch must be >= 1, got {args.launch}")
    if args.process_id is not None and not 0 <= args.process_id < args.num_processes:
        parser.error(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}")
    if args.agents < 1 or args.days < 1:
        parser.error("--agents and --days must be >= 1")
    return args


def build_run(num_agents: int, days: int, seed: int, mesh=None):
    """``(model, state, params, world, key)`` of the example's COVID run, split over
    ``mesh`` when given; the same arguments give the same run in every process."""
    import jax

    from jaxsim import sharding
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    population = synthesis.synthesize_population_of_size(num_agents, seed=seed)
    world = covid.build_world(population)
    params = covid.default_params(
        world, weeks=-(-days // 7), initial_exposed_share=0.004, initial_infected_share=0.004,
        transmission_rate=TRANSMISSION_RATE,
    )
    model = covid.covid_model()
    init_key, run_key = jax.random.split(jax.random.key(seed))
    if mesh is not None:
        world = sharding.shard_world(world, mesh)
    state = model.init(init_key, params, world)
    if mesh is not None:
        state = sharding.shard_state(state, mesh, world)
        params, run_key = sharding.replicate((params, run_key), mesh)
    return model, state, params, world, run_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args) -> int:
    """Start ``args.launch`` processes of this script on localhost; wait; return the worst
    exit status (a process that fails makes the others fail at their next collective)."""
    coordinator = f"127.0.0.1:{free_port()}"
    common = [
        sys.executable, str(Path(__file__).resolve()), "--num-processes", str(args.launch),
        "--coordinator", coordinator, "--local-devices", str(args.local_devices),
        "--agents", str(args.agents), "--days", str(args.days), "--seed", str(args.seed),
        "--out", args.out,
    ]
    processes = [subprocess.Popen(common + ["--process-id", str(i)]) for i in range(args.launch)]
    deadline = time.monotonic() + args.timeout
    codes = []
    for p in processes:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in processes:
                q.kill()
            print(f"error: processes did not finish within {args.timeout:.0f} s", file=sys.stderr)
            return 1
    return max(codes, key=abs)


def run_process(args) -> int:
    import jax

    if args.local_devices:
        jax.config.update("jax_num_cpu_devices", args.local_devices)
        jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    import numpy as np

    from jaxsim import engine, outputs, sharding

    mesh = sharding.make_mesh()  # every device of every process
    model, state, params, world, key = build_run(args.agents, args.days, args.seed, mesh)
    stats = sharding.halo_stats(world)
    result = engine.run(model, key, state, params, world, args.days, progress=False, donate=True)
    if jax.process_index() == 0:
        out = Path(args.out)
        table = outputs.metrics_table(result.metrics)
        with outputs.StagedOutputs(out) as stage:
            outputs.write_metrics_csv(table, stage.path / "metrics.csv")
            np.savez(stage.path / "metrics.npz", **result.metrics)
            outputs.write_json({
                "processes": jax.process_count(),
                "devices": [str(d) for d in jax.devices()],
                "agents": args.agents, "days": args.days, "seed": args.seed,
                "halo": stats.as_dict(),
                "timing": {"compile_seconds": result.compile_seconds,
                           "run_seconds": result.run_seconds,
                           "ms_per_day": 1e3 * result.run_seconds / args.days},
            }, stage.path / "run.json")
        print(f"{jax.process_count()} processes, {jax.device_count()} devices: {args.days} days "
              f"of {args.agents:,} agents in {result.run_seconds:.2f} s "
              f"(compile {result.compile_seconds:.1f} s); "
              f"{int(result.metrics['new_infections'].sum()):,} infections; "
              f"{stats.values_per_day:,} values cross devices per day; wrote {out}")
    jax.distributed.shutdown()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.launch is not None:
        return launch(args)
    return run_process(args)


if __name__ == "__main__":
    sys.exit(main())
