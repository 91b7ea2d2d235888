"""Ensembles: many runs as one compiled ``vmap``, with tables, quantile bands and paired
comparisons under common random numbers.

- :func:`run_ensemble` runs ``M`` members of any model, member ``k`` with key ``keys[k]``
  (its initial state from the model's ``init`` with ``split(keys[k])[0]``, its run from
  ``split(keys[k])[1]``, exactly as :func:`member_metrics` does for one member), over one
  set of parameters or a :class:`ParamBatch` (one parameter set per member, e.g. a grid of
  compliance levels), in batches that fit the device's memory (:func:`choose_batch_size`).
- :class:`EnsembleResult` holds the per-member metrics ``[M, days, ...]`` and gives a long
  table (member, day, metric, value), quantile bands per day, and per-member totals.
- :func:`compare` reports a baseline and alternatives run on the *same* member keys:
  per-scenario quantiles of totals and the paired differences of the model's declared
  outcomes (``Model.outcomes``; e.g. infections averted) with intervals. Because every
  random number of a run is a function of its key, the substep's name and the agent's
  index (:mod:`jaxsim.engine`, :mod:`jaxsim.sampling`), member ``k`` of two scenarios
  differ only through the policy.

Kernels that models call (e.g. :func:`jaxsim.kernels.neighbour_sums.neighbour_sum`) carry
batching rules, so a batch of members costs less than the members one by one and no
model chooses a method for ``vmap``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsim import engine, memory, sampling
from jaxsim.engine import Model, World
from jaxsim.errors import InputError
from jaxsim.sharding import more_devices_hint

#: Quantiles reported by default (a 90% and a 50% band around the median).
DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


class EnsembleError(InputError):
    """An ensemble was asked for something inconsistent (key count, batch, unpaired runs)."""


# ----------------------------------------------------------------------- parameter batches
@dataclass(frozen=True)
class ParamBatch:
    """Parameters that differ between members.

    Attributes:
        tree: a parameter pytree whose batched leaves have a leading member axis ``[M, ...]``.
        axes: a pytree prefix of ``tree`` for ``vmap``'s ``in_axes``: 0 for batched leaves,
            ``None`` for leaves all members share (stored once).
        size: ``M``.
    """

    tree: Any
    axes: Any
    size: int

    def member(self, k: int):
        """Member ``k``'s parameters (a plain pytree)."""
        return jax.tree.map(
            lambda leaf, axis: leaf if axis is None else leaf[k], self.tree, self.axes,
            is_leaf=lambda x: x is None,
        )

    def take(self, index: np.ndarray) -> "ParamBatch":
        """The members ``index`` (any order, repeats allowed)."""
        index = jnp.asarray(np.asarray(index, np.int32))
        tree = jax.tree.map(
            lambda leaf, axis: leaf if axis is None else leaf[index], self.tree, self.axes,
            is_leaf=lambda x: x is None,
        )
        return ParamBatch(tree, self.axes, int(index.shape[0]))


def stack_params(param_sets: Sequence[Any]) -> ParamBatch:
    """One parameter set per member, as a :class:`ParamBatch`.

    All sets must have the same structure (the same interventions, the same table
    shapes). Leaves equal in every set are kept once (``axis None``); the others are
    stacked along a new leading axis.
    """
    param_sets = list(param_sets)
    if not param_sets:
        raise EnsembleError("stack_params needs at least one parameter set")
    first_leaves, treedef = jax.tree.flatten(param_sets[0])
    all_leaves = []
    for k, p in enumerate(param_sets):
        leaves, other = jax.tree.flatten(p)
        if other != treedef:
            raise EnsembleError(
                f"parameter set {k} differs in structure from set 0 (different interventions or "
                "static fields); sets stacked into one ensemble must share their structure"
            )
        all_leaves.append(leaves)
    stacked, axes = [], []
    for i, leaf in enumerate(first_leaves):
        column = [np.asarray(leaves[i]) for leaves in all_leaves]
        if any(c.shape != column[0].shape for c in column):
            raise EnsembleError(f"parameter leaf {i} has different shapes across sets: {[c.shape for c in column]}")
        if all(np.array_equal(c, column[0]) for c in column[1:]):
            stacked.append(leaf)
            axes.append(None)
        else:
            stacked.append(jnp.asarray(np.stack(column)))
            axes.append(0)
    tree = jax.tree.unflatten(treedef, stacked)
    axes_tree = jax.tree.unflatten(treedef, axes)
    return ParamBatch(tree, axes_tree, len(param_sets))


