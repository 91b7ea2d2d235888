"""The engine: a model is an ordered list of substeps; a run is a ``lax.scan`` over days.

Vocabulary (one argument order everywhere: key first, then state, params, time, world):

- **state**: pytree of flat ``[N]`` agent arrays (plus small per-run arrays) that change
  every day. A model makes its own with ``init(key, params, world)``.
- **params**: pytree of what calibration moves (declared with :mod:`jaxsim.params`). Kept
  apart from the state, so ``grad`` and ``vmap`` over parameter sets need no rewrite.
- **world**: the run's constant arrays (:class:`World`): per-agent attribute codes with
  their labels, the contact graph and time-indexed exogenous inputs. Passed to the jitted
  program as an argument, never closed over.
- **substep**: ``fn(key, state, params, t, world) -> (state, metrics)``, pure.
- **step**: the substeps in order, each with its own key
  ``fold_in(fold_in(key, t), substep_id(name))``. Substep ids come from names, so adding
  a substep (an intervention, say) does not change the random numbers of the others:
  baseline and counterfactual runs share their randomness (common random numbers), and
  member ``k`` of an ensemble equals a single run with key ``k``.
- **estimator**: how discrete draws are differentiated (:mod:`jaxsim.sampling`); one
  setting of a run (``simulate(..., estimator=...)``), never written into a model.

Only the declared per-day aggregates in ``metrics`` leave the device.

Two models built from the same functions and settings are equal (:func:`fingerprint`), so
building a model twice reuses its compiled programs.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import types
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim import sampling
from jaxsim.errors import InputError, InputTypeError, LabelError

Metrics = dict[str, jax.Array]
SubstepFn = Callable[[jax.Array, Any, Any, jax.Array, "World"], tuple[Any, Metrics]]
InitFn = Callable[[jax.Array, Any, "World"], Any]
ObserveFn = Callable[[Any, Any, "World"], Metrics]
ValidateFn = Callable[[Any, Any, "World"], None]
LinkFn = Callable[[Any, Any, jax.Array, "World"], jax.Array]


# ------------------------------------------------------------------------------ world
@struct.dataclass
class World:
    """The constant arrays of a run (jit arguments, never closed over).

    Attributes:
        agents: ``{name: [S] array}`` per-agent codes the kernels index with (e.g. the
            age code of each agent), for ``S = num_slots`` agent slots.
        graph: ``{layer name: ContactLayer}``.
        inputs: ``{name: array}`` exogenous inputs, often time-indexed (``[T, ...]``).
        num_agents: the population's real agents ``N`` (static). Agent arrays may be
            longer (:func:`padded_size`): slots ``N ..`` are inert padding.
        categories: static ``((name, number of categories), ...)`` of the coded agent
            arrays, so that parameter tables can be checked against them.
        labels: static ``((name, (label, ...)), ...)``: the label of each code of a coded
            agent array, so that parameters keyed by label resolve without the population.
        slot_multiple: static; agent arrays are padded to a multiple of this many slots
            (0 means :data:`AGENT_ALIGNMENT`; :func:`jaxsim.sharding.shard_world` raises it
            so that the slots split evenly over the devices).
    """

    agents: dict[str, jax.Array] = struct.field(default_factory=dict)
    graph: dict[str, Any] = struct.field(default_factory=dict)
    inputs: dict[str, Any] = struct.field(default_factory=dict)
    num_agents: int = struct.field(pytree_node=False, default=0)
    categories: tuple = struct.field(pytree_node=False, default=())
    labels: tuple = struct.field(pytree_node=False, default=())
    slot_multiple: int = struct.field(pytree_node=False, default=0)

    def __post_init__(self):
        if not isinstance(self.num_agents, (int, np.integer)) or isinstance(self.num_agents, bool) \
                or self.num_agents < 1:
            raise InputError(
                f"World.num_agents must be a whole number >= 1 (the population's agents), got {self.num_agents!r}"
            )

    def num_categories(self, name: str) -> int:
        """Number of categories of the coded agent array ``name``."""
        found = dict(self.categories)
        if name not in found:
            raise LabelError(f"the world has no coded agent array {name!r}; it has {sorted(found)}")
        return found[name]

    def category_labels(self, name: str) -> tuple[str, ...]:
        """Labels of the codes of ``name`` (``"0" .. "K-1"`` where none were given)."""
        found = dict(self.labels)
        if name in found:
            return tuple(found[name])
        return tuple(str(k) for k in range(self.num_categories(name)))

    def table_by_label(self, name: str, values, *, what: str = "", default: float | None = None,
                       dtype=np.float32) -> np.ndarray:
        """``{label: value}`` (or one value for every category) as a table ``[K]`` in this
        world's code order; every label covered unless ``default`` is given, no unknown
        labels. ``what`` names the caller's field in errors."""
        labels = self.category_labels(name)
        prefix = f"{what}: " if what else ""
        if not isinstance(values, Mapping):
            array = np.asarray(values, dtype)
            if array.ndim == 0:
                return np.full(len(labels), array, dtype)
            if array.shape != (len(labels),):
                raise InputError(
                    f"{prefix}needs one value per {name!r} category ({len(labels)}: {list(labels)}), "
                    f"got shape {array.shape}"
                )
            return array
        unknown = sorted(set(map(str, values)) - set(labels))
        if unknown:
            raise LabelError(f"{prefix}{name!r}: unknown labels {unknown}; its labels are {list(labels)}")
        missing = [label for label in labels if label not in values]
        if missing and default is None:
            raise LabelError(f"{prefix}no value given for {name!r} labels {missing}")
        return np.array([values.get(label, default) for label in labels], dtype=dtype)

    @property
    def num_slots(self) -> int:
        """Length of the agent arrays (``num_agents`` plus padding)."""
        return padded_size(self.num_agents, self.slot_multiple or AGENT_ALIGNMENT)

    def real_agents(self) -> jax.Array:
        """bool ``[S]``: True for the real agents, False for padding slots."""
        return jnp.arange(self.num_slots) < self.num_agents

    def with_inputs(self, **inputs) -> "World":
        """A copy with ``inputs`` added or replaced."""
        return self.replace(inputs={**self.inputs, **inputs})


