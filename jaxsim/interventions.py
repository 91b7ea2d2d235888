"""Interventions: declarative, composable policy changes that act inside ``jit``.

An intervention is a small pytree: its numbers (days, levels, probabilities) are array
leaves, so a grid of policies is a ``vmap`` over them and continuous levels get gradients;
what it *is* (its kind, the layer it closes, its name) is static. A set of them rides in
:class:`jaxsim.covid.CovidParams` as ``params.replace(interventions=Interventions(...))``
and the COVID model applies them each day (see :mod:`jaxsim.covid`); with no set the model
is exactly the plain one.

Units: days count from the run's day 0 (week ``w`` is days ``7w .. 7w+6``); probabilities
are per agent per day unless stated; counts are agents (or doses) per day; "cases" in a
condition are the simulation's symptom onsets over the 7 days before today.

When an intervention acts (:class:`Schedule`): on days ``start <= t < end``, and, if it has
a condition, only while the condition holds. A condition switches on when the week's cases
exceed ``on_above`` and off again when they fall below ``off_below`` (hysteresis; both in
onsets per 7 days, ``off_below <= on_above``); it is evaluated at the start of every day
from the cases of days ``t-7 .. t-1``. Interventions without a condition have both
thresholds at ``-inf``.

Kinds (constructors validate every value and raise :class:`InterventionError` naming the
intervention, the field and the value):

- :func:`scale_contacts` (:class:`ContactScale`): multiply one contact layer's contacts by
  ``scale`` (0 closes the setting, e.g. schools or the community layer).
- :func:`isolation_compliance` (:class:`IsolationCompliance`): each agent's daily isolation
  probability ``p`` becomes ``clip(scale_w * p + add, 0, 1)``; ``scale`` may be one value
  or one per week of the run (a weekly schedule; weeks past the last repeat it).
- :func:`isolate_age_bands` (:class:`AgeIsolation`): agents in the given age bands isolate
  with daily probability at least ``probability`` (shielding).
- :func:`testing` (:class:`Testing`): each day a share of living agents, and a share of
  symptomatic (stage I) agents, are tested; an infected (E or I) agent tests positive with
  probability ``sensitivity``; the result is known ``delay_days`` later and the agent then
  isolates for ``isolation_days`` days. Agents awaiting a result or isolating after one are
  not retested.
- :func:`vaccination` (:class:`Vaccination`): up to ``daily_doses`` whole doses a day go to
  living, unvaccinated, not currently symptomatic agents of the priority age bands, band by
  band in the given order (random order within a band); a vaccinated agent's
  susceptibility is multiplied by ``1 - efficacy`` from ``protection_delay_days`` after
  its dose on (a "leaky" vaccine: every vaccinated agent is partly protected, rather than
  a share fully protected). Never more doses than scheduled.
- :func:`seeding` (:class:`Seeding`): each active day, ``cases`` susceptible agents (drawn
  at random) become exposed: imported infections.

Gradients: the continuous levels of contact scaling, isolation compliance, age-band
isolation and vaccine efficacy carry gradients through the model's estimators. Doses,
seeded cases, days and the testing programme are discrete and have none (the testing
programme's isolation is carried as integer days).

At most one :class:`Testing` and one :class:`Vaccination` per set (they share per-agent
state); any number of the others, applied in the order given.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

#: ``end`` of an open-ended schedule: later than any run.
OPEN_END = 1_000_000


class InterventionError(ValueError):
    """An intervention was given a value it cannot use; the message names the
    intervention, the field and the value."""


# ----------------------------------------------------------------------------- schedules
@struct.dataclass
class Schedule:
    """When an intervention acts.

    Attributes:
        start: int32 scalar, first day it can act (inclusive, >= 0).
        end: int32 scalar, first day it no longer acts (exclusive, > start).
        on_above: float32 scalar, onsets per 7 days above which its condition switches
            on (``-inf``: no condition).
        off_below: float32 scalar, onsets per 7 days below which it switches off again.
    """

    start: jax.Array
    end: jax.Array
    on_above: jax.Array
    off_below: jax.Array


def window(start: int = 0, end: int | None = None) -> Schedule:
    """Act on days ``start <= t < end`` (``end=None``: to the end of the run)."""
    return Schedule(
        start=jnp.int32(start), end=jnp.int32(OPEN_END if end is None else end),
        on_above=jnp.float32(-np.inf), off_below=jnp.float32(-np.inf),
    )


def when_cases(on_above: float, off_below: float, start: int = 0, end: int | None = None) -> Schedule:
    """Act while the simulated onsets of the last 7 days are high: switch on above
    ``on_above``, off below ``off_below`` (onsets per 7 days), within days ``start .. end``."""
    return Schedule(
        start=jnp.int32(start), end=jnp.int32(OPEN_END if end is None else end),
        on_above=jnp.float32(on_above), off_below=jnp.float32(off_below),
    )


def in_window(schedule: Schedule, t: jax.Array) -> jax.Array:
    """bool scalar: ``start <= t < end``."""
    return (t >= schedule.start) & (t < schedule.end)


def condition_holds(schedule: Schedule, was_on: jax.Array, cases_week: jax.Array) -> jax.Array:
    """bool scalar: the condition's state today from yesterday's (``was_on``) and the
    onsets of the last 7 days (hysteresis: on above ``on_above``, off below ``off_below``)."""
    return jnp.where(was_on, cases_week >= schedule.off_below, cases_week > schedule.on_above)


# --------------------------------------------------------------------------------- kinds
@struct.dataclass
class ContactScale:
    """Multiply the contacts of one layer by ``scale`` while active.

    Attributes:
        schedule: when.
        scale: float32 scalar >= 0 (0 = the setting is closed, 1 = no change).
        layer: static, the contact layer's name.
        name: static label.
    """

    schedule: Schedule
    scale: jax.Array
    layer: str = struct.field(pytree_node=False, default="")
    name: str = struct.field(pytree_node=False, default="contact_scale")


@struct.dataclass
class IsolationCompliance:
    """Scale the daily isolation probability: ``p' = clip(scale_w * p + add, 0, 1)``.

    Attributes:
        schedule: when.
        scale: float32 ``[W]`` multiplier per week of the run (``W >= 1``; week ``w`` of
            the run uses ``scale[min(w, W - 1)]``), >= 0.
        add: float32 scalar, probability per day added after scaling, in ``[-1, 1]``.
        name: static label.
    """

    schedule: Schedule
    scale: jax.Array
    add: jax.Array
    name: str = struct.field(pytree_node=False, default="isolation_compliance")


@struct.dataclass
class AgeIsolation:
    """Agents in the chosen age bands isolate with daily probability at least ``probability``.

    Attributes:
        schedule: when.
        in_band: float32 ``[A]`` 1 for the chosen age codes, 0 otherwise.
        probability: float32 scalar in ``[0, 1]``.
        bands: static, the chosen age labels (for reports).
        name: static label.
    """

    schedule: Schedule
    in_band: jax.Array
    probability: jax.Array
    bands: tuple = struct.field(pytree_node=False, default=())
    name: str = struct.field(pytree_node=False, default="age_isolation")


@struct.dataclass
class Testing:
    """Testing with isolation of positives.

    Attributes:
        schedule: when tests are taken (results already pending still arrive after it).
        random_share: float32, probability per day that a living agent is tested.
        symptomatic_share: float32, probability per day that a symptomatic (stage I)
            agent is tested.
        sensitivity: float32, probability that an infected (E or I) agent tests positive.
        delay_days: int32 >= 0, days from test to result (0: known the same day).
        isolation_days: int32 >= 1, days a positive isolates from the day of the result.
        name: static label.
    """

    schedule: Schedule
    random_share: jax.Array
    symptomatic_share: jax.Array
    sensitivity: jax.Array
    delay_days: jax.Array
    isolation_days: jax.Array
    name: str = struct.field(pytree_node=False, default="testing")


@struct.dataclass
class Vaccination:
    """A vaccination campaign with priority by age band.

    Attributes:
        schedule: when doses are given.
        daily_doses: float32, doses per day (whole doses: the fraction is dropped), >= 0.
        efficacy: float32 in ``[0, 1]``, reduction of a vaccinated agent's susceptibility.
        protection_delay_days: int32 >= 0, days from the dose until protection.
        order: int32 ``[S]`` agent slot at each position of the priority order (agents of
            the first band in random order, then the second band, ...; agents of no
            priority band and padding slots last).
        rank: int32 ``[S]`` each slot's position in ``order`` (the inverse permutation).
        num_priority: int32 scalar, how many agents the priority bands hold (positions
            ``0 .. num_priority - 1`` of the order can be vaccinated).
        priority: static, the age labels in priority order (for reports).
        name: static label.
    """

    schedule: Schedule
    daily_doses: jax.Array
    efficacy: jax.Array
    protection_delay_days: jax.Array
    order: jax.Array
    rank: jax.Array
    num_priority: jax.Array
    priority: tuple = struct.field(pytree_node=False, default=())
    name: str = struct.field(pytree_node=False, default="vaccination")


@struct.dataclass
class Seeding:
    """Imported infections: ``cases`` susceptible agents become exposed each active day.

    Attributes:
        schedule: the days it acts (e.g. ``window(d, d + 1)`` for one day).
        cases: float32, agents per active day (whole agents: the fraction is dropped),
            at most ``capacity``.
        capacity: static int, the most cases per day (sets the size of the selection).
        name: static label.
    """

    schedule: Schedule
    cases: jax.Array
    capacity: int = struct.field(pytree_node=False, default=1)
    name: str = struct.field(pytree_node=False, default="seeding")


KINDS = (ContactScale, IsolationCompliance, AgeIsolation, Testing, Vaccination, Seeding)


@struct.dataclass
class Interventions:
    """An ordered set of interventions (a pytree; goes in ``CovidParams.interventions``).

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


