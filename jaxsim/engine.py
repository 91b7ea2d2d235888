"""The engine: a model is an ordered list of substeps; a run is a ``lax.scan`` over days.

Vocabulary:

- **state**: pytree of flat ``[N]`` agent arrays (plus small per-run arrays) that change
  every day.
- **params**: pytree of what calibration moves (transmission per week, susceptibility per
  age code, ...). Kept apart from the state, so ``grad`` and ``vmap`` over parameter sets
  need no rewrite.
- **world**: the run's constant arrays — per-agent attribute codes, the contact graph and
  time-indexed exogenous inputs. Passed to the jitted program as an argument, never closed
  over.
- **substep**: ``fn(state, params, key, t, world) -> (state, metrics)``, pure.
- **step**: the substeps in order, each with its own key
  ``fold_in(fold_in(key, t), substep_id(name))``. Substep ids come from names, so adding
  a substep (an intervention, say) does not change the random numbers of the others:
  baseline and counterfactual runs share their randomness (common random numbers), and
  member ``k`` of an ensemble equals a single run with key ``k``.

Only the declared per-day aggregates in ``metrics`` leave the device.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxsim.graph import ContactLayer

Metrics = dict[str, jax.Array]
SubstepFn = Callable[[Any, Any, jax.Array, jax.Array, "World"], tuple[Any, Metrics]]
ObserveFn = Callable[[Any, "World"], Metrics]


@struct.dataclass
class World:
    """The constant arrays of a run (jit arguments, never closed over).

    Attributes:
        agents: ``{name: [N] array}`` per-agent codes the kernels index with (e.g. the
            age code of each agent, its isolation group).
        graph: ``{layer name: ContactLayer}``.
        inputs: ``{name: [T, ...] array}`` exogenous, time-indexed inputs (per-day layer
            multipliers, per-week isolation probabilities supplied from outside, ...).
        num_agents: the population's real agents ``N`` (static). Agent arrays may be
            longer (:func:`padded_size`): slots ``N ..`` are inert padding.
        categories: static ``((name, number of categories), ...)`` of the coded agent
            arrays, so that parameter tables can be checked against them.
        slot_multiple: static; agent arrays are padded to a multiple of this many slots
            (0 means :data:`AGENT_ALIGNMENT`; :func:`jaxsim.sharding.shard_world` raises it
            so that the slots split evenly over the devices).
    """

    agents: dict[str, jax.Array]
    graph: dict[str, ContactLayer]
    inputs: dict[str, jax.Array] = struct.field(default_factory=dict)
    num_agents: int = struct.field(pytree_node=False, default=0)
    categories: tuple = struct.field(pytree_node=False, default=())
    slot_multiple: int = struct.field(pytree_node=False, default=0)

    def num_categories(self, name: str) -> int:
        """Number of categories of the coded agent array ``name``."""
        found = dict(self.categories)
        if name not in found:
            raise KeyError(f"world has no category count for {name!r}; it has {sorted(found)}")
        return found[name]

    @property
    def num_slots(self) -> int:
        """Length of the agent arrays (``num_agents`` plus padding)."""
        return padded_size(self.num_agents, self.slot_multiple or AGENT_ALIGNMENT)


#: Agent arrays are padded to a multiple of this many slots. XLA:CPU splits element-wise
#: loops in two and runs them 3-6x slower when the length is odd (measured: 47,303 agents
#: 1.88 ms/day, 47,304 agents 1.11 ms/day for the COVID step).
AGENT_ALIGNMENT = 8


def padded_size(num_agents: int, multiple: int = AGENT_ALIGNMENT) -> int:
    """``num_agents`` rounded up to a multiple of ``multiple`` (default :data:`AGENT_ALIGNMENT`)."""
    return -(-int(num_agents) // int(multiple)) * int(multiple)


def substep_id(name: str) -> int:
    """A stable 31-bit id for a substep name (used to derive its random key)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


@dataclass(frozen=True)
class Substep:
    """A named transition: ``fn(state, params, key, t, world) -> (state, metrics)``."""

    name: str
    fn: SubstepFn


