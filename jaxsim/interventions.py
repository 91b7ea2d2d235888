"""Interventions: an open protocol for policy changes that act inside ``jit``.

An intervention is a small pytree (a ``flax.struct`` dataclass subclassing
:class:`Intervention`): its numbers (days, levels, probabilities) are array leaves, so a
grid of policies is a ``vmap`` over them and continuous levels get gradients; what it
*is* (its kind, the layer it closes, its name) is static. A set of them (:func:`combine`)
rides in the model's parameters (``params.replace(interventions=...)``); with no set a
model is exactly the plain one.

How a kind acts, without editing the library:

- **hooks**: a model calls :func:`apply_hooks` at named points of its step (the COVID
  model: ``"isolation_probability"``, ``"isolating"``, ``"layer_scale"``,
  ``"susceptibility"``); every item of the set with a method of that name changes the
  value, in the set's order: ``def susceptibility(self, value, ctx) -> value``.
- **phases**: a model lists phase substeps (:func:`phase_substep`) at places of its
  day; an item whose class sets ``phase`` to one of them acts there
  (:meth:`Intervention.act`), drawing from its own random stream, and may keep per-agent
  state of its own (:meth:`Intervention.init`).
- **conditions**: an item acts in its :class:`Schedule`'s day window and, with a
  condition, only while a model signal (``Model.signals``, e.g. the COVID model's
  ``"weekly_onsets"``) is high, with hysteresis (:func:`when`).

Units: days count from the run's day 0 (week ``w`` is days ``7w .. 7w+6``).

The model keeps the set's run state (:class:`InterventionState`: each item's condition
and own state) in its state's ``interventions`` field.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim.engine import Substep, substep_id
from jaxsim.errors import InputError

#: ``end`` of an open-ended schedule: later than any run.
OPEN_END = 1_000_000


class InterventionError(InputError):
    """An intervention was given a value it cannot use; the message names the
    intervention, the field and the value."""


# ----------------------------------------------------------------------------- schedules
@struct.dataclass
class Schedule:
    """When an intervention acts.

    Attributes:
        start: int32 scalar, first day it can act (inclusive, >= 0).
        end: int32 scalar, first day it no longer acts (exclusive, > start).
        on_above: float32 scalar, the signal value above which the condition switches on
            (``-inf``: no condition).
        off_below: float32 scalar, the value below which it switches off again.
        signal: static, the model signal watched (``""``: none).
    """

    start: jax.Array
    end: jax.Array
    on_above: jax.Array
    off_below: jax.Array
    signal: str = struct.field(pytree_node=False, default="")


def window(start: int = 0, end: int | None = None) -> Schedule:
    """Act on days ``start <= t < end`` (``end=None``: to the end of the run)."""
    return Schedule(
        start=jnp.int32(start), end=jnp.int32(OPEN_END if end is None else end),
        on_above=jnp.float32(-np.inf), off_below=jnp.float32(-np.inf),
    )


def when(signal: str, on_above: float, off_below: float, start: int = 0, end: int | None = None) -> Schedule:
    """Act while the model signal ``signal`` is high: switch on above ``on_above``, off
    below ``off_below`` (``off_below <= on_above``), within days ``start .. end``."""
    if not isinstance(signal, str) or not signal:
        raise InterventionError(f"when: name the model signal to watch, got {signal!r}")
    return Schedule(
        start=jnp.int32(start), end=jnp.int32(OPEN_END if end is None else end),
        on_above=jnp.float32(on_above), off_below=jnp.float32(off_below), signal=signal,
    )


def in_window(schedule: Schedule, t: jax.Array) -> jax.Array:
    """bool scalar: ``start <= t < end``."""
    return (t >= schedule.start) & (t < schedule.end)


def condition_holds(schedule: Schedule, was_on: jax.Array, value: jax.Array) -> jax.Array:
    """bool scalar: the condition's state today from yesterday's (``was_on``) and the
    signal's value (hysteresis: on above ``on_above``, off below ``off_below``)."""
    return jnp.where(was_on, value >= schedule.off_below, value > schedule.on_above)