#: Agent arrays are padded to a multiple of this many slots. XLA:CPU splits element-wise
#: loops in two and runs them 3-6x slower when the length is odd (measured: 47,303 agents
#: 1.88 ms/day, 47,304 agents 1.11 ms/day for the COVID step).
AGENT_ALIGNMENT = 8


def padded_size(num_agents: int, multiple: int = AGENT_ALIGNMENT) -> int:
    """``num_agents`` rounded up to a multiple of ``multiple`` (default :data:`AGENT_ALIGNMENT`)."""
    return -(-int(num_agents) // int(multiple)) * int(multiple)


def pad_agents(values, num_slots: int, fill=0, dtype=None) -> np.ndarray:
    """Host: ``values [N, ...]`` padded with ``fill`` to ``num_slots`` rows."""
    values = np.asarray(values, dtype)
    out = np.full((num_slots,) + values.shape[1:], fill, values.dtype)
    out[: values.shape[0]] = values
    return out


def substep_id(name: str) -> int:
    """A stable 31-bit id for a substep name (used to derive its random key)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


# ------------------------------------------------------------------------ fingerprints
def fingerprint(obj, _seen: frozenset = frozenset()):
    """A hashable value equal for equal model parts: functions compare by code, defaults
    and the values they close over; partials by function and arguments; containers by
    content; other hashable objects by equality; anything else by identity.

    Two models built by the same code with the same settings (e.g. ``covid_model()``
    twice, even though each call makes new inner functions) get equal fingerprints and so
    share compiled programs. Module globals a function reads are not part of it.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, complex)):
        return (type(obj).__name__, obj)
    if isinstance(obj, type):
        return ("type", obj.__module__, obj.__qualname__, id(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(fingerprint(x, _seen) for x in obj))
    if isinstance(obj, Mapping) and not hasattr(obj, "tree_flatten"):
        items = sorted(((repr(k), fingerprint(v, _seen)) for k, v in obj.items()), key=lambda kv: kv[0])
        return ("map", tuple(items))
    if isinstance(obj, functools.partial):
        return ("partial", fingerprint(obj.func, _seen), fingerprint(obj.args, _seen),
                fingerprint(obj.keywords, _seen))
    if isinstance(obj, types.MethodType):
        return ("method", fingerprint(obj.__func__, _seen), fingerprint(obj.__self__, _seen))
    if isinstance(obj, types.FunctionType):
        if id(obj) in _seen:
            return ("recursive", obj.__qualname__)
        seen = _seen | {id(obj)}
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(fingerprint(cell.cell_contents, seen))
            except ValueError:  # an empty cell
                cells.append(("empty",))
        return ("fn", obj.__module__, obj.__qualname__, obj.__code__,
                fingerprint(obj.__defaults__, seen), fingerprint(obj.__kwdefaults__, seen), tuple(cells))
    if isinstance(obj, (np.ndarray, jax.Array)):
        return ("array", id(obj))
    if isinstance(obj, Model):
        return ("model", obj.key)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        params = getattr(type(obj), "__dataclass_params__", None)
        if params is not None and params.frozen:
            return ("dataclass", type(obj).__qualname__, id(type(obj)), tuple(
                (f.name, fingerprint(getattr(obj, f.name), _seen)) for f in dataclasses.fields(obj)))
    try:
        hash(obj)
    except TypeError:
        return ("id", id(obj))
    return ("value", type(obj).__qualname__, obj)


# ---------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Substep:
    """A named transition: ``fn(key, state, params, t, world) -> (state, metrics)``.

    Attributes:
        name: unique within a model; its random key is derived from it.
        fn: the transition.
        day_key: the substep receives the day's key ``fold_in(key, t)`` instead of its own
            and derives its streams itself (used by intervention phases, whose items draw
            from streams named after them).
    """

    name: str
    fn: SubstepFn
    day_key: bool = False


def as_substep(item) -> Substep:
    """A :class:`Substep` from itself or from a function (named after the function)."""
    if isinstance(item, Substep):
        return item
    if callable(item):
        return Substep(getattr(item, "__name__", type(item).__name__), item)
    raise InputTypeError(f"expected a Model or a Substep (or a function), got {item!r}")


@dataclass(frozen=True)
class Metric:
    """A declared per-day metric.

    Attributes:
        name: the key in the step's metrics.
        kind: ``"count"`` (agents in a state at the end of the day: integer), ``"flow"``
            (events during the day: integer, summed over days), ``"amount"`` (a total such
            as USD, summed over days), ``"level"`` (a value such as a rate or a price) or
            ``"probability"``.
        unit: what one unit is (``"agents"``, ``"USD"``, ``"per day"``, ...).
        by: for a vector metric ``[K]``, the world category labelling its columns.
        doc: one line for tables and plots.
    """

    name: str
    kind: str = "level"
    unit: str = ""
    by: str | None = None
    doc: str = ""

    KINDS = ("count", "flow", "amount", "level", "probability")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise InputError(f"metric {self.name!r}: kind {self.kind!r} is not one of {self.KINDS}")

    @property
    def integer(self) -> bool:
        """Counts and flows are whole agents."""
        return self.kind in ("count", "flow")

    @property
    def summable(self) -> bool:
        """Flows and amounts add up over days."""
        return self.kind in ("flow", "amount")


@dataclass(frozen=True, eq=False)
class Model:
    """An ordered composition of substeps, with the model's own initial state,
    observations, validation and declarations.

    Attributes:
        name: for reports.
        substeps: :class:`Substep` s (or plain functions, named after themselves) applied
            in order each day: ``fn(key, state, params, t, world) -> (state, metrics)``.
        init: ``fn(key, params, world) -> state``: the day-0 state (gymnax's ``reset``).
        observe: ``fn(state, params, world) -> metrics`` computed on the state at the end
            of each day (e.g. counts per stage).
        validate: ``fn(state, params, world)``, run on the host before compiling; raises
            :class:`jaxsim.errors.InputError` naming what does not fit.
        params_type: the parameters' class, declared with :func:`jaxsim.params.params`
            (defaults, bounds, units, tables by label): what calibration can move.
        metrics: :class:`Metric` declarations (units, integer or not, labels of vector
            columns); undeclared metrics are reported as plain floats.
        outcomes: ``{name: (metric, sign)}`` compared between scenarios by
            :func:`jaxsim.ensemble.compare` (sign +1: ``baseline - alternative``, averted).
        provides: bridge exports ``{name: fn(state, params, t, world) -> array}`` that other
            models composed with this one can read (:func:`jaxsim.coupling.compose`).
        requires: bridge imports ``{name: default fn(state, params, t, world) -> array}``:
            during the substeps ``world.inputs[name]`` holds the value a composed model
            provides, or the default when the model runs alone.
        signals: ``{name: fn(state, params, t, world) -> scalar}`` that intervention
            conditions can watch (:func:`jaxsim.interventions.when`).
        policies: :class:`jaxsim.behaviour.PolicyInput` s: per-group inputs a behaviour
            layer (an LLM asked once per group) can set.
        working_bytes_per_agent: bytes of temporaries per agent slot in a day (for
            :mod:`jaxsim.memory` estimates; 48 measured for the COVID step).
        build_world: ``fn(population) -> World``, the model's own world builder (used by
            :class:`jaxsim.Sim`; default :func:`jaxsim.world.make_world`).
    """

    name: str
    substeps: tuple = ()
    init: InitFn | None = None
    observe: ObserveFn | None = None
    validate: ValidateFn | None = None
    params_type: type | None = None
    metrics: tuple = ()
    outcomes: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    provides: Mapping[str, LinkFn] = field(default_factory=dict)
    requires: Mapping[str, LinkFn] = field(default_factory=dict)
    signals: Mapping[str, LinkFn] = field(default_factory=dict)
    policies: tuple = ()
    working_bytes_per_agent: int = 48
    build_world: Callable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "substeps", tuple(as_substep(s) for s in self.substeps))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "policies", tuple(self.policies))
        names = [s.name for s in self.substeps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"model {self.name!r}: duplicate substep names {dupes}")
        declared = [m.name for m in self.metrics]
        dupes = sorted({n for n in declared if declared.count(n) > 1})
        if dupes:
            raise InputError(f"model {self.name!r}: metrics declared twice {dupes}")

    # Equality by fingerprint: the same functions and settings give the same model.
    @functools.cached_property
    def key(self):
        return fingerprint(tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Model) and (self is other or self.key == other.key)

    def replace(self, **changes) -> "Model":
        return dataclasses.replace(self, **changes)

    @property
    def declared_metrics(self) -> dict[str, Metric]:
        return {m.name: m for m in self.metrics}

    def linked_world(self, state, params, t, world: World) -> World:
        """``world`` with the values of :attr:`requires` missing from its inputs computed
        by their defaults (the model runs alone)."""
        missing = {name: fn for name, fn in self.requires.items() if name not in world.inputs}
        if not missing:
            return world
        return world.with_inputs(**{name: fn(state, params, t, world) for name, fn in missing.items()})

    def step(self, key: jax.Array, state, params, t: jax.Array, world: World):
        """One day: ``(key, state, params, t, world) -> (state, metrics)``."""
        day_key = jax.random.fold_in(key, t)
        metrics: Metrics = {}
        for sub in self.substeps:
            sub_key = day_key if sub.day_key else jax.random.fold_in(day_key, substep_id(sub.name))
            linked = self.linked_world(state, params, t, world) if self.requires else world
            state, produced = sub.fn(sub_key, state, params, t, linked)
            clash = set(produced) & set(metrics)
            if clash:
                raise InputError(
                    f"model {self.name!r}: substep {sub.name!r} reports metrics {sorted(clash)} "
                    "that an earlier substep already reported"
                )
            metrics.update(produced)
        if self.observe is not None:
            observed = self.observe(state, params, world)
            clash = set(observed) & set(metrics)
            if clash:
                raise InputError(f"model {self.name!r}: observe() repeats metrics {sorted(clash)}")
            metrics.update(observed)
        return state, metrics


