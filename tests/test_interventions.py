"""Interventions inside the COVID model: windows, conditions, each kind's mechanics, exact
baseline reproduction at zero effect, and clear errors for bad values.

Most tests share one compiled program: the same set of intervention kinds (static
structure) with different levels and windows (array leaves).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import engine
from jaxsim import interventions as iv
from jaxsim.kernels.progression import DEAD
from jaxsim.models import covid

from conftest import random_population

DAYS = 28
#: Positions of the testing and vaccination items in :func:`full_set` (their own state
#: is ``state.interventions.own[k]``).
TESTING, VACCINATION = 3, 4
BASE_METRICS = ("susceptible", "exposed", "infected", "recovered", "dead", "new_infections", "new_cases",
                "new_deaths", "isolating", "new_infections_by_age", "isolation_prob")


@pytest.fixture(scope="module")
def setting():
    population = random_population(2500, seed=11)
    world = covid.build_world(population)
    params = covid.default_params(
        world, 4, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.01, initial_infected_share=0.01, transmission_rate=4.0,
    )
    return population, world, params


def full_set(population, world, *, compliance=1.0, add=0.0, contact=1.0, shield=0.0, random_share=0.0,
             symptomatic_share=0.0, sensitivity=0.85, delay=2, isolation_days=10, doses=0.0, efficacy=0.9,
             protection_delay=0, cases=0.0, start=0, end=None, seed_day=3, priority=("65A", "50t64"),
             contact_schedule=None):
    """Every kind once, same static structure whatever the levels, windows and conditions
    (array leaves): one compiled program."""
    window = dict(start=start, end=end)
    contact_window = window if contact_schedule is None else dict(schedule=contact_schedule)
    return iv.combine(
        covid.isolation_compliance(np.full(4, compliance, np.float32), add, **window),
        covid.scale_contacts("community", contact, name="community_scale", **contact_window),
        covid.isolate_age_bands(population, ["65A"], shield, name="shield_65A", **window),
        covid.testing(random_share=random_share, symptomatic_share=symptomatic_share, sensitivity=sensitivity,
                   delay_days=delay, isolation_days=isolation_days, **window),
        covid.vaccination(world, doses, priority=priority, efficacy=efficacy,
                          protection_delay_days=protection_delay, **window),
        covid.seeding(cases, day=seed_day, capacity=20),
    )


@pytest.fixture(scope="module")
def runner(setting):
    """``run(params, seed) -> (final state, metrics as numpy)``, one jitted program per structure."""
    _, world, _ = setting
    model = covid.covid_model()

    @jax.jit
    def simulate(params, key, world):
        state = covid.initial_state(jax.random.fold_in(key, 1), params, world)
        return engine.simulate(model, key, state, params, world, DAYS)

    def run(params, seed=0):
        state, metrics = simulate(params, jax.random.key(seed), world)
        return state, {k: np.asarray(v) for k, v in metrics.items()}

    return run


@pytest.fixture(scope="module")
def baseline(setting, runner):
    return runner(setting[2])[1]


def test_zero_effect_set_reproduces_the_baseline_exactly(setting, runner, baseline):
    """Every kind present at zero effect (multipliers 1, no doses, no tests, no cases):
    the same draws and the same epidemic, bit for bit, as the plain model."""
    population, world, params = setting
    _, metrics = runner(params.replace(interventions=full_set(population, world)))
    for name in BASE_METRICS:
        np.testing.assert_array_equal(metrics[name], baseline[name], err_msg=name)
    assert metrics["intervention_active"].shape == (DAYS, 6)
    assert metrics["tests"].sum() == 0 and metrics["vaccinations"].sum() == 0
    assert metrics["imported_infections"].sum() == 0


def test_intervention_on_days_10_to_20_changes_nothing_before_day_10(setting, runner, baseline):
    population, world, params = setting
    strong = full_set(population, world, compliance=2.0, contact=0.2, shield=0.8, random_share=0.05,
                      symptomatic_share=0.5, doses=40.0, cases=5.0, start=10, end=21, seed_day=12)
    _, metrics = runner(params.replace(interventions=strong))
    for name in BASE_METRICS:
        np.testing.assert_array_equal(metrics[name][:10], baseline[name][:10], err_msg=name)
    active = metrics["intervention_active"]
    assert np.all(active[:10, :5] == 0) and np.all(active[10:21, :5] == 1) and np.all(active[21:, :5] == 0)
    assert np.array_equal(np.flatnonzero(active[:, 5]), [12])  # seeding: its one day
    assert metrics["new_infections"][10:].sum() < baseline["new_infections"][10:].sum()
    assert np.all(metrics["vaccinations"][:10] == 0) and np.all(metrics["vaccinations"][10:21] > 0)
    assert np.all(metrics["vaccinations"][21:] == 0)
    assert np.all(metrics["tests"][:10] == 0) and metrics["tests"][10:21].sum() > 0
    assert metrics["imported_infections"][12] == 5 and metrics["imported_infections"].sum() == 5


def test_vaccination_never_exceeds_the_doses_and_follows_the_priority(setting, runner):
    population, world, params = setting
    daily = 37.9  # whole doses only: 37 a day
    interventions = full_set(population, world, doses=daily)
    state, metrics = runner(params.replace(interventions=interventions))
    given = metrics["vaccinations"]
    assert np.all(given <= 37) and given.max() == 37
    assert np.array_equal(np.cumsum(given), metrics["vaccinated"])
    age = population.attributes["age"]
    day = np.asarray(state.interventions.own[VACCINATION])[: population.size].astype(int)
    vaccinated = day != covid.NEVER
    assert vaccinated.sum() == given.sum()
    in_priority = np.isin(age, [population.code("age", b) for b in ("65A", "50t64")])
    assert not np.any(vaccinated & ~in_priority), "doses went to agents outside the priority bands"
    old, middle = age == population.code("age", "65A"), age == population.code("age", "50t64")
    # 50t64 only once no eligible 65A was left that day: a 65A dosed later was symptomatic
    # (stage I, days 5..9 after exposure) on the day the first 50t64 got a dose.
    assert np.any(vaccinated & middle), "the campaign should reach the second band"
    first_middle = day[vaccinated & middle].min()
    late = vaccinated & old & (day > first_middle)
    since = first_middle - np.asarray(state.day_infected)[: population.size].astype(int)[late]
    assert np.all((since >= 5) & (since < 10)), since
    living_old = old & (np.asarray(state.stage)[: population.size] < DEAD)
    assert vaccinated[living_old].mean() > 0.9
    # The campaign stops when the priority bands are done: never more than they hold.
    assert vaccinated.sum() <= in_priority.sum()


def test_vaccine_with_full_efficacy_protects_from_the_day_of_protection(setting, runner):
    population, world, params = setting
    interventions = full_set(population, world, doses=2000.0, efficacy=1.0, protection_delay=2,
                             priority=("65A", "50t64"))
    state, metrics = runner(params.replace(interventions=interventions))
    day = np.asarray(state.interventions.own[VACCINATION])[: population.size].astype(int)
    infected_day = np.asarray(state.day_infected)[: population.size].astype(int)
    vaccinated = day != covid.NEVER
    assert vaccinated.sum() > 500
    protected_then_infected = vaccinated & (infected_day >= day + 2) & (infected_day != covid.NEVER)
    assert not protected_then_infected.any()


def test_testing_isolates_positives_after_the_delay(setting, runner):
    """Tests on day 0 only, every symptomatic agent tested, sensitivity 1, result after 2
    days, isolation for 4: with no isolation of their own (baseline ~0), exactly the
    positives isolate, on days 2..5, the living ones."""
    population, world, params = setting
    interventions = full_set(population, world, symptomatic_share=1.0, sensitivity=1.0, delay=2,
                             isolation_days=4, start=0, end=1)
    quiet = params.replace(isolation_baseline=jnp.zeros(6, jnp.float32), isolation_response=jnp.zeros(6, jnp.float32),
                           interventions=interventions)
    state, metrics = runner(quiet)
    positives = metrics["positive_tests"][0]
    assert positives > 20 and metrics["tests"][0] == positives  # every symptomatic agent is infected
    assert metrics["tests"][1:].sum() == 0
    isolating = metrics["isolating"]
    assert np.all(isolating[:2] == 0) and np.all(isolating[6:] == 0)
    deaths = np.cumsum(metrics["new_deaths"])
    assert np.all(isolating[2:6] <= positives) and np.all(isolating[2:6] >= positives - deaths[2:6])
    testing = state.interventions.own[TESTING]
    until = np.asarray(testing.isolate_until)[: population.size]
    assert np.sum(until == 6) == positives and np.all(np.asarray(testing.test_result_day) == covid.NEVER)


def test_seeding_imports_exactly_the_cases_among_susceptibles(setting, runner):
    population, world, params = setting
    interventions = full_set(population, world, cases=17.0, seed_day=5)
    quiet = params.replace(transmission_rate=jnp.zeros(4, jnp.float32), initial_exposed_share=jnp.float32(0.0),
                           initial_infected_share=jnp.float32(0.0), interventions=interventions)
    state, metrics = runner(quiet)
    assert metrics["imported_infections"][5] == 17 and metrics["imported_infections"].sum() == 17
    assert metrics["exposed"][4] == 0 and metrics["exposed"][5] == 17
    day = np.asarray(state.day_infected)[: population.size]
    assert np.sum(day == 5) == 17 and np.sum(day != covid.NEVER) == 17
    assert metrics["new_infections"].sum() == 0  # no transmission: R(t) = 0


def test_contact_scale_zero_on_the_only_network_stops_transmission():
    """A world with one contact layer; its scale 1 (no change, as the plain model: see the
    zero-effect test) against 0 from day 5 on."""
    population = random_population(2000, seed=5)
    world = covid.build_world(population, layers=["community"])
    params = covid.default_params(
        world, 3, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.02, initial_infected_share=0.02, transmission_rate=6.0,
    )
    model = covid.covid_model()

    @jax.jit
    def run(p, world):
        state = covid.initial_state(jax.random.key(1), p, world)
        return engine.simulate(model, jax.random.key(2), state, p, world, 21)[1]

    def with_scale(scale):
        return params.replace(interventions=iv.combine(covid.scale_contacts("community", scale, start=5)))

    open_all = jax.tree.map(np.asarray, run(with_scale(1.0), world))
    assert open_all["new_infections"][5:].sum() > 0
    closed = jax.tree.map(np.asarray, run(with_scale(0.0), world))
    np.testing.assert_array_equal(closed["new_infections"][:5], open_all["new_infections"][:5])
    assert closed["new_infections"][5:].sum() == 0
    assert closed["exposed"][-1] == 0 and closed["infected"][-1] < closed["infected"][5]


def test_case_condition_switches_on_above_and_off_below(setting, runner):
    """A contact cut that acts while the onsets of the last 7 days exceed 40, until they
    fall below 15: its daily state equals the hysteresis recomputed from the run's own
    onsets."""
    population, world, params = setting
    condition = covid.when_cases(on_above=40.0, off_below=15.0)
    interventions = full_set(population, world, contact=0.3, contact_schedule=condition)
    p = params.replace(transmission_rate=jnp.full(4, 6.0, jnp.float32), interventions=interventions)
    _, metrics = runner(p)
    onsets = np.concatenate([np.zeros(7), metrics["new_cases"]])  # day d at index d + 7 (no prior)
    on, expected = False, []
    for t in range(DAYS):
        week = onsets[t : t + 7].sum()
        on = week >= 15.0 if on else week > 40.0
        expected.append(on)
    active = metrics["intervention_active"][:, 1].astype(bool)
    np.testing.assert_array_equal(active, expected)
    assert active.any() and not active[0], "the condition should switch on during the run"


def test_weekly_compliance_schedule_and_age_band_isolation(setting):
    """Isolation from outside (policy 'inputs', 0.1 a day): a compliance multiplier of 3
    in week 2 only triples isolation in week 2; shielding 65A with probability 1 isolates
    every living 65A agent."""
    population, _, params = setting
    world = covid.build_world(population, isolation_prob=np.full((4, 6), 0.1, np.float32))
    model = covid.covid_model("inputs")

    @jax.jit
    def simulate(p, world):
        state = covid.initial_state(jax.random.key(1), p, world)
        return engine.simulate(model, jax.random.key(0), state, p, world, 21)

    def run(scale, shield, world):
        return simulate(params.replace(interventions=iv.combine(
            covid.isolation_compliance(scale), covid.isolate_age_bands(population, ["65A"], shield))), world)

    _, plain = run([1.0, 1.0, 1.0], 0.0, world)
    _, scheduled = run([1.0, 1.0, 3.0], 0.0, world)
    np.testing.assert_array_equal(scheduled["isolating"][:14], plain["isolating"][:14])
    ratio = scheduled["isolating"][14:].mean() / plain["isolating"][14:].mean()
    assert 2.7 < ratio < 3.3
    shielded, _ = run([1.0, 1.0, 1.0], 1.0, world)
    old = population.attributes["age"] == population.code("age", "65A")
    alive = np.asarray(shielded.stage)[: population.size] < DEAD
    assert np.all(np.asarray(shielded.isolating)[: population.size][old & alive] == 1)


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda pop, w: covid.scale_contacts("community", 0.5, start=10, end=10), "'scale_community': window is empty"),
        (lambda pop, w: covid.scale_contacts("community", 0.5, start=-1), "start day must be >= 0"),
        (lambda pop, w: covid.scale_contacts("community", -0.5), "'scale_community': scale must be >= 0"),
        (lambda pop, w: covid.isolation_compliance(1.2, start=3.5), "start day must be a whole number"),
        (lambda pop, w: covid.isolation_compliance(float("nan")), "'isolation_compliance': scale must be a finite"),
        (lambda pop, w: covid.isolation_compliance(1.0, add=2.0), "add must be <= 1"),
        (lambda pop, w: covid.isolate_age_bands(pop, ["70A"], 0.5), "'isolate_70A': bands ['70A'] are not age bands"),
        (lambda pop, w: covid.isolate_age_bands(pop, ["65A"], 1.5), "probability must be <= 1"),
        (lambda pop, w: covid.testing(sensitivity=1.2), "'testing': sensitivity must be <= 1"),
        (lambda pop, w: covid.testing(delay_days=1.5), "delay_days must be a whole number"),
        (lambda pop, w: covid.testing(isolation_days=0), "isolation_days must be >= 1"),
        (lambda pop, w: covid.vaccination(w, -3, priority=["65A"]), "'vaccination': daily_doses must be >= 0"),
        (lambda pop, w: covid.vaccination(w, 10, priority=["65A"], efficacy=1.1), "efficacy must be <= 1"),
        (lambda pop, w: covid.vaccination(w, 10, priority=[]), "priority must name at least one"),
        (lambda pop, w: covid.seeding(30, day=2, capacity=10), "'seeding': cases (30) exceed capacity (10)"),
        (lambda pop, w: covid.scale_contacts("community", 0.0, schedule=covid.when_cases(5.0, 10.0)),
         "off_below (10.0) must be <= on_above (5.0)"),
        (lambda pop, w: iv.combine(covid.testing(), covid.testing(name="more_testing")), "at most one Testing"),
        (lambda pop, w: iv.combine(covid.isolation_compliance(1.1), covid.isolation_compliance(1.2)),
         "names must be unique; repeated: ['isolation_compliance']"),
    ],
)
def test_invalid_windows_and_values_name_the_intervention_and_field(setting, build, fragment):
    population, world, _ = setting
    with pytest.raises(iv.InterventionError) as err:
        build(population, world)
    assert fragment in str(err.value)


def test_run_refuses_an_unknown_layer_and_a_state_without_the_interventions(setting):
    population, world, params = setting
    model = covid.covid_model()
    bad = params.replace(interventions=iv.combine(covid.scale_contacts("school", 0.0)))
    state = covid.initial_state(jax.random.key(0), bad, world)
    with pytest.raises(iv.InterventionError, match="'school' is not a contact layer of this world"):
        engine.run(model, jax.random.key(0), state, bad, world, 3, progress=False)
    good = params.replace(interventions=iv.combine(covid.scale_contacts("community", 0.5)))
    plain_state = covid.initial_state(jax.random.key(0), params, world)
    with pytest.raises(ValueError, match="the state was not made for these interventions"):
        engine.run(model, jax.random.key(0), plain_state, good, world, 3, progress=False)


def test_describe_reports_units_and_json_friendly_values(setting):
    population, world, _ = setting
    described = full_set(population, world, start=14, end=28).describe()
    kinds = [d["kind"] for d in described]
    assert kinds == ["IsolationCompliance", "ContactScale", "AgeIsolation", "Testing", "Vaccination", "Seeding"]
    assert described[0]["when"] == {"start_day": 14, "end_day": 28, "condition": None}
    assert described[4]["priority_age_bands"] == ["65A", "50t64"]
    cond = iv.describe(covid.scale_contacts("community", 0.5, schedule=covid.when_cases(40.0, 10.0)))
    # The condition's fields were renamed by the move (MIGRATION_NOTES: the signal is named,
    # its unit, onsets per 7 days, is the signal's): same values, same exact comparison.
    assert cond["when"]["condition"] == {"signal": "weekly_onsets", "on_above": 40.0, "off_below": 10.0}
    assert cond["when"]["end_day"] is None


def test_a_single_intervention_must_be_wrapped_in_a_set(setting):
    population, world, params = setting
    bare = params.replace(interventions=covid.scale_contacts("community", 0.5))
    with pytest.raises(iv.InterventionError, match=r"combine\(...\), also for a single intervention\), got ContactScale"):
        covid.initial_state(jax.random.key(0), bare, world)
    plain_state = covid.initial_state(jax.random.key(0), params, world)
    with pytest.raises(iv.InterventionError, match="must be an Interventions set"):
        engine.run(covid.covid_model(), jax.random.key(0), plain_state, bare, world, 3, progress=False)
