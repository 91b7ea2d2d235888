#!/usr/bin/env python
"""Cost of gradients through a whole run, and of a calibration, on synthetic Astoria.

    python benchmarks/bench_calibration.py [--agents 47303] [--weeks 4] [--repeats 3]
                                           [--fit-weeks 4,8] [--steps 60] [--seeds 4]

Prints two tables:

1. Forward run vs ``jax.value_and_grad`` of a weekly-cases loss with respect to the
   weekly transmission rates (straight-through estimator): seconds per run (best of
   ``--repeats``, after compiling), the ratio gradient/forward (target: at most 3x), peak
   resident memory of a process doing only that, with and without weekly checkpointing.
2. Wall time of ``jaxsim.calibration.fit`` (Adam, ``--steps`` steps, ``--seeds`` runs
   averaged per step) on ``W`` weeks of synthetic observations, compilation included
   (target: calibrating Astoria over 8 weeks in under a minute on a 2-core CPU).
3. Calibrating Astoria's observed weekly cases over ``--case-weeks`` weeks from epiweek
   ``--case-start`` (``jaxsim.nyc.forecast.case_calibration``, the problem of
   ``scenarios/calibrate_covid.py``): the gradient fit, and CMA-ES and Nelder-Mead on the
   same simulator budget, each in a fresh process, compilation included (targets of
   issue 14: gradient under 30 s, gradient-free under 60 s on this 2-core CPU).

Each measurement runs in a fresh subprocess so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _setup(agents: int, weeks: int, estimator: str):
    import jax
    import numpy as np

    from jaxsim import calibration
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    population = synthesis.synthesize_nyc_population(["QN0103"], seed=0, max_agents=agents)
    world = covid.build_world(population)
    params = covid.default_params(
        world, weeks, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.002, initial_infected_share=0.002, transmission_rate=3.0,
    )
    model = covid.covid_model()  # the estimator is a setting of the runs (the problem's)
    problem = calibration.CalibrationProblem(
        model, world, params, np.full(weeks, 100.0, np.float32), weeks,
        calibration.Observation("new_cases", 7, scale=0.25), estimator=estimator,
    )
    return jax, np, calibration, problem


def case_worker(method: str, agents: int, start_week: int, weeks: int, steps: int, seeds: int) -> dict:
    """One calibration of Astoria's observed cases, timed from the problem's construction."""
    from jaxsim import calibration
    from jaxsim.nyc import synthesis
    from jaxsim.nyc.forecast import case_calibration

    population = synthesis.synthesize_nyc_population(["QN0103"], seed=0, max_agents=agents)
    start = time.perf_counter()
    case = case_calibration(population, "QN0103", start_week, weeks, 0)
    if method == "gradient":
        result = calibration.fit(case.problem, steps=steps, seeds_per_step=seeds)
    else:
        result = calibration.gradient_free_fit(case.problem, simulator_runs=steps * seeds,
                                               seeds_per_evaluation=seeds, method=method)
    seconds = time.perf_counter() - start
    return {"mode": f"cases_{method}", "agents": population.size, "weeks": weeks, "seconds": seconds,
            "runs": result.simulator_runs, "loss_first": result.loss_curve[0], "loss_best": min(result.loss_curve),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def worker(mode: str, agents: int, weeks: int, repeats: int, steps: int, seeds: int) -> dict:
    if mode.startswith("cases_"):
        return case_worker(mode.removeprefix("cases_"), agents, repeats, weeks, steps, seeds)
    if mode == "fit":
        jax, np, calibration, problem = _setup(agents, weeks, "straight_through")
        truth = problem.simulate(problem.params, jax.random.key(5), weeks)
        problem.observed = np.asarray(truth, np.float32)
        problem.params = problem.params.replace(transmission_rate=problem.params.transmission_rate * 0.5)
        start = time.perf_counter()
        result = calibration.fit(problem, steps=steps, seeds_per_step=seeds)
        seconds = time.perf_counter() - start
        return {"mode": mode, "agents": agents, "weeks": weeks, "steps": steps, "seeds": seeds,
                "seconds": seconds, "compile_seconds": result.compile_seconds,
                "loss_first": result.loss_curve[0], "loss_last": result.loss_curve[-1],
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}

    checkpoint = mode.endswith("_ckpt")
    kind = mode.replace("_ckpt", "")
    jax, np, calibration, problem = _setup(agents, weeks, "straight_through")
    import jax.numpy as jnp

    from jaxsim import engine

    def weekly(rates, key):
        params = problem.params.replace(transmission_rate=rates)
        init_key, run_key = jax.random.split(key)
        state = engine.initial_state(problem.model, init_key, params, problem.world, estimator="straight_through")
        _, m = engine.simulate(problem.model, run_key, state, params, problem.world, 7 * weeks,
                               checkpoint_days=7 if checkpoint else None, estimator="straight_through")
        return m["new_cases"].reshape(weeks, 7).sum(1)

    def loss(rates, key):
        return calibration.scaled_poisson_deviance(weekly(rates, key), jnp.full(weeks, 100.0))

    function = jax.jit(loss if kind == "forward" else jax.value_and_grad(loss))
    rates = problem.params.transmission_rate
    start = time.perf_counter()
    jax.block_until_ready(function(rates, jax.random.key(0)))
    compile_and_first = time.perf_counter() - start
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(rates, jax.random.key(r + 1)))
        best = min(best, time.perf_counter() - start)
    return {"mode": mode, "agents": agents, "weeks": weeks, "seconds": best,
            "first_call_seconds": compile_and_first,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _run_worker(args: list[str]) -> dict | None:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"worker {args} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=47303)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-weeks", default="4,8")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--case-weeks", type=int, default=8, help="weeks of Astoria's cases calibrated (default 8)")
    parser.add_argument("--case-start", type=int, default=202047, help="first epiweek calibrated (default 202047)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: gradient,fit,cases")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, agents, weeks, repeats, steps, seeds = args.worker
        print(json.dumps(worker(mode, int(agents), int(weeks), int(repeats), int(steps), int(seeds))))
        return 0

    rows = []
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if "gradient" not in skip:
        gradient_cost(args, rows)
    if "fit" not in skip:
        fit_cost(args, rows)
    if "cases" not in skip:
        case_cost(args, rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


def case_cost(args, rows: list) -> None:
    print(f"\ncalibrating Astoria's observed cases, {args.case_weeks} weeks from {args.case_start}, "
          f"{args.steps * args.seeds} simulator runs each, fresh process, compile included")
    print(f"{'method':>14} {'seconds':>8} {'runs':>6} {'loss first':>10} {'loss best':>9} {'target':>8}")
    for method, target in (("gradient", 30.0), ("cma-es", 60.0), ("nelder-mead", 60.0)):
        # The worker reads the start epiweek from its "repeats" slot.
        row = _run_worker([f"cases_{method}", str(args.agents), str(args.case_weeks), str(args.case_start),
                           str(args.steps), str(args.seeds)])
        if row is None:
            continue
        rows.append(row)
        met = "met" if row["seconds"] < target else "MISSED"
        print(f"{method:>14} {row['seconds']:>8.1f} {row['runs']:>6} {row['loss_first']:>10.3f} "
              f"{row['loss_best']:>9.3f} {f'<{target:.0f}s {met}':>8}", flush=True)


def gradient_cost(args, rows: list) -> None:
    print(f"gradient cost: {args.agents:,} agents, {args.weeks} weeks, straight-through estimator")
    print(f"{'mode':>16} {'s per run':>10} {'x forward':>10} {'peak GiB':>9}")
    forward = None
    for mode in ("forward", "grad", "grad_ckpt"):
        row = _run_worker([mode, str(args.agents), str(args.weeks), str(args.repeats), "0", "0"])
        if row is None:
            continue
        rows.append(row)
        if mode == "forward":
            forward = row["seconds"]
        ratio = row["seconds"] / forward if forward else float("nan")
        row["ratio_to_forward"] = ratio
        print(f"{mode:>16} {row['seconds']:>10.3f} {ratio:>10.2f} {row['peak_rss_bytes'] / 2**30:>9.2f}", flush=True)


def fit_cost(args, rows: list) -> None:
    print(f"\ncalibration: fit of weekly R(t), {args.steps} Adam steps x {args.seeds} seeds, compile included")
    print(f"{'weeks':>6} {'seconds':>8} {'compile s':>9} {'loss first':>10} {'loss last':>9}")
    for weeks in [int(w) for w in args.fit_weeks.split(",") if w.strip()]:
        row = _run_worker(["fit", str(args.agents), str(weeks), "1", str(args.steps), str(args.seeds)])
        if row is None:
            continue
        rows.append(row)
        print(f"{weeks:>6} {row['seconds']:>8.1f} {row['compile_seconds']:>9.1f} "
              f"{row['loss_first']:>10.3f} {row['loss_last']:>9.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