def combine(*items) -> Interventions:
    """An :class:`Interventions` set from interventions (checked: known kinds, unique
    names, at most one testing programme and one vaccination campaign)."""
    flat = []
    for item in items:
        flat.extend(item.items if isinstance(item, Interventions) else [item])
    for item in flat:
        if not isinstance(item, KINDS):
            raise InterventionError(
                f"not an intervention: {item!r}; build one with scale_contacts, isolation_compliance, "
                "isolate_age_bands, testing, vaccination or seeding"
            )
    names = [item.name for item in flat]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InterventionError(f"intervention names must be unique; repeated: {dupes}")
    for kind in (Testing, Vaccination):
        found = [item.name for item in flat if isinstance(item, kind)]
        if len(found) > 1:
            raise InterventionError(
                f"at most one {kind.__name__} intervention per set (they share per-agent state); got {found}"
            )
    return Interventions(items=tuple(flat))


# ------------------------------------------------------------------------- validation
def _fail(name: str, field: str, message: str):
    raise InterventionError(f"intervention {name!r}: {field} {message}")


def _scalar(name: str, field: str, value, *, low=None, high=None, integer=False) -> np.ndarray:
    """Check a number (or an array of them, for grids) and return it as an array."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        _fail(name, field, f"must be a number, got {value!r}")
    if array.size == 0 or not np.all(np.isfinite(array)):
        _fail(name, field, f"must be a finite number, got {value!r}")
    if integer and not np.all(array == np.round(array)):
        _fail(name, field, f"must be a whole number of days, got {value!r}")
    if low is not None and np.any(array < low):
        _fail(name, field, f"must be >= {low}, got {value!r}")
    if high is not None and np.any(array > high):
        _fail(name, field, f"must be <= {high}, got {value!r}")
    return array


def check_schedule(name: str, schedule: Schedule) -> Schedule:
    """Raise :class:`InterventionError` for a window that is empty or negative, or
    thresholds that are not numbers or have ``off_below > on_above``."""
    if not isinstance(schedule, Schedule):
        _fail(name, "schedule", f"must be a Schedule (window(...) or when_cases(...)), got {schedule!r}")
    start = _scalar(name, "start day", schedule.start, low=0, integer=True)
    end = _scalar(name, "end day", schedule.end, low=1, integer=True)
    if np.any(end <= start):
        _fail(name, "window", f"is empty: end day {end.tolist()} must be after start day {start.tolist()}")
    on_above = np.asarray(schedule.on_above, np.float64)
    off_below = np.asarray(schedule.off_below, np.float64)
    conditional = np.isfinite(on_above) | np.isfinite(off_below)
    if np.any(conditional):
        _scalar(name, "on_above", on_above, low=0)
        _scalar(name, "off_below", off_below, low=0)
        if np.any(off_below > on_above):
            _fail(name, "off_below", f"({off_below.tolist()}) must be <= on_above ({on_above.tolist()})")
    elif np.any(np.isnan(on_above)) or np.any(np.isnan(off_below)):
        _fail(name, "thresholds", "must not be NaN")
    return schedule


def _schedule(name: str, schedule: Schedule | None, start: int | None, end: int | None) -> Schedule:
    if schedule is None:
        if start is None:
            start = 0
        _scalar(name, "start day", start, low=0, integer=True)
        if end is not None:
            _scalar(name, "end day", end, low=1, integer=True)
        schedule = window(int(start), None if end is None else int(end))
    elif start is not None or end is not None:
        _fail(name, "schedule", "give either schedule=... or start/end days, not both")
    return check_schedule(name, schedule)


# ------------------------------------------------------------------------ constructors
def scale_contacts(
    layer: str,
    scale: float = 0.0,
    *,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    name: str | None = None,
) -> ContactScale:
    """Multiply layer ``layer``'s contacts by ``scale`` (>= 0; 0 closes it) on days
    ``start .. end - 1`` (or per ``schedule``)."""
    name = name or f"scale_{layer}"
    if not isinstance(layer, str) or not layer:
        _fail(name, "layer", f"must be a layer name, got {layer!r}")
    _scalar(name, "scale", scale, low=0)
    return ContactScale(
        schedule=_schedule(name, schedule, start, end), scale=jnp.float32(scale), layer=layer, name=name
    )


def isolation_compliance(
    scale: float | Sequence[float] = 1.0,
    add: float = 0.0,
    *,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    name: str = "isolation_compliance",
) -> IsolationCompliance:
    """Daily isolation probability ``p -> clip(scale_w * p + add, 0, 1)``: ``scale`` is a
    multiplier (>= 0; 1.2 = 20% more compliance), one value or one per week of the run;
    ``add`` a probability per day in ``[-1, 1]``."""
    array = _scalar(name, "scale", scale, low=0)
    if array.ndim > 1:
        _fail(name, "scale", f"must be one value or one per week, got shape {array.shape}")
    _scalar(name, "add", add, low=-1, high=1)
    return IsolationCompliance(
        schedule=_schedule(name, schedule, start, end),
        scale=jnp.asarray(np.atleast_1d(array), jnp.float32),
        add=jnp.float32(add),
        name=name,
    )


def isolate_age_bands(
    population,
    bands: Sequence[str],
    probability: float,
    *,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    name: str | None = None,
) -> AgeIsolation:
    """Agents of the age bands ``bands`` (labels of ``population``'s ``age``) isolate
    each day with probability at least ``probability``."""
    bands = tuple(bands)
    name = name or f"isolate_{'_'.join(bands)}"
    if not bands:
        _fail(name, "bands", "must name at least one age band")
    labels = population.category_labels("age")
    unknown = [b for b in bands if b not in labels]
    if unknown:
        _fail(name, "bands", f"{unknown} are not age bands of this population; they are {labels}")
    _scalar(name, "probability", probability, low=0, high=1)
    mask = np.zeros(len(labels), np.float32)
    for band in bands:
        mask[population.code("age", band)] = 1.0
    return AgeIsolation(
        schedule=_schedule(name, schedule, start, end), in_band=jnp.asarray(mask),
        probability=jnp.float32(probability), bands=bands, name=name,
    )


def testing(
    *,
    random_share: float = 0.0,
    symptomatic_share: float = 0.0,
    sensitivity: float = 0.85,
    delay_days: int = 2,
    isolation_days: int = 10,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    name: str = "testing",
) -> Testing:
    """Test a share of living agents (``random_share``) and of symptomatic agents
    (``symptomatic_share``) per day; positives (probability ``sensitivity`` for an infected
    agent) learn it after ``delay_days`` and isolate for ``isolation_days`` days."""
    _scalar(name, "random_share", random_share, low=0, high=1)
    _scalar(name, "symptomatic_share", symptomatic_share, low=0, high=1)
    _scalar(name, "sensitivity", sensitivity, low=0, high=1)
    _scalar(name, "delay_days", delay_days, low=0, high=365, integer=True)
    _scalar(name, "isolation_days", isolation_days, low=1, high=365, integer=True)
    return Testing(
        schedule=_schedule(name, schedule, start, end),
        random_share=jnp.float32(random_share), symptomatic_share=jnp.float32(symptomatic_share),
        sensitivity=jnp.float32(sensitivity), delay_days=jnp.int32(delay_days),
        isolation_days=jnp.int32(isolation_days), name=name,
    )


def vaccination(
    population,
    world,
    daily_doses: float,
    *,
    priority: Sequence[str],
    efficacy: float = 0.9,
    protection_delay_days: int = 14,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    seed: int = 0,
    name: str = "vaccination",
) -> Vaccination:
    """A campaign of ``daily_doses`` doses a day to the age bands ``priority`` (labels,
    first band first), efficacy ``efficacy`` (susceptibility reduction, in [0, 1]) from
    ``protection_delay_days`` after the dose. ``world`` is the run's
    (:func:`jaxsim.covid.build_world`); the order within a band is random (``seed``)."""
    priority = tuple(priority)
    if not priority:
        _fail(name, "priority", "must name at least one age band")
    labels = population.category_labels("age")
    unknown = [b for b in priority if b not in labels]
    if unknown:
        _fail(name, "priority", f"{unknown} are not age bands of this population; they are {labels}")
    if len(set(priority)) != len(priority):
        _fail(name, "priority", f"repeats a band: {list(priority)}")
    _scalar(name, "daily_doses", daily_doses, low=0)
    _scalar(name, "efficacy", efficacy, low=0, high=1)
    _scalar(name, "protection_delay_days", protection_delay_days, low=0, high=365, integer=True)
    if world.num_agents != population.size:
        _fail(name, "world", f"has {world.num_agents} agents, the population {population.size}")
    slots = world.num_slots
    age = np.asarray(population.attributes["age"])
    rng = np.random.default_rng(seed)
    band_rank = np.full(len(labels), len(priority), np.int64)
    for position, band in enumerate(priority):
        band_rank[population.code("age", band)] = position
    key = np.full(slots, len(priority) + 1, np.float64)  # padding slots last of all
    key[: population.size] = band_rank[age] + rng.random(population.size)
    order = np.argsort(key, kind="stable").astype(np.int32)
    rank = np.empty(slots, np.int32)
    rank[order] = np.arange(slots, dtype=np.int32)
    num_priority = int(np.sum(band_rank[age] < len(priority)))
    return Vaccination(
        schedule=_schedule(name, schedule, start, end),
        daily_doses=jnp.float32(daily_doses), efficacy=jnp.float32(efficacy),
        protection_delay_days=jnp.int32(protection_delay_days),
        order=jnp.asarray(order), rank=jnp.asarray(rank), num_priority=jnp.int32(num_priority),
        priority=priority, name=name,
    )


def seeding(
    cases: int,
    *,
    day: int | None = None,
    start: int | None = None,
    end: int | None = None,
    schedule: Schedule | None = None,
    capacity: int | None = None,
    name: str = "seeding",
) -> Seeding:
    """Import ``cases`` exposed agents on ``day`` (or on each day of a window/schedule);
    ``capacity`` (default ``cases``, at least 1) is the most per day any member of a grid
    may ask for."""
    _scalar(name, "cases", cases, low=0)
    if day is not None:
        if start is not None or end is not None or schedule is not None:
            _fail(name, "day", "give either day=... or a window, not both")
        _scalar(name, "day", day, low=0, integer=True)
        start, end = int(day), int(day) + 1
    whole = int(math.floor(float(np.max(np.asarray(cases, np.float64)))))
    capacity = max(1, whole) if capacity is None else capacity
    _scalar(name, "capacity", capacity, low=1, integer=True)
    if whole > int(capacity):
        _fail(name, "cases", f"({whole}) exceed capacity ({capacity})")
    return Seeding(
        schedule=_schedule(name, schedule, start, end), cases=jnp.float32(cases),
        capacity=int(capacity), name=name,
    )


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


def validate(interventions: Interventions, world) -> None:
    """Host-side checks of a set against the run's world: known layers, per-age and
    per-agent arrays of the right length, every value in range. Raises
    :class:`InterventionError` naming the intervention and field."""
    require_set(interventions)
    combine(*interventions.items)  # kinds, unique names, one testing / vaccination
    for item in interventions.items:
        name = item.name
        check_schedule(name, item.schedule)
        if isinstance(item, ContactScale):
            if item.layer not in world.graph:
                _fail(name, "layer", f"{item.layer!r} is not a contact layer of this world; layers are {sorted(world.graph)}")
            _scalar(name, "scale", item.scale, low=0)
        elif isinstance(item, IsolationCompliance):
            _scalar(name, "scale", item.scale, low=0)
            if np.ndim(item.scale) < 1:
                _fail(name, "scale", "must have a week axis [W]")
            _scalar(name, "add", item.add, low=-1, high=1)
        elif isinstance(item, AgeIsolation):
            ages = world.num_categories("age")
            if np.shape(item.in_band)[-1:] != (ages,):
                _fail(name, "in_band", f"needs one entry per age code ({ages}), got shape {np.shape(item.in_band)}")
            _scalar(name, "probability", item.probability, low=0, high=1)
        elif isinstance(item, Testing):
            for field in ("random_share", "symptomatic_share", "sensitivity"):
                _scalar(name, field, getattr(item, field), low=0, high=1)
            _scalar(name, "delay_days", item.delay_days, low=0, high=365, integer=True)
            _scalar(name, "isolation_days", item.isolation_days, low=1, high=365, integer=True)
        elif isinstance(item, Vaccination):
            slots = world.num_slots
            if np.shape(item.order)[-1:] != (slots,) or np.shape(item.rank)[-1:] != (slots,):
                _fail(name, "order", f"was built for another world: needs {slots} slots, has {np.shape(item.order)[-1]}")
            _scalar(name, "daily_doses", item.daily_doses, low=0)
            _scalar(name, "efficacy", item.efficacy, low=0, high=1)
            _scalar(name, "protection_delay_days", item.protection_delay_days, low=0, high=365, integer=True)
        elif isinstance(item, Seeding):
            _scalar(name, "cases", item.cases, low=0, high=item.capacity)


# --------------------------------------------------------------------- reports
def _number(value):
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
    end = _number(s.end)
    conditional = bool(np.any(np.isfinite(np.asarray(s.on_above))))
    when = {
        "start_day": _number(s.start),
        "end_day": None if end == OPEN_END else end,
        "condition": (
            {"on_above_onsets_per_7_days": _number(s.on_above), "off_below_onsets_per_7_days": _number(s.off_below)}
            if conditional else None
        ),
    }
    out: dict = {"name": item.name, "kind": type(item).__name__, "when": when}
    if isinstance(item, ContactScale):
        out |= {"layer": item.layer, "contact_multiplier": _number(item.scale)}
    elif isinstance(item, IsolationCompliance):
        out |= {"isolation_probability_multiplier_per_week": _number(item.scale),
                "isolation_probability_added_per_day": _number(item.add)}
    elif isinstance(item, AgeIsolation):
        out |= {"age_bands": list(item.bands), "minimum_isolation_probability_per_day": _number(item.probability)}
    elif isinstance(item, Testing):
        out |= {"random_test_probability_per_day": _number(item.random_share),
                "symptomatic_test_probability_per_day": _number(item.symptomatic_share),
                "sensitivity": _number(item.sensitivity), "result_delay_days": _number(item.delay_days),
                "isolation_days": _number(item.isolation_days)}
    elif isinstance(item, Vaccination):
        out |= {"doses_per_day": _number(item.daily_doses), "efficacy_susceptibility_reduction": _number(item.efficacy),
                "protection_delay_days": _number(item.protection_delay_days), "priority_age_bands": list(item.priority),
                "agents_in_priority_bands": _number(item.num_priority)}
    elif isinstance(item, Seeding):
        out |= {"imported_cases_per_active_day": _number(item.cases)}
    return out


# ----------------------------------------------------------------- in-jit mechanics
def week_value(per_week: jax.Array, t: jax.Array) -> jax.Array:
    """``per_week[min(t // 7, W - 1)]`` for a ``[W]`` weekly schedule."""
    return per_week[jnp.clip(t // 7, 0, per_week.shape[0] - 1)]


def prefix_count(flags: jax.Array, block: int = 256) -> jax.Array:
    """Inclusive running count of a 1-D 0/1 array (int32), computed as a 2-D cumulative sum.

    XLA:CPU runs a long 1-D cumulative sum element by element (measured 0.23 ms for 47 k
    entries); cut into rows of ``block`` entries, the per-row sums vectorise and the row
    offsets are a short 1-D sum.
    """
    n = flags.shape[0]
    rows = -(-n // block)
    padded = jnp.zeros(rows * block, jnp.int32).at[:n].set(flags.astype(jnp.int32))
    within = jnp.cumsum(padded.reshape(rows, block), axis=1)
    offsets = jnp.cumsum(within[:, -1]) - within[:, -1]
    return (within + offsets[:, None]).reshape(-1)[:n]


def first_in_order(eligible: jax.Array, order: jax.Array, rank: jax.Array, count: jax.Array) -> jax.Array:
    """bool ``[S]``: the first ``count`` eligible agents along a priority order.

    Args:
        eligible: bool ``[S]`` per agent slot.
        order: int32 ``[S]`` slot at each position; ``rank`` its inverse.
        count: scalar, how many to pick (fewer when fewer are eligible).

    O(S): a gather into the order, a running count and a gather back.
    """
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
    "AgeIsolation",
    "ContactScale",
    "InterventionError",
    "Interventions",
    "IsolationCompliance",
    "OPEN_END",
    "Schedule",
    "Seeding",
    "Testing",
    "Vaccination",
    "check_schedule",
    "combine",
    "condition_holds",
    "describe",
    "first_in_order",
    "in_window",
    "isolate_age_bands",
    "isolation_compliance",
    "prefix_count",
    "scale_contacts",
    "seeding",
    "smallest_scores",
    "testing",
    "vaccination",
    "require_set",
    "validate",
    "week_value",
    "when_cases",
    "window",
]