def check_model(model) -> Model:
    if not isinstance(model, Model):
        raise InputError(f"expected a jaxsim Model, got {type(model).__name__}")
    return model


def initial_state(model: Model, key: jax.Array, params, world: World, *, estimator=None,
                  compiled: bool = True):
    """The model's day-0 state, ``model.init(key, params, world)``, with ``estimator`` as
    the gradient estimator of its draws (default: the enclosing run's, else none).

    ``compiled`` (default) runs ``init`` as one jitted program, cached per model and
    estimator (run op by op, a large init compiles each operation separately: tens of
    seconds). Pass ``compiled=False`` for an ``init`` that needs concrete values (a
    Python ``if`` on an array); it then runs eagerly.
    """
    check_model(model)
    if model.init is None:
        raise InputError(f"model {model.name!r} declares no init(key, params, world)")
    with sampling.estimator_scope(estimator) as resolved:
        if not compiled:
            return model.init(key, params, world)
        return _compiled_init(model, resolved, key, params, world)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled_init(model: Model, estimator, key, params, world):
    with sampling.estimator_scope(estimator):
        return model.init(key, params, world)


# ------------------------------------------------------------------------- simulate
#: Intermediate values that checkpointed blocks keep rather than recompute in a gradient
#: (tag them with ``jax.ad_checkpoint.checkpoint_name``): the per-day contact sums, one
#: float per agent per day, are the expensive part of recomputing a day.
SAVED_IN_CHECKPOINTS: tuple[str, ...] = ("contact_pressure",)


