"""The COVID model's intervention kinds, built on the open protocol of
:mod:`jaxsim.interventions` (a user adds a kind the same way, without editing jaxsim).

Hooks of the COVID step (see :mod:`.substeps`): ``isolation_probability`` (each agent's
daily probability before its draw), ``isolating`` (the draws), ``layer_scale`` (today's
multiplier per contact layer) and ``susceptibility`` (per agent). Phases:
``after_progression`` (before isolation), ``before_infection`` and ``after_infection``.
Signal: ``weekly_onsets``, the simulation's symptom onsets over the 7 days before today.

Kinds (constructors validate every value and raise
:class:`jaxsim.interventions.InterventionError` naming the intervention, the field and
the value):

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
  its dose on (a "leaky" vaccine). Never more doses than scheduled.
- :func:`seeding` (:class:`Seeding`): each active day, ``cases`` susceptible agents (drawn
  at random) become exposed: imported infections.

A condition on the epidemic: :func:`when_cases` (on above ``on_above`` onsets per 7
days, off below ``off_below``).

Gradients: the continuous levels of contact scaling, isolation compliance, age-band
isolation and vaccine efficacy carry gradients through the run's estimator. Doses,
seeded cases, days and the testing programme are discrete and have none.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim import interventions as iv
from jaxsim import sampling
from jaxsim.interventions import (
    Intervention,
    Schedule,
    check_number,
    fail,
    first_in_order,
    in_window,
    make_schedule,
    number,
    smallest_scores,
    week_value,
)
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.progression import DEAD, EXPOSED, INFECTED, RECOVERED, SUSCEPTIBLE
from jaxsim.models.covid.state import EXPOSURE_HISTORY_DAYS, NEVER

#: The COVID model's signal for conditions: onsets over the 7 days before today.
WEEKLY_ONSETS = "weekly_onsets"


def when_cases(on_above: float, off_below: float, start: int = 0, end: int | None = None) -> Schedule:
    """Act while the simulated onsets of the last 7 days are high: switch on above
    ``on_above``, off below ``off_below`` (onsets per 7 days), within days ``start .. end``."""
    return iv.when(WEEKLY_ONSETS, on_above, off_below, start, end)


# --------------------------------------------------------------------------------- kinds
@struct.dataclass
class ContactScale(Intervention):
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

    def validate(self, world) -> None:
        if self.layer not in world.graph:
            fail(self.name, "layer", f"{self.layer!r} is not a contact layer of this world; layers are {sorted(world.graph)}")
        check_number(self.name, "scale", self.scale, low=0)

    def describe(self) -> dict:
        return {"layer": self.layer, "contact_multiplier": number(self.scale)}

    def layer_scale(self, scales: dict, ctx) -> dict:
        scales = dict(scales)
        factor = jnp.where(ctx.active, self.scale, 1.0).astype(jnp.float32)
        scales[self.layer] = scales.get(self.layer, jnp.float32(1.0)) * factor
        return scales


@struct.dataclass
class IsolationCompliance(Intervention):
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

    def validate(self, world) -> None:
        check_number(self.name, "scale", self.scale, low=0)
        if np.ndim(self.scale) < 1:
            fail(self.name, "scale", "must have a week axis [W]")
        check_number(self.name, "add", self.add, low=-1, high=1)

    def describe(self) -> dict:
        return {"isolation_probability_multiplier_per_week": number(self.scale),
                "isolation_probability_added_per_day": number(self.add)}

    def isolation_probability(self, p, ctx):
        scaled = jnp.clip(week_value(self.scale, ctx.t) * p + self.add, 0.0, 1.0)
        return jnp.where(ctx.active, scaled, p)


@struct.dataclass
class AgeIsolation(Intervention):
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

    def validate(self, world) -> None:
        ages = world.num_categories("age")
        if np.shape(self.in_band)[-1:] != (ages,):
            fail(self.name, "in_band", f"needs one entry per age code ({ages}), got shape {np.shape(self.in_band)}")
        check_number(self.name, "probability", self.probability, low=0, high=1)

    def describe(self) -> dict:
        return {"age_bands": list(self.bands), "minimum_isolation_probability_per_day": number(self.probability)}

    def isolation_probability(self, p, ctx):
        in_band = lookup(self.in_band, ctx.world.agents["age"].astype(jnp.int32)) > 0.5
        return jnp.where(ctx.active & in_band, jnp.maximum(p, self.probability), p)


@struct.dataclass
class TestingState:
    """Per-agent state of a testing programme: ``test_result_day`` int16 ``[S]`` the day a
    pending positive result arrives (``NEVER``: none) and ``isolate_until`` int16 ``[S]``:
    the agent isolates after a positive test on days ``t < isolate_until``."""

    test_result_day: jax.Array
    isolate_until: jax.Array


@struct.dataclass
class Testing(Intervention):
    """Testing with isolation of positives (phase ``after_progression``; hook ``isolating``).

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

    phase: ClassVar[str] = "after_progression"
    stream: ClassVar[str] = "testing"
    exclusive: ClassVar[bool] = True

    schedule: Schedule
    random_share: jax.Array
    symptomatic_share: jax.Array
    sensitivity: jax.Array
    delay_days: jax.Array
    isolation_days: jax.Array
    name: str = struct.field(pytree_node=False, default="testing")

    def validate(self, world) -> None:
        for field in ("random_share", "symptomatic_share", "sensitivity"):
            check_number(self.name, field, getattr(self, field), low=0, high=1)
        check_number(self.name, "delay_days", self.delay_days, low=0, high=365, integer=True)
        check_number(self.name, "isolation_days", self.isolation_days, low=1, high=365, integer=True)

    def describe(self) -> dict:
        return {"random_test_probability_per_day": number(self.random_share),
                "symptomatic_test_probability_per_day": number(self.symptomatic_share),
                "sensitivity": number(self.sensitivity), "result_delay_days": number(self.delay_days),
                "isolation_days": number(self.isolation_days)}

    def init(self, world) -> TestingState:
        slots = world.num_slots
        return TestingState(jnp.full(slots, NEVER, jnp.int16), jnp.full(slots, NEVER, jnp.int16))

    def act(self, key, state, own: TestingState, params, t, world, ctx):
        """Tests taken today and results arriving today; reports ``tests`` and ``positive_tests``."""
        stage = state.stage
        waiting = own.test_result_day != NEVER
        isolating_after_test = t < own.isolate_until.astype(jnp.int32)
        eligible = ctx.active & (stage < DEAD) & ~waiting & ~isolating_after_test
        k_random, k_symptomatic, k_sensitivity = jax.random.split(key, 3)
        shape = stage.shape
        tested = (sampling.uniform(k_random, shape) < self.random_share) | (
            (stage == INFECTED) & (sampling.uniform(k_symptomatic, shape) < self.symptomatic_share)
        )
        tested = tested & eligible
        infected_now = (stage == EXPOSED) | (stage == INFECTED)
        positive = tested & infected_now & (sampling.uniform(k_sensitivity, shape) < self.sensitivity)
        day_type = own.test_result_day.dtype
        result_day = jnp.where(positive, (t + self.delay_days).astype(day_type), own.test_result_day)
        due = result_day.astype(jnp.int32) == t
        isolate_until = jnp.where(due, (t + self.isolation_days).astype(day_type), own.isolate_until)
        own = TestingState(jnp.where(due, NEVER, result_day).astype(day_type), isolate_until)
        return state, own, {
            "tests": tested.sum(dtype=jnp.float32),
            "positive_tests": positive.sum(dtype=jnp.float32),
        }

    def isolating(self, isolates, ctx):
        # Positives isolate, whatever their daily draw, until their isolation ends.
        own = ctx.own
        after_test = (ctx.t < own.isolate_until.astype(jnp.int32)) & (ctx.state.stage < DEAD)
        return jnp.maximum(isolates, after_test.astype(jnp.float32))