def cross(param_sets: Sequence[Any], keys: jax.Array, set_labels: Sequence[str] | None = None):
    """Every parameter set with every key: ``(ParamBatch, keys, members)`` for
    ``S x R`` members, set-major (member ``s * R + r`` is set ``s`` with key ``r``), so
    that the sets share their keys (common random numbers). ``members`` is a table with
    columns ``set`` (label) and ``replicate``."""
    param_sets = list(param_sets)
    keys = _check_keys(keys)
    reps = int(keys.shape[0])
    labels = list(set_labels) if set_labels is not None else [str(i) for i in range(len(param_sets))]
    if len(labels) != len(param_sets):
        raise EnsembleError(f"{len(labels)} set labels for {len(param_sets)} parameter sets")
    batch = stack_params(param_sets).take(np.repeat(np.arange(len(param_sets)), reps))
    all_keys = jnp.concatenate([keys] * len(param_sets))
    members = pd.DataFrame({
        "set": np.repeat(labels, reps),
        "replicate": np.tile(np.arange(reps), len(param_sets)),
    })
    return batch, all_keys, members


def member_keys(seed: int, members: int) -> jax.Array:
    """``members`` independent keys from one seed (``split(key(seed), members)``)."""
    if int(members) < 1:
        raise EnsembleError(f"an ensemble needs at least 1 member, got {members}")
    return jax.random.split(jax.random.key(int(seed)), int(members))


def _check_keys(keys) -> jax.Array:
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1:
        raise EnsembleError(
            "keys must be a 1-D array of typed JAX keys (e.g. jax.random.split(jax.random.key(0), M))"
        )
    if keys.shape[0] < 1:
        raise EnsembleError("an ensemble needs at least 1 member")
    return keys


# --------------------------------------------------------------------------- one member
def member_metrics(
    model: Model,
    key: jax.Array,
    params,
    world: World,
    days: int,
    *,
    start_day: int = 0,
    metric_names: Sequence[str] | None = None,
    checkpoint_days: int | None = None,
    estimator=None,
) -> dict[str, jax.Array]:
    """One member: the model's initial state from ``split(key)[0]``, a run of ``days`` days
    from ``split(key)[1]``; the metrics ``{name: [days, ...]}``. Pure (jit, vmap, grad)."""
    init_key, run_key = jax.random.split(key)
    with sampling.estimator_scope(estimator):
        state = engine.initial_state(model, init_key, params, world)
        _, metrics = engine.simulate(
            model, run_key, state, params, world, days, start_day=start_day, checkpoint_days=checkpoint_days,
        )
    if metric_names is not None:
        missing = [name for name in metric_names if name not in metrics]
        if missing:
            raise EnsembleError(f"model {model.name!r} reports no metrics {missing}; it reports {sorted(metrics)}")
        metrics = {name: metrics[name] for name in metric_names}
    return metrics