def simulate(
    model: Model,
    key: jax.Array,
    state,
    params,
    world: World,
    days: int,
    *,
    start_day: int | jax.Array = 0,
    checkpoint_days: int | None = None,
    estimator=None,
):
    """Run ``days`` days as one ``lax.scan``; pure, so it composes with jit, grad and vmap.

    Args:
        estimator: the gradient estimator of every discrete draw of the run (see
            :mod:`jaxsim.sampling`; default the enclosing one, else ``"none"``). Forward
            values are the same for every estimator.
        start_day: the day index ``t`` of the first day.
        checkpoint_days: when set (e.g. 7), the days run in blocks of this length, each
            block under ``jax.checkpoint``: a reverse-mode gradient then stores the state
            once per block and recomputes the days inside a block, so its memory grows
            with ``days / checkpoint_days`` states instead of ``days`` (plus the values
            named in :data:`SAVED_IN_CHECKPOINTS`, kept to avoid recomputing them).

    Returns ``(final_state, metrics)`` with each metric stacked to ``[days, ...]``.
    """
    days = int(days)
    with sampling.estimator_scope(estimator):

        def body(carry, t):
            return model.step(key, carry, params, t, world)

        start = jnp.asarray(start_day, jnp.int32)
        if not checkpoint_days or checkpoint_days >= days:
            return jax.lax.scan(body, state, start + jnp.arange(days, dtype=jnp.int32))
        block = int(checkpoint_days)
        if block < 1:
            raise InputError(f"checkpoint_days must be >= 1, got {checkpoint_days}")
        blocks, remainder = divmod(days, block)

        @functools.partial(jax.checkpoint, policy=jax.checkpoint_policies.save_only_these_names(*SAVED_IN_CHECKPOINTS))
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