@struct.dataclass
class Vaccination(Intervention):
    """A vaccination campaign with priority by age band (phase ``before_infection``; hook
    ``susceptibility``). Its own state: each slot's dose day (int16 ``[S]``, ``NEVER``: none).

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

    phase: ClassVar[str] = "before_infection"
    stream: ClassVar[str] = "vaccination"
    exclusive: ClassVar[bool] = True

    schedule: Schedule
    daily_doses: jax.Array
    efficacy: jax.Array
    protection_delay_days: jax.Array
    order: jax.Array
    rank: jax.Array
    num_priority: jax.Array
    priority: tuple = struct.field(pytree_node=False, default=())
    name: str = struct.field(pytree_node=False, default="vaccination")

    def validate(self, world) -> None:
        slots = world.num_slots
        if np.shape(self.order)[-1:] != (slots,) or np.shape(self.rank)[-1:] != (slots,):
            fail(self.name, "order", f"was built for another world: needs {slots} slots, has {np.shape(self.order)[-1]}")
        check_number(self.name, "daily_doses", self.daily_doses, low=0)
        check_number(self.name, "efficacy", self.efficacy, low=0, high=1)
        check_number(self.name, "protection_delay_days", self.protection_delay_days, low=0, high=365, integer=True)

    def describe(self) -> dict:
        return {"doses_per_day": number(self.daily_doses), "efficacy_susceptibility_reduction": number(self.efficacy),
                "protection_delay_days": number(self.protection_delay_days), "priority_age_bands": list(self.priority),
                "agents_in_priority_bands": number(self.num_priority)}

    def init(self, world) -> jax.Array:
        return jnp.full(world.num_slots, NEVER, jnp.int16)

    def act(self, key, state, vaccinated_day, params, t, world, ctx):
        """Today's doses along the priority order; reports ``vaccinations`` (doses today)
        and ``vaccinated`` (agents vaccinated so far)."""
        doses = jnp.where(ctx.active, jnp.floor(self.daily_doses), 0.0)

        def give(vaccinated_day):
            stage = state.stage
            eligible = (
                (stage <= RECOVERED) & (stage != INFECTED) & (vaccinated_day == NEVER)
                & (self.rank < self.num_priority)
            )
            chosen = first_in_order(eligible, self.order, self.rank, doses)
            return jnp.where(chosen, t.astype(vaccinated_day.dtype), vaccinated_day), chosen.sum(dtype=jnp.float32)

        def skip(vaccinated_day):
            return vaccinated_day, jnp.float32(0.0)

        vaccinated_day, given = jax.lax.cond(in_window(self.schedule, t), give, skip, vaccinated_day)
        return state, vaccinated_day, {
            "vaccinations": given,
            "vaccinated": (vaccinated_day != NEVER).sum(dtype=jnp.float32),
        }

    def susceptibility(self, value, ctx):
        """Susceptibility times ``1 - efficacy`` for protected agents."""
        vaccinated_day = ctx.own
        dosed = vaccinated_day != NEVER
        protected = dosed & (ctx.t - vaccinated_day.astype(jnp.int32) >= self.protection_delay_days)
        return value * (1.0 - self.efficacy * protected.astype(jnp.float32))


@struct.dataclass
class Seeding(Intervention):
    """Imported infections: ``cases`` susceptible agents become exposed each active day
    (phase ``after_infection``; not in ``new_infections``, which counts transmission).

    Attributes:
        schedule: the days it acts (e.g. ``window(d, d + 1)`` for one day).
        cases: float32, agents per active day (whole agents: the fraction is dropped),
            at most ``capacity``.
        capacity: static int, the most cases per day (sets the size of the selection).
        name: static label.
    """

    phase: ClassVar[str] = "after_infection"
    stream: ClassVar[str] = "seeding"

    schedule: Schedule
    cases: jax.Array
    capacity: int = struct.field(pytree_node=False, default=1)
    name: str = struct.field(pytree_node=False, default="seeding")

    def validate(self, world) -> None:
        check_number(self.name, "cases", self.cases, low=0, high=self.capacity)

    def describe(self) -> dict:
        return {"imported_cases_per_active_day": number(self.cases)}

    def act(self, key, state, own, params, t, world, ctx):
        """The chosen susceptible agents become exposed today; reports ``imported_infections``."""
        count = jnp.where(ctx.active, jnp.floor(self.cases), 0.0)

        def seed(carry):
            stage, day_infected = carry
            scores = sampling.uniform(jax.random.fold_in(key, ctx.index), stage.shape)
            chosen = smallest_scores(stage == SUSCEPTIBLE, scores, count, self.capacity)
            stage = jnp.where(chosen, jnp.int8(EXPOSED), stage).astype(carry[0].dtype)
            day_infected = jnp.where(chosen, t.astype(day_infected.dtype), day_infected)
            return (stage, day_infected), chosen.sum(dtype=jnp.float32)

        def skip(carry):
            return carry, jnp.float32(0.0)

        (stage, day_infected), n = jax.lax.cond(
            in_window(self.schedule, t), seed, skip, (state.stage, state.day_infected)
        )
        slot = t % EXPOSURE_HISTORY_DAYS
        state = state.replace(
            stage=stage, day_infected=day_infected, daily_exposures=state.daily_exposures.at[slot].add(n),
        )
        return state, own, {"imported_infections": n}


KINDS = (ContactScale, IsolationCompliance, AgeIsolation, Testing, Vaccination, Seeding)


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
        fail(name, "layer", f"must be a layer name, got {layer!r}")
    check_number(name, "scale", scale, low=0)
    return ContactScale(
        schedule=make_schedule(name, schedule, start, end), scale=jnp.float32(scale), layer=layer, name=name
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
    array = check_number(name, "scale", scale, low=0)
    if array.ndim > 1:
        fail(name, "scale", f"must be one value or one per week, got shape {array.shape}")
    check_number(name, "add", add, low=-1, high=1)
    return IsolationCompliance(
        schedule=make_schedule(name, schedule, start, end),
        scale=jnp.asarray(np.atleast_1d(array), jnp.float32),
        add=jnp.float32(add),
        name=name,
    )


def _age_labels(source) -> list[str]:
    """Age labels of a population or a world."""
    return list(source.category_labels("age"))


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
    """Agents of the age bands ``bands`` (labels of ``population``'s, or a world's, ``age``)
    isolate each day with probability at least ``probability``."""
    bands = tuple(bands)
    name = name or f"isolate_{'_'.join(bands)}"
    if not bands:
        fail(name, "bands", "must name at least one age band")
    labels = _age_labels(population)
    unknown = [b for b in bands if b not in labels]
    if unknown:
        fail(name, "bands", f"{unknown} are not age bands of this population; they are {labels}")
    check_number(name, "probability", probability, low=0, high=1)
    mask = np.zeros(len(labels), np.float32)
    for band in bands:
        mask[labels.index(band)] = 1.0
    return AgeIsolation(
        schedule=make_schedule(name, schedule, start, end), in_band=jnp.asarray(mask),
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
    check_number(name, "random_share", random_share, low=0, high=1)
    check_number(name, "symptomatic_share", symptomatic_share, low=0, high=1)
    check_number(name, "sensitivity", sensitivity, low=0, high=1)
    check_number(name, "delay_days", delay_days, low=0, high=365, integer=True)
    check_number(name, "isolation_days", isolation_days, low=1, high=365, integer=True)
    return Testing(
        schedule=make_schedule(name, schedule, start, end),
        random_share=jnp.float32(random_share), symptomatic_share=jnp.float32(symptomatic_share),
        sensitivity=jnp.float32(sensitivity), delay_days=jnp.int32(delay_days),
        isolation_days=jnp.int32(isolation_days), name=name,
    )


def vaccination(
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
    (:func:`jaxsim.models.covid.build_world`); the order within a band is random (``seed``)."""
    priority = tuple(priority)
    if not priority:
        fail(name, "priority", "must name at least one age band")
    labels = _age_labels(world)
    unknown = [b for b in priority if b not in labels]
    if unknown:
        fail(name, "priority", f"{unknown} are not age bands of this population; they are {labels}")
    if len(set(priority)) != len(priority):
        fail(name, "priority", f"repeats a band: {list(priority)}")
    check_number(name, "daily_doses", daily_doses, low=0)
    check_number(name, "efficacy", efficacy, low=0, high=1)
    check_number(name, "protection_delay_days", protection_delay_days, low=0, high=365, integer=True)
    slots, n = world.num_slots, world.num_agents
    age = np.asarray(world.agents["age"])[:n].astype(np.int64)
    rng = np.random.default_rng(seed)
    band_rank = np.full(len(labels), len(priority), np.int64)
    for position, band in enumerate(priority):
        band_rank[labels.index(band)] = position
    key = np.full(slots, len(priority) + 1, np.float64)  # padding slots last of all
    key[:n] = band_rank[age] + rng.random(n)
    order = np.argsort(key, kind="stable").astype(np.int32)
    rank = np.empty(slots, np.int32)
    rank[order] = np.arange(slots, dtype=np.int32)
    num_priority = int(np.sum(band_rank[age] < len(priority)))
    return Vaccination(
        schedule=make_schedule(name, schedule, start, end),
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
    check_number(name, "cases", cases, low=0)
    if day is not None:
        if start is not None or end is not None or schedule is not None:
            fail(name, "day", "give either day=... or a window, not both")
        check_number(name, "day", day, low=0, integer=True)
        start, end = int(day), int(day) + 1
    whole = int(math.floor(float(np.max(np.asarray(cases, np.float64)))))
    capacity = max(1, whole) if capacity is None else capacity
    check_number(name, "capacity", capacity, low=1, integer=True)
    if whole > int(capacity):
        fail(name, "cases", f"({whole}) exceed capacity ({capacity})")
    return Seeding(
        schedule=make_schedule(name, schedule, start, end), cases=jnp.float32(cases),
        capacity=int(capacity), name=name,
    )


__all__ = [
    "AgeIsolation",
    "ContactScale",
    "IsolationCompliance",
    "KINDS",
    "Seeding",
    "Testing",
    "TestingState",
    "Vaccination",
    "WEEKLY_ONSETS",
    "isolate_age_bands",
    "isolation_compliance",
    "scale_contacts",
    "seeding",
    "testing",
    "vaccination",
    "when_cases",
]
