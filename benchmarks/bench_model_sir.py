"""The library SIR model against the same model written as plain JAX.

    python benchmarks/bench_model_sir.py                      # 1 M agents, 30 days
    python benchmarks/bench_model_sir.py --agents 100000 --days 30

One Erdos-Renyi contact graph (``generators.erdos_renyi``, mean degree 10), one initial
state (0.1 % of the agents infectious), the default parameters (``tau = 0.06``,
``gamma = 0.2``: R0 = 2.4). Variants, each jitted and compiled first, then timed in turns
(round robin, so that load changes on a shared machine hit them alike) as the best of
``--repeats`` runs of all ``--days`` days:

- ``jaxsim.simulate``: the library model (:func:`jaxsim.models.sir.sir_model`) as one
  ``lax.scan`` under ``jax.jit``, with its default contact sums (``auto``: a push from
  the few infectious agents while they fit a capacity tier, else the pull over every edge)
  and with ``contact_method="dense"`` (always the pull);
- ``jaxsim.run``: the user-level run (chunks of 7 days, metrics back to the host after each);
- plain JAX (:func:`plain_sir`, below; no jaxsim import): a ``lax.scan`` over days, an int8
  status per agent, ``jax.ops.segment_sum`` over the same edge arrays, written the way a
  JAX user would, with ``jax.random.uniform`` draws (threefry); and the same code with the
  library's draws (its counter-based hash and key derivation, copied), whose trajectory
  must equal the library's exactly (checked: a benchmark of the same model).

Prints a table: compile seconds, milliseconds per simulated day, and the ratio of each
library variant's time to each plain variant's. The day's work depends on the epidemic's
phase (the push only pays while few agents are infectious), so compare rows of one run.
Timings on a shared machine vary from run to run: rerun before drawing conclusions.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import plain_draws


# ------------------------------------------------------------------- plain JAX (no jaxsim)
SUSCEPTIBLE, INFECTIOUS, RECOVERED = 0, 1, 2


def threefry_draws(key, t, n):
    """Two independent uniform arrays for day ``t`` (what a JAX user would write)."""
    k_infection, k_recovery = jax.random.split(jax.random.fold_in(key, t))
    return jax.random.uniform(k_infection, (n,)), jax.random.uniform(k_recovery, (n,))


def same_draws(key, t, n):
    """The library's uniforms for day ``t``: a key per (day, substep name) and a
    counter-based hash of the agent index (plain_draws: copied from jaxsim)."""
    day = jax.random.fold_in(key, t)
    named = [jax.random.fold_in(day, plain_draws.stream(name)) for name in ("infection", "recovery")]
    return tuple(plain_draws.uniform(k, n) for k in named)


@partial(jax.jit, static_argnames=("days", "draws"))
def plain_sir(status, src, dst, tau, gamma, key, days, draws=threefry_draws):
    """SIR on a contact graph, each day: susceptible agents are infected with probability
    ``1 - (1 - tau)^k`` (``k`` infectious neighbours at the start of the day), agents
    infectious at the start of the day recover with probability ``gamma``; today's
    infections are infectious from tomorrow. ``status`` int8 ``[N]``; ``src, dst`` int32
    directed edges (both directions) sorted by ``dst``. Returns the final status and the
    per-day counts."""
    n = status.shape[0]
    log_escape = jnp.log1p(-tau)

    def day(status, t):
        infectious = status == INFECTIOUS
        k = jax.ops.segment_sum(infectious.astype(jnp.float32)[src], dst, num_segments=n, indices_are_sorted=True)
        p = -jnp.expm1(k * log_escape)
        u_infection, u_recovery = draws(key, t, n)
        infected = (status == SUSCEPTIBLE) & (u_infection < p)
        recovered = infectious & (u_recovery < gamma)
        status = jnp.where(infected, jnp.int8(INFECTIOUS), jnp.where(recovered, jnp.int8(RECOVERED), status))
        counts = {
            "susceptible": jnp.sum(status == SUSCEPTIBLE, dtype=jnp.int32),
            "infectious": jnp.sum(status == INFECTIOUS, dtype=jnp.int32),
            "recovered": jnp.sum(status == RECOVERED, dtype=jnp.int32),
            "new_infections": jnp.sum(infected, dtype=jnp.int32),
            "new_recoveries": jnp.sum(recovered, dtype=jnp.int32),
        }
        return status, counts

    return jax.lax.scan(day, status, jnp.arange(days, dtype=jnp.int32))


# ------------------------------------------------------------------------------ harness
def _seconds(compiled, *arguments) -> float:
    """Wall-clock seconds of one call of a compiled program, to the end of its work."""
    start = time.perf_counter()
    jax.block_until_ready(compiled(*arguments))
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1_000_000)
    parser.add_argument("--degree", type=float, default=10.0, help="mean degree of the Erdos-Renyi graph")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant, in turns")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jaxsim
    from jaxsim import generators
    from jaxsim.models import sir

    # Warm the compiler (its one-time start-up would otherwise count against whichever
    # version compiles first).
    jax.jit(lambda v: v + 1).lower(jnp.float32(1.0)).compile()
    start = time.perf_counter()
    n, days = args.agents, args.days
    edges = generators.erdos_renyi(n, args.degree, seed=args.seed)
    world = sir.build_world(generators.population(n, {"contacts": edges}))
    params = sir.default_params()
    layer = world.graph["contacts"]
    print(f"{n:,} agents, {layer.num_directed_edges:,} directed edges, {days} days, tau {float(params.tau)}, "
          f"gamma {float(params.gamma)}, {jax.devices()[0].platform} x{jax.device_count()}; "
          f"graph and world built in {time.perf_counter() - start:.1f} s", flush=True)
    init_key, key = jax.random.split(jax.random.key(args.seed))
    models = {"auto": sir.sir_model(), "dense": sir.sir_model(contact_method="dense")}
    state = models["auto"].init(init_key, params, world)
    # The plain version's initial status: the same agents infectious (its arrays have the
    # N agents only; the library pads them to a multiple of 8 slots).
    status0 = jnp.where(state.infectious[:n] > 0.5, jnp.int8(INFECTIOUS), jnp.int8(SUSCEPTIBLE))
    # Compile every variant first, then time them in turns (round robin), so that a
    # change of load on a shared machine hits all of them alike; report each one's best.
    variants = []  # (name, compile seconds, fn() -> seconds, metrics)
    for method, model in models.items():
        program = jax.jit(lambda s, p, w, k, model=model: jaxsim.simulate(model, k, s, p, w, days))
        t0 = time.perf_counter()
        compiled = program.lower(state, params, world, key).compile()
        compile_s = time.perf_counter() - t0
        metrics = jax.device_get(compiled(state, params, world, key)[1])
        variants.append((f"jaxsim.simulate ({method} contact sums)", compile_s,
                         partial(_seconds, compiled, state, params, world, key), metrics))

    first = jaxsim.run(models["auto"], key, state, params, world, days, progress=False)
    variants.append(("jaxsim.run (auto, 7-day chunks)", first.compile_seconds,
                     lambda: jaxsim.run(models["auto"], key, state, params, world, days, progress=False).run_seconds,
                     first.metrics))

    for name, draws in (("jax.random", threefry_draws), ("same draws", same_draws)):
        arguments = (status0, layer.src, layer.dst, params.tau, params.gamma, key)
        t0 = time.perf_counter()
        compiled = plain_sir.lower(*arguments, days=days, draws=draws).compile()
        compile_s = time.perf_counter() - t0
        metrics = jax.device_get(compiled(*arguments)[1])
        variants.append((f"plain JAX ({name})", compile_s, partial(_seconds, compiled, *arguments), metrics))
    for name, compile_s, _, _ in variants:
        print(f"  compiled {name} in {compile_s:.1f} s", flush=True)

    best = {name: float("inf") for name, *_ in variants}
    for _ in range(args.repeats):
        for name, _, fn, _ in variants:
            best[name] = min(best[name], fn())
    rows = [(name, compile_s, best[name], metrics) for name, compile_s, _, metrics in variants[:3]]
    plain = {name[len("plain JAX ("):-1]: (compile_s, best[name], metrics) for name, compile_s, _, metrics in variants[3:]}

    # The same model: with the library's draws, the plain trajectory equals the library's.
    library_metrics = rows[0][3]
    same = all(np.array_equal(np.asarray(library_metrics[k]), np.asarray(plain["same draws"][2][k]))
               for k in plain["same draws"][2])
    consistent = all(np.array_equal(np.asarray(library_metrics[k]), np.asarray(metrics[k]))
                     for _, _, _, metrics in rows[1:] for k in library_metrics)
    infected = int(np.sum(library_metrics["new_infections"]))

    base_threefry, base_same = plain["jax.random"][1], plain["same draws"][1]
    header = "| variant | compile s | ms/day | library / plain (jax.random) | library / plain (same draws) |"
    print()
    print(f"SIR, {n:,} agents, mean degree {args.degree:g}, {days} days ({infected:,} infections, "
          f"{int(library_metrics['infectious'][-1]):,} infectious on the last day); best of {args.repeats}")
    print()
    print(header)
    print("|---|---:|---:|---:|---:|")
    for name, compile_s, seconds, _ in rows:
        print(f"| {name} | {compile_s:.1f} | {1e3 * seconds / days:.2f} | {seconds / base_threefry:.2f} | "
              f"{seconds / base_same:.2f} |")
    for name, (compile_s, seconds, _) in plain.items():
        print(f"| plain JAX ({name}) | {compile_s:.1f} | {1e3 * seconds / days:.2f} | | |")
    print()
    print(f"the library variants give the same trajectory: {'yes' if consistent else 'NO'}; plain JAX with "
          f"the library's draws reproduces it exactly: {'yes' if same else 'NO'}")
    return 0 if same and consistent else 1


if __name__ == "__main__":
    raise SystemExit(main())