# ------------------------------------------------------------------------------- run
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
        chunk_days: days per compiled call.
        start_day: the day index of the first day.
        resumed_from: the day index a resumed run continued from (its earlier days' metrics
            come from the checkpoint), else ``None``.
        checkpoint_seconds: time spent saving checkpoints (not part of ``run_seconds``).
    """

    state: Any
    metrics: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    days: int
    chunk_days: int = 7
    start_day: int = 0
    resumed_from: int | None = None
    checkpoint_seconds: float = 0.0


#: Compiled chunk programs, most recently used last: ``run`` compiles a model once per
#: chunk length, estimator and argument signature, so repeated runs (seeds, parameter
#: sweeps, calibration loops, a model built again) skip compilation.
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_MAX = 16


def signature(tree) -> tuple:
    """Structure, shapes, dtypes and placements of a pytree's leaves (a compile-cache key)."""
    leaves, treedef = jax.tree.flatten(tree, is_leaf=lambda x: x is None)
    return (treedef, tuple(
        (np.shape(x), str(getattr(x, "dtype", type(x))), str(getattr(x, "sharding", ""))) for x in leaves
    ))


def _compiled_chunk(model: Model, chunk_days: int, estimator, key, state, params, world):
    """``(compiled program, seconds spent compiling)``; 0 seconds when cached."""
    cache_key = (model, chunk_days, str(estimator), signature((key, state, params, world)))
    if cache_key in _COMPILED:
        _COMPILED.move_to_end(cache_key)
        return _COMPILED[cache_key], 0.0

    def chunk(state, params, world, key, t0):
        return simulate(model, key, state, params, world, chunk_days, start_day=t0, estimator=estimator)

    start = time.perf_counter()
    program = jax.jit(chunk, donate_argnums=(0,)).lower(state, params, world, key, np.int32(0)).compile()
    seconds = time.perf_counter() - start
    _COMPILED[cache_key] = program
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return program, seconds