# ------------------------------------------------------------------------------- memory
def tree_bytes(tree) -> int:
    """Bytes of the array leaves of a pytree (shapes only; works on abstract values)."""
    return int(sum(np.prod(np.shape(x), dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(tree) if hasattr(x, "dtype")))


def member_bytes(world: World, state_shape, metrics_shape, batched_params_bytes: int = 0,
                 working_bytes_per_slot: int = memory.WORKING_BYTES_PER_SLOT) -> int:
    """Estimated device bytes one member of a batch adds: its state, its metrics over the
    whole run, its parameters, and the working memory of a day (the model's
    ``working_bytes_per_agent`` per slot, plus 4 bytes per directed edge for the contact
    sums' temporaries)."""
    edges = sum(int(layer.src.shape[0]) for layer in world.graph.values() if hasattr(layer, "src"))
    working = int(working_bytes_per_slot) * world.num_slots + 4 * edges
    return tree_bytes(state_shape) + tree_bytes(metrics_shape) + int(batched_params_bytes) + working


def choose_batch_size(members: int, shared_bytes: int, per_member_bytes: int, capacity_bytes: int | None) -> int:
    """The most members (at most ``members``) whose bytes fit in
    :data:`jaxsim.memory.HEADROOM` of ``capacity_bytes`` next to ``shared_bytes``; all of
    them when the capacity is unknown (``None``). Raises
    :class:`jaxsim.memory.InsufficientMemoryError` when not even one fits."""
    members = int(members)
    if capacity_bytes is None:
        return members
    usable = memory.HEADROOM * capacity_bytes - shared_bytes
    fit = int(usable // max(per_member_bytes, 1))
    if fit < 1:
        raise memory.InsufficientMemoryError(
            f"one ensemble member needs about {per_member_bytes / 2**30:.2f} GiB next to "
            f"{shared_bytes / 2**30:.2f} GiB shared, the device has {capacity_bytes / 2**30:.2f} GiB "
            f"available ({int(memory.HEADROOM * 100)}% usable): use fewer agents or a device with more memory"
        )
    return min(members, fit)


# ------------------------------------------------------------------------------ results
@dataclass
class EnsembleResult:
    """What :func:`run_ensemble` returns.

    Attributes:
        metrics: ``{name: numpy [M, days, ...]}`` per member and day.
        key_data: uint32 ``[M, ...]`` the members' key data, so that paired comparisons
            can check that two ensembles share their random numbers.
        members: one row per member (column ``member`` = 0..M-1, plus labels such as
            ``set`` and ``replicate`` from :func:`cross`).
        days, start_day: the simulated days are ``start_day .. start_day + days - 1``.
        compile_seconds, run_seconds: compilation (0 when an earlier ensemble compiled the
            same program), and execution of all batches.
        batch_size: members per compiled call on each device.
        vector_labels: ``{metric: labels}`` for the columns of vector metrics.
        devices: devices the members were spread over (``batch_size`` members on each).
    """

    metrics: dict[str, np.ndarray]
    key_data: np.ndarray
    members: pd.DataFrame
    days: int
    start_day: int = 0
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    batch_size: int = 0
    vector_labels: dict[str, Sequence[str]] = field(default_factory=dict)
    devices: int = 1
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)
    summable: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return int(self.key_data.shape[0])

    def select(self, index) -> "EnsembleResult":
        """The members ``index`` (indices or a boolean mask), renumbered from 0."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        members = self.members.iloc[index].reset_index(drop=True)
        members["member"] = np.arange(len(index))
        return EnsembleResult(
            {k: v[index] for k, v in self.metrics.items()}, self.key_data[index], members,
            self.days, self.start_day, self.compile_seconds, self.run_seconds, self.batch_size,
            dict(self.vector_labels), self.devices, dict(self.outcomes), self.summable,
        )

    def split(self, column: str) -> dict[str, "EnsembleResult"]:
        """``{label: members with that label}`` (e.g. ``split("set")`` after :func:`cross`),
        in order of first appearance."""
        if column not in self.members:
            raise EnsembleError(f"no member column {column!r}; columns are {list(self.members)}")
        labels = self.members[column].to_numpy()
        return {label: self.select(labels == label) for label in pd.unique(labels)}

    def totals(self, metric: str, days: slice | None = None) -> np.ndarray:
        """float64 ``[M]`` (or ``[M, K]`` for vector metrics): ``metric`` summed over days
        (``days`` a slice of day positions, default all)."""
        values = self._metric(metric)
        return values[:, days if days is not None else slice(None)].astype(np.float64).sum(axis=1)

    def _metric(self, metric: str) -> np.ndarray:
        if metric not in self.metrics:
            raise EnsembleError(f"no metric {metric!r}; metrics are {sorted(self.metrics)}")
        return self.metrics[metric]

    def _columns(self, metrics: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
        """``(column name, [M, days])`` per scalar metric and per column of vector ones."""
        names = sorted(self.metrics) if metrics is None else list(metrics)
        out = []
        for name in names:
            values = self._metric(name)
            if values.ndim == 2:
                out.append((name, values))
            else:
                labels = list(self.vector_labels.get(name, [str(i) for i in range(values.shape[2])]))
                for j, label in enumerate(labels):
                    out.append((f"{name}_{label}", values[:, :, j]))
        return out

    def table(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Long table: one row per (member, day, metric) with ``value`` and the member
        labels; vector metrics are spread into ``<metric>_<label>``."""
        frames = []
        day = self.start_day + np.arange(self.days)
        for name, values in self._columns(metrics):
            m = values.shape[0]
            frames.append(pd.DataFrame({
                "member": np.repeat(np.arange(m), self.days),
                "day": np.tile(day, m),
                "metric": name,
                "value": values.reshape(-1).astype(np.float64),
            }))
        table = pd.concat(frames, ignore_index=True)
        labels = self.members.drop(columns=["member"], errors="ignore")
        for column in labels:
            table[column] = labels[column].to_numpy()[table["member"].to_numpy()]
        return table

    def quantiles(
        self, metrics: Sequence[str] | None = None, q: Sequence[float] = DEFAULT_QUANTILES,
        cumulative: bool = False,
    ) -> pd.DataFrame:
        """Per day and metric: ``mean`` and the quantiles ``q`` over members (columns
        ``q05``, ``q50``, ...); ``cumulative=True`` for running totals."""
        rows = []
        day = self.start_day + np.arange(self.days)
        for name, values in self._columns(metrics):
            v = values.astype(np.float64)
            if cumulative:
                v = np.cumsum(v, axis=1)
            frame = pd.DataFrame({"day": day, "metric": name, "mean": v.mean(axis=0)})
            for level, row in zip(q, np.quantile(v, q, axis=0)):
                frame[quantile_name(level)] = row
            rows.append(frame)
        return pd.concat(rows, ignore_index=True)


def quantile_name(level: float) -> str:
    """``0.05 -> "q05"``, ``0.5 -> "q50"``, ``0.975 -> "q97.5"``."""
    pct = 100 * float(level)
    return f"q{int(round(pct)):02d}" if abs(pct - round(pct)) < 1e-9 else f"q{pct:g}"


# ----------------------------------------------------------------------------- running
#: Most members per call on a CPU when no batch size is given, and the most agent slots
#: (members x slots) per call. A CPU gains from a batch only while its arrays stay in
#: cache: measured on the 2-core VM, Astoria (47,303 agents, 28 days, 32 members) ran 53,
#: 66, 73, 68 and 61 members/s in batches of 2, 4, 8, 16 and 32 (57 one by one), 256
#: members in one batch at half the speed of 32, and 1 M agents in batches of 8 at 0.7x
#: the speed of one by one. Accelerators batch as many members as their memory holds.
CPU_MAX_BATCH = 8
CPU_MAX_BATCH_SLOTS = 8 * 47_304

#: Compiled ensemble programs by model, run settings and argument signature (oldest first),
#: so that repeated ensembles (evaluations of many policies) compile once.
_COMPILED: dict = {}
_COMPILED_MAX = 8


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree, is_leaf=lambda x: x is None)
    return (treedef, tuple(
        (np.shape(x), str(getattr(x, "dtype", type(x))), str(getattr(x, "sharding", ""))) for x in leaves
    ))


