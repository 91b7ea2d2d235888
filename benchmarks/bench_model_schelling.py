#!/usr/bin/env python
"""Schelling's segregation model: the library model against the same model in plain JAX.

    python benchmarks/bench_model_schelling.py [--side 1100] [--density 0.83] [--days 30] [--repeats 3]

The library model (:mod:`jaxsim.models.schelling`, run by :func:`jaxsim.run`) and a plain
JAX version written here without jaxsim (one ``lax.scan`` over days; the neighbourhood
from rolls of the occupancy grid; the same free-cell list and conflict resolution: the
highest priority wins each cell, ``segment_max`` then ``segment_min`` of the index on
ties; the same counter-based uniforms and the same key derivation as the library, so
that both produce the same metrics, which is checked). Both jitted, the whole run one
compiled call. Prints ms per day (best of ``--repeats`` runs after compiling and a first
run, the two versions' repeats alternating), compile seconds and the ratios. The default 1100 x 1100 grid at density 0.83 holds about 1 M
households.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import plain_draws

# ------------------------------------------------------------------- plain JAX version
EMPTY, VACANT = -1, -1
SCALE = 840  # lcm(1..8): share * 840 is a whole number


def _counts(grid, side):
    """same-type and occupied neighbours (Moore, torus) of the household on each cell."""
    g = grid.reshape(side, side)
    ones = (g == 1).astype(jnp.int8)
    occupied = (g >= 0).astype(jnp.int8)
    both = jnp.stack([ones, occupied])
    rows = both + jnp.roll(both, 1, axis=2) + jnp.roll(both, -1, axis=2)
    box = rows + jnp.roll(rows, 1, axis=1) + jnp.roll(rows, -1, axis=1) - both
    n1, total = box[0].reshape(-1).astype(jnp.int32), box[1].reshape(-1).astype(jnp.int32)
    same = jnp.where(grid == 1, n1, jnp.where(grid == 0, total - n1, 0))
    return same, jnp.where(grid >= 0, total, 0)


def plain_init(key, side, slots, density, type_share):
    cells = side * side
    k_place, k_type = jax.random.split(key)
    slot = jnp.arange(slots, dtype=jnp.int32)
    occupied = (plain_draws.uniform(k_place, slots) < density) & (slot < cells)
    group = jnp.where(occupied, (plain_draws.uniform(k_type, slots) < type_share).astype(jnp.int8), jnp.int8(VACANT))
    cell = jnp.where(occupied, slot, cells)
    grid = jnp.full(cells, EMPTY, jnp.int8).at[cell].set(group, mode="drop")
    empty = grid == EMPTY
    rank = jnp.cumsum(empty.astype(jnp.int32)) - 1
    free = jnp.full(cells, cells, jnp.int32).at[jnp.where(empty, rank, cells)].set(
        jnp.arange(cells, dtype=jnp.int32), mode="drop")
    return cell, group, grid, free


RELOCATE_ID = plain_draws.stream("relocate")  # the library's per-substep key


def plain_run(key, state, threshold, side, days):
    cells = side * side

    def day(carry, t):
        cell, group, grid, free = carry
        n = cell.shape[0]
        k = jax.random.fold_in(jax.random.fold_in(key, t), RELOCATE_ID)
        k_try, k_pick, k_priority = jax.random.split(k, 3)
        same, total = _counts(grid, side)
        packed = jnp.take(same * 16 + total, cell, mode="fill", fill_value=0)
        s, tot = packed >> 4, packed & 15
        unhappy = (tot > 0) & (s.astype(jnp.float32) < threshold * tot.astype(jnp.float32))
        movers = (plain_draws.uniform(k_try, n) < unhappy.astype(jnp.float32)) & (cell < cells)
        count = jnp.sum(grid == EMPTY, dtype=jnp.int32)
        pick = jnp.floor(plain_draws.uniform(k_pick, n) * count.astype(jnp.float32)).astype(jnp.int32)
        position = jnp.where(movers, jnp.clip(pick, 0, count - 1), cells)
        priority = plain_draws.uniform(k_priority, n)
        best = jax.ops.segment_max(jnp.where(movers, priority, -jnp.inf), position, num_segments=cells)
        holds = movers & (priority == jnp.take(best, position, mode="fill", fill_value=0))
        index = jnp.arange(n, dtype=jnp.int32)
        first = jax.ops.segment_min(jnp.where(holds, index, n), position, num_segments=cells)
        won = holds & (index == jnp.take(first, position, mode="fill", fill_value=n))
        slot = jnp.where(won, position, cells)
        new_cell = jnp.where(won, jnp.take(free, slot, mode="fill", fill_value=cells), cell)
        free = free.at[slot].set(cell, mode="drop")
        grid = jnp.full(cells, EMPTY, jnp.int8).at[new_cell].set(group, mode="drop")
        # End-of-day metrics.
        same, total = _counts(grid, side)
        has = total > 0
        scaled = jnp.where(has, (same * SCALE) // jnp.maximum(total, 1), 0)
        n_has = jnp.sum(has, dtype=jnp.int32)
        segregation = (jnp.sum(scaled >> 6).astype(jnp.float32) * 64.0 + jnp.sum(scaled & 63).astype(jnp.float32)) / (
            SCALE * jnp.maximum(n_has, 1).astype(jnp.float32))
        unhappy_end = jnp.sum(has & (same.astype(jnp.float32) < threshold * total.astype(jnp.float32)),
                              dtype=jnp.int32)
        metrics = {"segregation": segregation, "unhappy": unhappy_end, "moves": jnp.sum(won.astype(jnp.float32))}
        return (new_cell, group, grid, free), metrics

    return jax.lax.scan(day, state, jnp.arange(days, dtype=jnp.int32))


# ------------------------------------------------------------------------------- timing
def library_version(side, density, threshold, days):
    """``(run, compile seconds, metrics, slots, households)``: ``run()`` times one run of
    the library model from a fresh initial state (the state's buffers donated)."""
    import jaxsim
    from jaxsim.models import schelling

    model = schelling.schelling_model()
    world = schelling.grid_world(side, side)
    params = schelling.default_params(world, threshold=threshold, density=density)
    init = jax.jit(model.init)

    def run():
        state = jax.block_until_ready(init(jax.random.key(1), params, world))
        return jaxsim.run(model, jax.random.key(0), state, params, world, days, chunk_days=days,
                          progress=False, donate=True)

    first = run()
    households = int(jnp.sum(init(jax.random.key(1), params, world).grid >= 0))
    return (lambda: run().run_seconds), first.compile_seconds, first.metrics, world.num_slots, households


def plain_version(side, slots, density, threshold, days):
    """``(run, compile seconds, metrics)`` of the plain JAX version (same keys)."""
    init = jax.jit(plain_init, static_argnums=(1, 2))
    args = (jnp.float32(density), jnp.float32(0.5))
    state = init(jax.random.key(1), side, slots, *args)
    start = time.perf_counter()
    program = jax.jit(plain_run, static_argnums=(3, 4), donate_argnums=(1,)).lower(
        jax.random.key(0), state, jnp.float32(threshold), side, days).compile()
    compile_seconds = time.perf_counter() - start

    def run(keep=None):
        state = jax.block_until_ready(init(jax.random.key(1), side, slots, *args))
        start = time.perf_counter()
        _, out = program(jax.random.key(0), state, jnp.float32(threshold))
        out = jax.device_get(out)
        seconds = time.perf_counter() - start
        if keep is not None:
            keep.update({k: np.asarray(v) for k, v in out.items()})
        return seconds

    metrics = {}
    run(metrics)
    return run, compile_seconds, metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=1100, help="grid side (cells per row and column)")
    parser.add_argument("--density", type=float, default=0.83)
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    side, days = args.side, args.days
    lib_run, lib_compile, lib_metrics, slots, households = library_version(side, args.density, args.threshold, days)
    plain_run, plain_compile, plain_metrics = plain_version(side, slots, args.density, args.threshold, days)
    # Repeats alternate between the versions, so that a change of load on a shared machine
    # hits both alike.
    lib_best = plain_best = float("inf")
    for _ in range(args.repeats):
        lib_best = min(lib_best, lib_run())
        plain_best = min(plain_best, plain_run())
    lib_ms, plain_ms = 1e3 * lib_best / days, 1e3 * plain_best / days
    same = all(np.array_equal(lib_metrics[k], plain_metrics[k]) for k in plain_metrics)
    print(f"{side} x {side} grid ({side * side:,} cells, density {args.density}: "
          f"{households:,} households), threshold {args.threshold}, {days} days, best of {args.repeats}, "
          f"{jax.devices()[0].platform} ({jax.device_count()} device)")
    print(f"segregation {lib_metrics['segregation'][0]:.3f} -> {lib_metrics['segregation'][-1]:.3f}, "
          f"moves day 0 {int(lib_metrics['moves'][0]):,}, last day {int(lib_metrics['moves'][-1]):,}; "
          f"library metrics == plain metrics: {same}")
    print(f"{'version':>8} {'ms/day':>9} {'compile s':>10}")
    print(f"{'library':>8} {lib_ms:>9.2f} {lib_compile:>10.2f}")
    print(f"{'plain':>8} {plain_ms:>9.2f} {plain_compile:>10.2f}")
    print(f"{'ratio':>8} {lib_ms / plain_ms:>8.2f}x {lib_compile / plain_compile:>9.2f}x  (library / plain)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