def even_chunk(days: int, target: int) -> int:
    """Days per chunk of a run without a hook: ``days`` itself for runs up to twice the
    target, else the divisor of ``days`` closest to ``target`` within ``[target / 2, 2
    target]`` (every chunk the same length: one compiled program), else ``days`` (one chunk)."""
    if days <= 2 * target:
        return days
    divisors = [d for d in range(max(1, -(-target // 2)), 2 * target + 1) if days % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d)) if divisors else days


def chunk_lengths(days: int, chunk_days: int, *, every: int | None = None, fixed: bool = False) -> list[int]:
    """Lengths of the chunks of a run of ``days`` days.

    Without ``every``: chunks of ``chunk_days`` (the last may be shorter); with ``fixed``
    false, ``chunk_days`` is first made a divisor of ``days`` (:func:`even_chunk`). With
    ``every`` (a checkpoint interval), every multiple of ``every`` also ends a chunk: with
    ``fixed``, the chunks end at the multiples of either; else each interval of ``every``
    days is split evenly (:func:`even_chunk`), so a run compiles at most a few lengths.
    """
    if every is None or every >= days:
        length = chunk_days if fixed else even_chunk(days, chunk_days)
        return [min(length, days - t0) for t0 in range(0, days, length)]
    if fixed:
        ends = set(range(chunk_days, days, chunk_days)) | set(range(every, days, every)) | {days}
    else:
        ends = {days}
        for first in range(0, days, every):
            span = min(every, days - first)
            step = even_chunk(span, chunk_days)
            ends |= set(range(first + step, first + span + 1, step))
    ends = sorted(ends)
    return [b - a for a, b in zip([0] + ends[:-1], ends)]


def copy_tree(tree):
    """Fresh device buffers for every array leaf of ``tree`` (placement kept)."""
    return jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, tree)


def run(
    model: Model,
    key: jax.Array,
    state,
    params,
    world: World,
    days: int,
    *,
    estimator=None,
    chunk_days: int = 7,
    progress: bool | str = "auto",
    description: str = "simulating",
    start_day: int = 0,
    validate: bool = True,
    before_chunk: Callable[[int, Any, World], World] | None = None,
    donate: bool = False,
    checkpoints=None,
    resume: bool = False,
) -> RunResult:
    """Run ``days`` days in chunks of ``chunk_days`` with a progress bar; time compile and run.

    Each chunk is a ``lax.scan`` of one compiled program: without a hook every chunk has
    the same length (:func:`even_chunk`: about ``chunk_days``, or the whole run), so a run
    compiles once. The state stays on the device between chunks and only the metrics come
    back. Results equal :func:`simulate`'s for the same inputs.

    Args:
        estimator: the run's gradient estimator (see :func:`simulate`).
        progress: ``True`` always shows a bar, ``False`` never, ``"auto"`` shows one when
            the run is estimated to take more than 2 seconds.
        start_day: the day index ``t`` of the first simulated day, to continue a run from
            its state (days ``start_day .. start_day + days - 1``; weekly inputs and keys
            follow ``t``, so a run split in parts equals the run in one go).
        validate: run ``model.validate`` first (on the host, about half a millisecond);
            a caller continuing a run it already validated may skip it.
        before_chunk: ``fn(t, state, world) -> world`` called on the host before each
            chunk (``t`` its first day) to refresh the world's inputs from the state so far
            (e.g. a behaviour layer's answers, see :mod:`jaxsim.behaviour`). The returned
            world must keep its shapes (one compiled program serves every chunk). With a
            hook, chunks are exactly ``chunk_days`` long (the last may be shorter).
        donate: let the run reuse the buffers of ``state`` (saves one copy of the state;
            the caller must not use ``state`` afterwards). By default ``state`` stays valid.
        checkpoints: a :class:`jaxsim.checkpoint.Checkpoints` folder: every ``every`` days
            of the run (counted from ``start_day``; not after the last day) the state,
            params, key and metrics so far are saved there, atomically, keeping the
            latest two. Chunks then also end at those days. The metrics are those of a
            run without checkpoints, bit for bit.
        resume: continue from the latest checkpoint in ``checkpoints`` (refused, one
            :class:`InputError` line, when it is of another model, population, run
            length, key, parameters or ``config``). ``state`` is then only the template
            the checkpoint's state is placed like; the result's metrics cover all
            ``days`` days (the earlier ones from the checkpoint). A ``before_chunk``
            hook must rebuild what it sets from its arguments alone.
    """
    check_model(model)
    days = int(days)
    if days < 1:
        raise InputError(f"days must be >= 1, got {days}")
    start_day = int(start_day)
    if start_day < 0:
        raise InputError(f"start_day must be >= 0, got {start_day}")
    estimator = sampling.check_estimator(estimator if estimator is not None else sampling.current_estimator())
    if resume and checkpoints is None:
        raise InputError("resume=True needs checkpoints=Checkpoints(folder) to resume from")
    if validate and model.validate is not None:
        model.validate(state, params, world)
    restored = None
    if checkpoints is not None:
        restored = checkpoints.begin(model=model, key=key, state=state, params=params, world=world,
                                     start_day=start_day, days=days, resume=resume)
    if restored is not None:
        # The checkpoint's params and key equal the caller's (checked): only the state is
        # taken from it (fresh buffers, donated to the first chunk).
        state = restored.state
    elif not donate:
        state = copy_tree(state)
    else:
        # A state leaf that is also a leaf of the params or the world (an init that passed
        # an input through) must not be donated: copy those.
        shared = {id(leaf) for leaf in jax.tree.leaves((params, world))}
        state = jax.tree.map(lambda x: jnp.copy(x) if id(x) in shared else x, state)
    chunk_days = max(1, int(chunk_days))
    every = None if checkpoints is None else checkpoints.every
    lengths = chunk_lengths(days, chunk_days, every=every, fixed=before_chunk is not None)
    if before_chunk is None:
        chunk_days = max(lengths)  # one compiled program per run (a few with checkpoints)
    chunks: list[dict[str, np.ndarray]] = []
    done = 0
    if restored is not None:  # the chunks after the checkpoint's day (a chunk ends there)
        done = restored.next_day - start_day
        ends = sorted({int(e) for e in np.cumsum(lengths) if e > done})
        lengths = [b - a for a, b in zip([done] + ends[:-1], ends)]
        chunks.append(restored.metrics)
    first_done = done

    # One compiled program per distinct chunk length (at most two: full and remainder),
    # reused across calls with the same model and argument shapes.
    compiled, compile_seconds = {}, 0.0
    for length in sorted(set(lengths), reverse=True):
        compiled[length], seconds = _compiled_chunk(model, length, estimator, key, state, params, world)
        compile_seconds += seconds

    bar = None
    checkpoint_seconds = 0.0
    run_start = time.perf_counter()
    try:
        for length in lengths:
            if before_chunk is not None:
                world = before_chunk(start_day + done, state, world)
            state, metrics = compiled[length](state, params, world, key, np.int32(start_day + done))
            chunks.append({k: np.asarray(v) for k, v in jax.device_get(metrics).items()})
            done += length
            if every is not None and done % every == 0 and done < days:
                so_far = {k: np.concatenate([c[k] for c in chunks], axis=0) for k in chunks[-1]}
                checkpoint_seconds += checkpoints.save(start_day + done, state, so_far)
            if bar is None and progress is not False and done < days:
                elapsed = time.perf_counter() - run_start
                if progress is True or elapsed * (days - first_done) / (done - first_done) > 2.0:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=days, initial=done, desc=description, unit="day", file=sys.stderr)
            elif bar is not None:
                bar.update(done - bar.n)
        jax.block_until_ready(state)
    finally:
        if checkpoints is not None:
            checkpoints.close()
    run_seconds = time.perf_counter() - run_start - checkpoint_seconds
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
        start_day=start_day,
        resumed_from=None if restored is None else restored.next_day,
        checkpoint_seconds=checkpoint_seconds,
    )


__all__ = [
    "AGENT_ALIGNMENT",
    "Metric",
    "Model",
    "RunResult",
    "SAVED_IN_CHECKPOINTS",
    "Substep",
    "World",
    "as_substep",
    "chunk_lengths",
    "copy_tree",
    "even_chunk",
    "fingerprint",
    "initial_state",
    "pad_agents",
    "padded_size",
    "run",
    "signature",
    "simulate",
    "substep_id",
]