def run_ensemble(
    model: Model,
    keys: jax.Array,
    params,
    world: World,
    days: int,
    *,
    estimator=None,
    start_day: int = 0,
    batch_size: int | None = None,
    capacity_bytes: int | None = None,
    metric_names: Sequence[str] | None = None,
    members: pd.DataFrame | None = None,
    vector_labels: Mapping[str, Sequence[str]] | None = None,
    validate: bool = True,
    devices: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> EnsembleResult:
    """Run ``len(keys)`` members of any model as ``vmap``-ed batches of one compiled program.

    ``on_batch(members_done, members)``, if given, is called once the program is compiled
    (with 0) and after each batch: for progress lines.

    Args:
        keys: typed keys ``[M]``; member ``k`` equals ``member_metrics(model, keys[k], ...)``
            (its initial state from the model's own ``init``).
        params: one parameter pytree for every member, or a :class:`ParamBatch` with one
            set per member (``size == len(keys)``).
        estimator: the gradient estimator of the members' draws (forward values are the
            same for every estimator; default none).
        batch_size: members per call; default the most that fit the device
            (:func:`choose_batch_size` with ``capacity_bytes`` or the device's free memory),
            on a CPU at most :data:`CPU_MAX_BATCH` and :data:`CPU_MAX_BATCH_SLOTS` agent
            slots per call (one member per call, without ``vmap``, at 1 M agents). The last
            batch is padded with copies of the last member, then dropped.
        metric_names: the metrics to keep (default all).
        members: labels per member (a table with ``M`` rows), kept in the result.
        validate: run ``model.validate`` on member 0 (parameters, inputs) before compiling.
        devices: spread the members over this many local devices (GPUs, or the CPU split
            with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): each call runs
            ``batch_size`` members on every device at once (``shard_map`` of the batched
            program; the world is copied to each device once). Default: every local
            device (at most one per member), or one when the world is itself split over
            devices (:mod:`jaxsim.sharding`). Members equal their single runs either way.
    """
    engine.check_model(model)
    if model.init is None:
        raise EnsembleError(f"model {model.name!r} declares no init(key, params, world): an ensemble needs one")
    keys = _check_keys(keys)
    m = int(keys.shape[0])
    days = int(days)
    if days < 1:
        raise EnsembleError(f"days must be >= 1, got {days}")
    if isinstance(params, ParamBatch):
        if params.size != m:
            raise EnsembleError(f"{params.size} parameter sets for {m} keys; give one set per key")
        batch_params = params
    else:
        batch_params = ParamBatch(params, jax.tree.map(lambda _: None, params), m)
    if members is not None and len(members) != m:
        raise EnsembleError(f"members table has {len(members)} rows for {m} keys")

    estimator = sampling.check_estimator(estimator if estimator is not None else sampling.current_estimator())
    first_params = batch_params.member(0)
    init_key, _ = jax.random.split(keys[0])
    if validate and model.validate is not None:
        model.validate(engine.initial_state(model, init_key, first_params, world, estimator=estimator),
                       first_params, world)

    def one(p, key, world):
        return member_metrics(model, key, p, world, days, start_day=start_day, metric_names=metric_names,
                              estimator=estimator)

    vmapped = jax.vmap(one, in_axes=(batch_params.axes, 0, None))

    def unbatched(p, key, world):
        """A batch of one without ``vmap`` (the single-run program, leading axis added)."""
        member = jax.tree.map(lambda leaf, axis: leaf if axis is None else leaf[0], p, batch_params.axes,
                              is_leaf=lambda x: x is None)
        return jax.tree.map(lambda v: v[None], one(member, key[0], world))

    # Memory: world and shared parameters once, the rest per member.
    state_shape = jax.eval_shape(
        lambda p, k, w: engine.initial_state(model, k, p, w, estimator=estimator), first_params, init_key, world)
    metrics_shape = jax.eval_shape(one, first_params, keys[0], world)
    batched_bytes = tree_bytes(jax.tree.map(
        lambda leaf, axis: None if axis is None else leaf, batch_params.tree, batch_params.axes,
        is_leaf=lambda x: x is None))
    shared_bytes = tree_bytes(world) + tree_bytes(batch_params.tree) - batched_bytes
    per_member = member_bytes(world, state_shape, metrics_shape, batched_bytes // max(m, 1),
                              model.working_bytes_per_agent)
    device_list = _ensemble_devices(devices, world, m)
    d = len(device_list)
    per_device_members = -(-m // d)
    if batch_size is None:
        capacity = memory.device_capacity_bytes() if capacity_bytes is None else capacity_bytes
        on_cpu = jax.default_backend() == "cpu"
        if capacity is not None and on_cpu and capacity_bytes is None:
            capacity //= d  # CPU devices share the host's memory
        batch_size = choose_batch_size(per_device_members, shared_bytes, per_member, capacity)
        if capacity_bytes is None and on_cpu:
            batch_size = min(batch_size, CPU_MAX_BATCH, max(1, CPU_MAX_BATCH_SLOTS // world.num_slots))
    batch_size = int(batch_size)
    if batch_size < 1:
        raise EnsembleError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = min(batch_size, per_device_members)
    group = batch_size * d  # members per call
    batches = -(-m // group)
    order = np.minimum(np.arange(batches * group), m - 1)  # pad with the last member

    def batch(index):
        return batch_params.take(order[index]).tree, keys[jnp.asarray(order[index])]

    per_device = vmapped if batch_size > 1 else unbatched
    if d > 1:
        mesh = jax.sharding.Mesh(np.array(device_list), ("members",))
        member_spec = jax.sharding.PartitionSpec("members")
        shared_spec = jax.sharding.PartitionSpec()
        param_specs = jax.tree.map(
            lambda axis: shared_spec if axis is None else member_spec, batch_params.axes,
            is_leaf=lambda x: x is None,
        )
        per_call = jax.shard_map(
            per_device, mesh=mesh, in_specs=(param_specs, member_spec, shared_spec),
            out_specs=member_spec, check_vma=False,
        )
        replicated = jax.sharding.NamedSharding(mesh, shared_spec)
        world = jax.device_put(world, replicated)  # one copy per device, once
    else:
        per_call = per_device

    p0, k0 = batch(slice(0, group))
    cache_key = (model, str(estimator), days, start_day, None if metric_names is None else tuple(metric_names), d,
                 _signature((batch_params.axes, p0, k0, world)))
    program = _COMPILED.get(cache_key)
    compile_seconds = 0.0
    if program is None:
        compile_start = time.perf_counter()
        program = jax.jit(per_call).lower(p0, k0, world).compile()
        compile_seconds = time.perf_counter() - compile_start
        _COMPILED[cache_key] = program
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))

    outputs: list[dict[str, np.ndarray]] = []
    run_start = time.perf_counter()
    if on_batch is not None:
        on_batch(0, m)
    for b in range(batches):
        p, k = (p0, k0) if b == 0 else batch(slice(b * group, (b + 1) * group))
        result = program(p, k, world)
        outputs.append({name: np.asarray(v) for name, v in jax.device_get(result).items()})
        if on_batch is not None:
            on_batch(min(m, (b + 1) * group), m)
    run_seconds = time.perf_counter() - run_start
    metrics = {name: np.concatenate([o[name] for o in outputs])[:m] for name in outputs[0]}
    table = pd.DataFrame({"member": np.arange(m)})
    if members is not None:
        for column in members:
            if column != "member":
                table[column] = members[column].to_numpy()
    categories = dict(world.categories)
    labels = {
        metric.name: list(world.category_labels(metric.by)) for metric in model.metrics
        if metric.by is not None and metric.name in metrics and metric.by in categories
    }
    labels.update(vector_labels or {})
    return EnsembleResult(
        metrics=metrics, key_data=np.asarray(jax.random.key_data(keys)), members=table, days=days,
        start_day=start_day, compile_seconds=compile_seconds, run_seconds=run_seconds,
        batch_size=batch_size, vector_labels=labels, devices=d,
        outcomes=dict(model.outcomes),
        summable=tuple(m.name for m in model.metrics if m.summable and m.name in metrics),
    )


def _ensemble_devices(devices: int | None, world: World, members: int) -> list:
    """The local devices to spread ``members`` over (see :func:`run_ensemble`)."""
    local = jax.local_devices()
    split_world = max(
        (len(leaf.sharding.device_set) for leaf in jax.tree.leaves(world) if hasattr(leaf, "sharding")),
        default=1,
    )
    if devices is None:
        return local[:1] if split_world > 1 else local[: max(1, min(len(local), members))]
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)):
        raise EnsembleError(f"devices must be a whole number, got {devices!r}")
    if not 1 <= devices <= len(local):
        hint = more_devices_hint(devices, local[0].platform) if devices > len(local) else ""
        raise EnsembleError(f"devices must be between 1 and the {len(local)} local devices, got {devices}{hint}")
    if devices > 1 and split_world > 1:
        raise EnsembleError(
            f"the world is split over {split_world} devices (jaxsim.sharding); its members cannot "
            "also be spread over devices: use devices=1"
        )
    return local[: int(devices)]


# --------------------------------------------------------------------------- comparison
def _summary(values: np.ndarray, q: Sequence[float]) -> dict[str, float]:
    out = {"mean": float(np.mean(values))}
    out |= {quantile_name(level): float(v) for level, v in zip(q, np.quantile(values, q))}
    return out


def paired_difference(baseline: np.ndarray, alternative: np.ndarray, interval: float = 0.9) -> dict[str, float]:
    """Summary of per-member differences ``d = baseline - alternative`` (paired members):
    ``mean``, the ``interval`` confidence interval of the mean (normal approximation,
    ``mean +- z * sd / sqrt(M)``), the central ``interval`` of the members' differences
    (``low``, ``high``), and the share of members with ``d > 0``."""
    from scipy.stats import norm

    d = np.asarray(baseline, np.float64) - np.asarray(alternative, np.float64)
    m = d.shape[0]
    z = float(norm.ppf(0.5 + interval / 2))
    se = float(np.std(d, ddof=1) / math.sqrt(m)) if m > 1 else float("nan")
    tail = (1 - interval) / 2
    return {
        "mean": float(d.mean()),
        "mean_ci_low": float(d.mean() - z * se) if m > 1 else None,
        "mean_ci_high": float(d.mean() + z * se) if m > 1 else None,
        "low": float(np.quantile(d, tail)),
        "median": float(np.median(d)),
        "high": float(np.quantile(d, 1 - tail)),
        "share_positive": float(np.mean(d > 0)),
        "members": int(m),
    }


def compare(
    baseline: EnsembleResult,
    alternatives: Mapping[str, EnsembleResult],
    *,
    outcomes: Mapping[str, tuple[str, int]] | None = None,
    days: slice | None = None,
    q: Sequence[float] = (0.05, 0.5, 0.95),
    interval: float = 0.9,
) -> dict:
    """Per-scenario quantiles of each outcome's total and, for each alternative, the
    paired difference with the baseline, member by member.

    Every alternative must have been run on the baseline's keys (checked): that is what
    makes the difference of member ``k`` the policy's effect on one realisation of the
    epidemic (common random numbers), with much less noise than a difference of
    independent ensembles.

    Args:
        outcomes: ``{name: (metric, sign)}``: sign +1 reports ``baseline - alternative``
            (averted), -1 ``alternative - baseline`` (extra). Default: the model's declared
            outcomes (kept in the results), else every summable declared metric, else every
            scalar metric (each named after its metric, ``baseline - alternative`` of its
            total over the days); metrics a scenario lacks are skipped for it.
        days: day positions summed over (default all).

    Returns ``{"totals": {scenario: {metric: summary}}, "differences": {alternative:
    {outcome: paired summary}}}`` (summaries from :func:`paired_difference`).
    """
    for name, alt in alternatives.items():
        if alt.key_data.shape != baseline.key_data.shape or not np.array_equal(alt.key_data, baseline.key_data):
            raise EnsembleError(
                f"scenario {name!r} was not run on the baseline's member keys: a paired comparison "
                "needs the same keys, member by member (common random numbers)"
            )
    if outcomes is None:
        outcomes = dict(baseline.outcomes) or {name: (name, +1) for name in baseline.summable} or {
            name: (name, +1) for name, values in baseline.metrics.items() if values.ndim == 2
        }
    scenarios = {"baseline": baseline, **alternatives}
    totals: dict = {}
    for name, result in scenarios.items():
        totals[name] = {}
        for metric, _ in outcomes.values():
            if metric in result.metrics and metric not in totals[name]:
                totals[name][metric] = _summary(result.totals(metric, days), q)
    differences: dict = {}
    for name, alt in alternatives.items():
        differences[name] = {}
        for outcome, (metric, sign) in outcomes.items():
            if metric not in alt.metrics or metric not in baseline.metrics:
                continue
            base, other = baseline.totals(metric, days), alt.totals(metric, days)
            differences[name][outcome] = (
                paired_difference(base, other, interval) if sign > 0 else paired_difference(other, base, interval)
            )
    return {"totals": totals, "differences": differences, "interval": interval}


__all__ = [
    "CPU_MAX_BATCH",
    "CPU_MAX_BATCH_SLOTS",
    "DEFAULT_QUANTILES",
    "EnsembleError",
    "EnsembleResult",
    "ParamBatch",
    "choose_batch_size",
    "compare",
    "cross",
    "member_bytes",
    "member_keys",
    "member_metrics",
    "paired_difference",
    "quantile_name",
    "run_ensemble",
    "stack_params",
    "tree_bytes",
]