def week_value(per_week: jax.Array, t: jax.Array) -> jax.Array:
    """``per_week[min(t // 7, W - 1)]`` for a ``[W]`` weekly schedule."""
    return per_week[jnp.clip(t // 7, 0, per_week.shape[0] - 1)]


# ------------------------------------------------------------------------------ protocol
class Intervention:
    """Base class of intervention kinds: subclass it with ``@flax.struct.dataclass``,
    with fields ``schedule: Schedule`` and ``name: str`` (static), plus the kind's own.

    Class attributes:
        phase: the model phase (a :func:`phase_substep` name) in which :meth:`act` runs,
            or ``None`` for kinds acting through hooks only.
        stream: the random stream of :meth:`act` (default: the item's name).
        exclusive: at most one item of the kind per set (e.g. kinds with per-agent state
            that others read).

    Hooks: a method named after a model's hook point, ``fn(self, value, ctx) -> value``
    (``ctx`` a :class:`HookContext`).
    """

    phase: ClassVar[str | None] = None
    stream: ClassVar[str | None] = None
    exclusive: ClassVar[bool] = False

    def validate(self, world) -> None:
        """Host-side checks against the run's world (raise :class:`InterventionError`)."""

    def describe(self) -> dict:
        """JSON-friendly description with units (extended by each kind)."""
        return {}

    def init(self, world) -> Any:
        """The item's own run state (a pytree, e.g. a per-agent array), or ``None``."""
        return None

    def act(self, key, state, own, params, t, world, ctx: "HookContext"):
        """The item's action in its phase: ``(state, own, metrics)``."""
        return state, own, {}


@struct.dataclass
class Interventions:
    """An ordered set of interventions (a pytree; goes in the model's params).

    Attributes:
        items: tuple of interventions, in the order they apply.
    """

    items: tuple = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.items)

    def of_kind(self, kind) -> list[tuple[int, Any]]:
        """``[(index, intervention)]`` of the given kind, in order."""
        return [(i, item) for i, item in enumerate(self.items) if isinstance(item, kind)]

    def one(self, kind):
        """``(index, intervention)`` of the only one of ``kind``, or ``None``."""
        found = self.of_kind(kind)
        return found[0] if found else None

    def describe(self) -> list[dict]:
        """JSON-friendly description of each intervention with units."""
        return [describe(item) for item in self.items]


@struct.dataclass
class InterventionState:
    """The run state of a set: ``condition`` float32 ``[K]`` (1 while item ``k``'s
    condition holds; always 1 without one) and ``own``, each item's own state (or ``None``)."""

    condition: jax.Array
    own: tuple = ()


@struct.dataclass
class HookContext:
    """What a hook or an action sees: the model ``state``, the set's ``run`` state, the
    day ``t``, the ``world``, the item's ``index`` (static) and whether it is ``active``
    today (in its window, condition on)."""

    state: Any
    run: InterventionState
    t: jax.Array
    world: Any
    active: jax.Array
    index: int = struct.field(pytree_node=False, default=0)

    @property
    def own(self):
        return self.run.own[self.index]


def combine(*items) -> Interventions:
    """An :class:`Interventions` set from interventions (checked: kinds, unique names, at
    most one of an exclusive kind)."""
    flat = []
    for item in items:
        flat.extend(item.items if isinstance(item, Interventions) else [item])
    for item in flat:
        if not isinstance(item, Intervention):
            raise InterventionError(
                f"not an intervention: {item!r}; build one with a model's constructors (e.g. "
                "jaxsim.models.covid.scale_contacts) or subclass jaxsim.interventions.Intervention"
            )
    names = [item.name for item in flat]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InterventionError(f"intervention names must be unique; repeated: {dupes}")
    kinds = {type(item) for item in flat if type(item).exclusive}
    for kind in kinds:
        found = [item.name for item in flat if isinstance(item, kind)]
        if len(found) > 1:
            raise InterventionError(
                f"at most one {kind.__name__} intervention per set (they share per-agent state); got {found}"
            )
    return Interventions(items=tuple(flat))


def require_set(interventions) -> Interventions:
    """``interventions`` if it is an :class:`Interventions` set, else an
    :class:`InterventionError` saying how to make one (a single intervention too must be
    wrapped: ``combine(scale_contacts(...))``)."""
    if not isinstance(interventions, Interventions):
        raise InterventionError(
            "params.interventions must be an Interventions set (interventions.combine(...), also for "
            f"a single intervention), got {type(interventions).__name__}"
        )
    return interventions


# ------------------------------------------------------------------------- validation
def fail(name: str, field: str, message: str):
    raise InterventionError(f"intervention {name!r}: {field} {message}")


def check_number(name: str, field: str, value, *, low=None, high=None, integer=False) -> np.ndarray:
    """Check a number (or an array of them, for grids) and return it as an array."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        fail(name, field, f"must be a number, got {value!r}")
    if array.size == 0 or not np.all(np.isfinite(array)):
        fail(name, field, f"must be a finite number, got {value!r}")
    if integer and not np.all(array == np.round(array)):
        fail(name, field, f"must be a whole number of days, got {value!r}")
    if low is not None and np.any(array < low):
        fail(name, field, f"must be >= {low}, got {value!r}")
    if high is not None and np.any(array > high):
        fail(name, field, f"must be <= {high}, got {value!r}")
    return array


def check_schedule(name: str, schedule: Schedule) -> Schedule:
    """Raise :class:`InterventionError` for a window that is empty or negative, or
    thresholds that are not numbers or have ``off_below > on_above``."""
    if not isinstance(schedule, Schedule):
        fail(name, "schedule", f"must be a Schedule (window(...) or when(...)), got {schedule!r}")
    start = check_number(name, "start day", schedule.start, low=0, integer=True)
    end = check_number(name, "end day", schedule.end, low=1, integer=True)
    if np.any(end <= start):
        fail(name, "window", f"is empty: end day {end.tolist()} must be after start day {start.tolist()}")
    on_above = np.asarray(schedule.on_above, np.float64)
    off_below = np.asarray(schedule.off_below, np.float64)
    conditional = np.isfinite(on_above) | np.isfinite(off_below)
    if np.any(conditional):
        check_number(name, "on_above", on_above, low=0)
        check_number(name, "off_below", off_below, low=0)
        if np.any(off_below > on_above):
            fail(name, "off_below", f"({off_below.tolist()}) must be <= on_above ({on_above.tolist()})")
    elif np.any(np.isnan(on_above)) or np.any(np.isnan(off_below)):
        fail(name, "thresholds", "must not be NaN")
    return schedule


def make_schedule(name: str, schedule: Schedule | None, start: int | None, end: int | None) -> Schedule:
    """A constructor's schedule from ``schedule=`` or ``start``/``end`` (not both); checked."""
    if schedule is not None:
        if start is not None or end is not None:
            fail(name, "schedule", "give either schedule=... or start/end days, not both")
        return check_schedule(name, schedule)
    if start is not None:
        check_number(name, "start day", start, low=0, integer=True)
    if end is not None:
        check_number(name, "end day", end, low=1, integer=True)
    return check_schedule(name, window(0 if start is None else int(start), end))


def validate(interventions: Interventions, world, signals: Mapping | Sequence = ()) -> None:
    """Host-side checks of a set against the run's world and the model's ``signals``:
    known kinds, unique names, schedules, and each kind's own checks."""
    require_set(interventions)
    combine(*interventions.items)
    for item in interventions.items:
        check_schedule(item.name, item.schedule)
        if item.schedule.signal and item.schedule.signal not in signals:
            fail(item.name, "condition", f"watches {item.schedule.signal!r}, which the model does not "
                 f"report; its signals are {sorted(signals)}")
        item.validate(world)


def check_phases(interventions: Interventions, phases: Sequence[str], hooks: Sequence[str]) -> None:
    """Every item acts in one of the model's ``phases`` or through one of its ``hooks``."""
    for item in interventions.items:
        phase = type(item).phase
        if phase is not None and phase not in phases:
            fail(item.name, "phase", f"{phase!r} is not a phase of this model; its phases are {list(phases)}")
        if phase is None and not any(callable(getattr(item, hook, None)) for hook in hooks):
            fail(item.name, "kind", f"{type(item).__name__} acts in no phase and through none of this "
                 f"model's hooks {list(hooks)}")


# --------------------------------------------------------------------- reports
def number(value):
    """A JSON-friendly number or list: float32 values to 7 significant digits (1.2, not
    1.2000000476837158), non-finite ones to ``None``."""
    array = np.asarray(value)
    if array.dtype.kind == "f":
        rounded = [None if not math.isfinite(x) else float(f"{x:.7g}") for x in array.reshape(-1).tolist()]
        return rounded[0] if array.ndim == 0 else np.asarray(rounded, object).reshape(array.shape).tolist()
    return array.item() if array.ndim == 0 else array.tolist()


def describe(item) -> dict:
    """JSON-friendly description of one intervention, with units."""
    s = item.schedule
    end = number(s.end)
    conditional = bool(np.any(np.isfinite(np.asarray(s.on_above))))
    when_ = {
        "start_day": number(s.start),
        "end_day": None if end == OPEN_END else end,
        "condition": (
            {"signal": s.signal, "on_above": number(s.on_above), "off_below": number(s.off_below)}
            if conditional else None
        ),
    }
    return {"name": item.name, "kind": type(item).__name__, "when": when_} | item.describe()


# ----------------------------------------------------------------- in-jit mechanics
def initial_state(interventions: Interventions | None, world) -> InterventionState | None:
    """The set's day-0 run state (``None`` without a set)."""
    if interventions is None:
        return None
    require_set(interventions)
    return InterventionState(
        condition=jnp.zeros(len(interventions.items), jnp.float32),
        own=tuple(item.init(world) for item in interventions.items),
    )


def is_active(item, run: InterventionState, index: int, t) -> jax.Array:
    """bool scalar: intervention ``index`` acts today (in its window, condition on)."""
    return in_window(item.schedule, t) & (run.condition[index] > 0.5)


def conditions_substep(signals: Mapping[str, Any]):
    """The start-of-day substep updating each item's condition from the model's
    ``signals`` (``{name: fn(state, params, t, world) -> scalar}``); reports
    ``intervention_active`` ``[K]`` (window and condition). The model's state and params
    hold the set's run state and the set in their ``interventions`` fields."""

    def interventions(key, state, params, t, world):
        items = None if params.interventions is None else params.interventions.items
        if not items:
            return state, {}
        run = state.interventions
        values = {}
        for item in items:
            name = item.schedule.signal
            if name and name not in values:
                values[name] = signals[name](state, params, t, world)
        held = jnp.stack([
            condition_holds(item.schedule, run.condition[k] > 0.5, values.get(item.schedule.signal, jnp.float32(0.0)))
            for k, item in enumerate(items)
        ]).astype(jnp.float32)
        run = run.replace(condition=held)
        active = jnp.stack([is_active(item, run, k, t) for k, item in enumerate(items)])
        return state.replace(interventions=run), {"intervention_active": active.astype(jnp.float32)}

    return interventions


def apply_hooks(params, state, hook: str, value, t, world):
    """``value`` changed by every item of ``params.interventions`` with a method
    ``hook``, in the set's order (unchanged without a set)."""
    interventions = params.interventions
    if interventions is None:
        return value
    run = state.interventions
    for k, item in enumerate(interventions.items):
        fn = getattr(item, hook, None)
        if fn is None:
            continue
        ctx = HookContext(state, run, t, world, is_active(item, run, k, t), k)
        value = fn(value, ctx)
    return value


def phase_substep(phase: str) -> Substep:
    """A substep named ``phase`` running the :meth:`Intervention.act` of every item whose
    kind acts in that phase, in the set's order. Each item draws from its own stream,
    ``fold_in(day_key, substep_id(kind.stream or item.name))``, so adding an item leaves
    every other draw unchanged. Metrics of the same name add up."""

    def run_phase(day_key, state, params, t, world):
        interventions = params.interventions
        if interventions is None:
            return state, {}
        metrics: dict = {}
        for k, item in enumerate(interventions.items):
            if type(item).phase != phase:
                continue
            run = state.interventions
            key = jax.random.fold_in(day_key, substep_id(type(item).stream or item.name))
            ctx = HookContext(state, run, t, world, is_active(item, run, k, t), k)
            state, own, produced = item.act(key, state, run.own[k], params, t, world, ctx)
            run = state.interventions
            state = state.replace(interventions=run.replace(own=run.own[:k] + (own,) + run.own[k + 1:]))
            for name, value in produced.items():
                metrics[name] = metrics[name] + value if name in metrics else value
        return state, metrics

    run_phase.__name__ = phase
    return Substep(phase, run_phase, day_key=True)


# -------------------------------------------------------------------- selection helpers
def prefix_count(flags: jax.Array, block: int = 256) -> jax.Array:
    """Inclusive running count of a 1-D 0/1 array (int32), computed as a 2-D cumulative sum
    (XLA:CPU runs a long 1-D cumulative sum element by element)."""
    n = flags.shape[0]
    rows = -(-n // block)
    padded = jnp.zeros(rows * block, jnp.int32).at[:n].set(flags.astype(jnp.int32))
    within = jnp.cumsum(padded.reshape(rows, block), axis=1)
    offsets = jnp.cumsum(within[:, -1]) - within[:, -1]
    return (within + offsets[:, None]).reshape(-1)[:n]


def first_in_order(eligible: jax.Array, order: jax.Array, rank: jax.Array, count: jax.Array) -> jax.Array:
    """bool ``[S]``: the first ``count`` eligible agents along a priority order
    (``order`` int32 ``[S]`` the slot at each position, ``rank`` its inverse); O(S)."""
    along = eligible[order]
    picked = along & (prefix_count(along) <= count)
    return picked[rank]


def smallest_scores(candidates: jax.Array, scores: jax.Array, count: jax.Array, capacity: int) -> jax.Array:
    """bool ``[S]``: the ``min(count, capacity)`` candidates with the smallest ``scores``
    (fewer when fewer are candidates)."""
    n = candidates.shape[0]
    capacity = min(int(capacity), n)
    masked = jnp.where(candidates, scores, jnp.inf)
    values, index = jax.lax.top_k(-masked, capacity)
    take = (jnp.arange(capacity) < count) & jnp.isfinite(values)
    return jnp.zeros(n, bool).at[jnp.where(take, index, n)].set(True, mode="drop")


__all__ = [
    "HookContext",
    "Intervention",
    "InterventionError",
    "InterventionState",
    "Interventions",
    "OPEN_END",
    "Schedule",
    "apply_hooks",
    "check_number",
    "check_phases",
    "check_schedule",
    "combine",
    "condition_holds",
    "conditions_substep",
    "describe",
    "fail",
    "first_in_order",
    "in_window",
    "initial_state",
    "is_active",
    "make_schedule",
    "number",
    "phase_substep",
    "prefix_count",
    "require_set",
    "smallest_scores",
    "validate",
    "week_value",
    "when",
    "window",
]