@dataclass(frozen=True)
class Model:
    """An ordered composition of substeps plus end-of-day observations.

    Attributes:
        substeps: applied in order each day.
        observe: ``fn(state, world) -> metrics`` computed on the state at the end of the
            day (e.g. counts per stage).
        name: for reports.
        validate: optional ``fn(state, params, world)`` run on the host by :func:`run`
            before compiling; raises ``ValueError`` naming what does not fit (a parameter
            table of the wrong length, a missing input, ...).
    """

    substeps: tuple[Substep, ...]
    observe: ObserveFn | None = None
    name: str = "model"
    validate: Callable[[Any, Any, "World"], None] | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.substeps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model {self.name!r}: duplicate substep names {dupes}")

    def step(self, state, params, key: jax.Array, t: jax.Array, world: World):
        """One day: ``(state, params, key, t, world) -> (state, metrics)``."""
        day_key = jax.random.fold_in(key, t)
        metrics: Metrics = {}
        for sub in self.substeps:
            state, produced = sub.fn(
                state, params, jax.random.fold_in(day_key, substep_id(sub.name)), t, world
            )
            clash = set(produced) & set(metrics)
            if clash:
                raise ValueError(
                    f"model {self.name!r}: substep {sub.name!r} reports metrics {sorted(clash)} "
                    "that an earlier substep already reported"
                )
            metrics.update(produced)
        if self.observe is not None:
            observed = self.observe(state, world)
            clash = set(observed) & set(metrics)
            if clash:
                raise ValueError(f"model {self.name!r}: observe() repeats metrics {sorted(clash)}")
            metrics.update(observed)
        return state, metrics


#: Intermediate values that checkpointed blocks keep rather than recompute in a gradient
#: (tag them with ``jax.ad_checkpoint.checkpoint_name``): the per-day contact sums, one
#: float per agent per day, are the expensive part of recomputing a day.
SAVED_IN_CHECKPOINTS: tuple[str, ...] = ("contact_pressure",)


def simulate(
    model: Model,
    state,
    params,
    world: World,
    key: jax.Array,
    days: int,
    start_day: int | jax.Array = 0,
    checkpoint_days: int | None = None,
):
    """Run ``days`` days as one ``lax.scan``; pure, so it composes with jit, grad and vmap.

    Args:
        checkpoint_days: when set (e.g. 7), the days run in blocks of this length, each
            block under ``jax.checkpoint``: a reverse-mode gradient then stores the state
            once per block and recomputes the days inside a block, so its memory grows
            with ``days / checkpoint_days`` states instead of ``days`` (plus the values
            named in :data:`SAVED_IN_CHECKPOINTS`, kept to avoid recomputing them).

    Returns ``(final_state, metrics)`` with each metric stacked to ``[days, ...]``.
    """
    days = int(days)

    def body(carry, t):
        return model.step(carry, params, key, t, world)

    start = jnp.asarray(start_day, jnp.int32)
    if not checkpoint_days or checkpoint_days >= days:
        return jax.lax.scan(body, state, start + jnp.arange(days, dtype=jnp.int32))
    block = int(checkpoint_days)
    if block < 1:
        raise ValueError(f"checkpoint_days must be >= 1, got {checkpoint_days}")
    blocks, remainder = divmod(days, block)

    @partial(jax.checkpoint, policy=jax.checkpoint_policies.save_only_these_names(*SAVED_IN_CHECKPOINTS))
    def run_block(carry, first_day):
        return jax.lax.scan(body, carry, first_day + jnp.arange(block, dtype=jnp.int32))

    state, metrics = jax.lax.scan(run_block, state, start + block * jnp.arange(blocks, dtype=jnp.int32))
    metrics = jax.tree.map(lambda m: m.reshape((blocks * block,) + m.shape[2:]), metrics)
    if remainder:
        state, tail = jax.lax.scan(
            body, state, start + blocks * block + jnp.arange(remainder, dtype=jnp.int32)
        )
        metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
    return state, metrics


@dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes:
        state: the final state (device arrays).
        metrics: ``{name: numpy [days, ...]}`` per-day aggregates.
        compile_seconds: lowering + XLA compilation of the chunk programs (0 when an
            earlier run with the same model and argument shapes already compiled them).
        run_seconds: execution time of all days, compilation excluded.
        days: number of simulated days.
    """

    state: Any
    metrics: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    days: int
    chunk_days: int = 7


def _chunk_program(model: Model, chunk_days: int):
    """A jitted program that runs exactly ``chunk_days`` days from day ``t0``."""

    def chunk(state, params, world, key, t0):
        return simulate(model, state, params, world, key, chunk_days, start_day=t0)

    return jax.jit(chunk, donate_argnums=(0,))


#: Compiled chunk programs, most recently used last: ``run`` compiles a model once per
#: chunk length and argument signature, so repeated runs (seeds, parameter sweeps,
#: calibration loops) skip compilation.
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_MAX = 16


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((np.shape(x), str(getattr(x, "dtype", type(x))), str(getattr(x, "sharding", ""))) for x in leaves))


def _compiled_chunk(model: Model, chunk_days: int, state, params, world, key):
    """``(compiled program, seconds spent compiling)``; 0 seconds when cached."""
    cache_key = (model, chunk_days, _signature((state, params, world, key)))
    if cache_key in _COMPILED:
        _COMPILED.move_to_end(cache_key)
        return _COMPILED[cache_key], 0.0
    start = time.perf_counter()
    program = _chunk_program(model, chunk_days).lower(state, params, world, key, jnp.int32(0)).compile()
    seconds = time.perf_counter() - start
    _COMPILED[cache_key] = program
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return program, seconds


def run(
    model: Model,
    state,
    params,
    world: World,
    key: jax.Array,
    days: int,
    *,
    chunk_days: int = 7,
    progress: bool | str = "auto",
    description: str = "simulating",
    start_day: int = 0,
    validate: bool = True,
    before_chunk: Callable[[int, Any, "World"], "World"] | None = None,
) -> RunResult:
    """Run ``days`` days in chunks of ``chunk_days`` with a progress bar; time compile and run.

    Each chunk is a ``lax.scan`` of a compiled program; runs of at most ``2 * chunk_days``
    days are one chunk, longer runs compile at most two programs (full chunks and the
    remainder). The state stays on the device between chunks and only the metrics come
    back. Results equal :func:`simulate`'s for the same inputs.

    Args:
        progress: ``True`` always shows a bar, ``False`` never, ``"auto"`` shows one when
            the run is estimated to take more than 2 seconds.
        start_day: the day index ``t`` of the first simulated day, to continue a run from
            its state (days ``start_day .. start_day + days - 1``; weekly inputs and keys
            follow ``t``, so a run split in parts equals the run in one go).
        validate: run ``model.validate`` first (on the host, about half a millisecond);
            a caller continuing a run it already validated may skip it.
        before_chunk: ``fn(t, state, world) -> world`` called on the host before each
            chunk (``t`` its first day) to refresh the world's inputs from the state so far
            (e.g. an LLM archetype layer's weekly answers, see :mod:`jaxsim.archetypes`).
            The returned world must keep its shapes (one compiled program serves every
            chunk). With a hook, chunks are exactly ``chunk_days`` long (the last may be
            shorter), so the hook runs on that cadence.

    The input ``state`` is donated (its buffers are reused); do not use it afterwards.
    """
    days = int(days)
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    start_day = int(start_day)
    if start_day < 0:
        raise ValueError(f"start_day must be >= 0, got {start_day}")
    if validate and model.validate is not None:
        model.validate(state, params, world)
    chunk_days = max(1, int(chunk_days))
    if days <= 2 * chunk_days and before_chunk is None:
        chunk_days = days  # short runs: one chunk, one compilation
    lengths = [min(chunk_days, days - t0) for t0 in range(0, days, chunk_days)]

    # One compiled program per distinct chunk length (at most two: full and remainder),
    # reused across calls with the same model and argument shapes.
    compiled, compile_seconds = {}, 0.0
    for length in sorted(set(lengths), reverse=True):
        compiled[length], seconds = _compiled_chunk(model, length, state, params, world, key)
        compile_seconds += seconds

    chunks: list[dict[str, np.ndarray]] = []
    bar = None
    done = 0
    run_start = time.perf_counter()
    for length in lengths:
        if before_chunk is not None:
            world = before_chunk(start_day + done, state, world)
        state, metrics = compiled[length](state, params, world, key, jnp.int32(start_day + done))
        chunks.append({k: np.asarray(v) for k, v in jax.device_get(metrics).items()})
        done += length
        if bar is None and progress is not False and done < days:
            elapsed = time.perf_counter() - run_start
            if progress is True or elapsed * days / done > 2.0:
                from tqdm.auto import tqdm

                bar = tqdm(total=days, initial=done, desc=description, unit="day", file=sys.stderr)
        elif bar is not None:
            bar.update(done - bar.n)
    jax.block_until_ready(state)
    run_seconds = time.perf_counter() - run_start
    if bar is not None:
        bar.close()
    metrics_out = {k: np.concatenate([c[k] for c in chunks], axis=0) for k in chunks[0]}
    return RunResult(
        state=state,
        metrics=metrics_out,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        days=days,
        chunk_days=chunk_days,
    )


