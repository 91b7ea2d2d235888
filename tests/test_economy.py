"""The economy coupled with the COVID model: who works, money conserved and accounted for,
unemployment in [0, 1], the calendar, the stimulus under common random numbers, the
expected flows against the agents, the labour-market calibration (gradient against finite
differences, recovery, held-out scores), the LLM willingness layer, and bad input."""

import dataclasses
import datetime as dt

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import coupling, engine
from jaxsim.coupling import Parts
from jaxsim.engine import Model
from jaxsim.kernels import labour as labour_kernels
from jaxsim.models import covid, labour
from jaxsim.models.labour import calibration as ec
from jaxsim.nyc import boroughs
from jaxsim.population import EdgeList, Population, PopulationError

START = dt.date(2020, 8, 1)
MONTHS = 3
DAYS = labour.days_in_months(START, MONTHS)  # Aug, Sep, Oct 2020: 92 days
AGENTS = 3000
CLAIMS = np.tile(np.asarray([[0.19, 0.16, 0.11, 0.17, 0.12]], np.float32), (MONTHS, 1))
INITIAL_UNEMPLOYMENT = np.asarray([0.2, 0.15, 0.12, 0.15, 0.12], np.float32)
PRIOR_CASE_SIGNAL = np.full(5, 1.0, np.float32)
#: Readable borough names, in borough-code order (for prompts).
BOROUGH_NAMES = tuple(boroughs.BOROUGH_NAMES[b] for b in boroughs.BOROUGHS)


def borough_of_labels(labels):
    """An archetype's borough code from its ``county`` (or ``area``: an NTA code) label,
    ``None`` when its labels name no borough (the layer option ``region_of``)."""
    if "county" in labels:
        borough = boroughs.COUNTY_TO_BOROUGH.get(" ".join(str(labels["county"]).strip().lower().replace("_", " ").split()))
    elif "area" in labels:
        borough = boroughs.NTA_PREFIX_TO_BOROUGH.get(str(labels["area"]).strip()[:2].upper())
    else:
        return None
    return None if borough is None else boroughs.BOROUGHS.index(borough)


def _economy_world(world, population, attributes, **kw):
    """The labour model's arrays added to ``world`` for the five boroughs."""
    kw = {"start": START, "claims_rate": CLAIMS, "initial_unemployment": INITIAL_UNEMPLOYMENT,
          "prior_case_signal": PRIOR_CASE_SIGNAL} | kw
    return labour.build_world(world, population, attributes, regions=boroughs.BOROUGHS, **kw)


# ----------------------------------------------------------------------------- fixtures
def _violations(state, params, world):
    """End-of-day checks: work done by agents who may not work."""
    worked = state.economy.worked_today
    stage = state.covid.stage
    return {
        "work_while_isolating": jnp.sum(worked * state.covid.isolating),
        "work_while_sick": jnp.sum(worked * (stage == covid.INFECTED)),
        "work_while_dead_or_padding": jnp.sum(worked * (stage >= covid.DEAD)),
        "work_outside_labour_force": jnp.sum(worked * (1.0 - world.agents["labour_force"])),
    }


@pytest.fixture(scope="module")
def setup():
    population = boroughs.five_borough_population(AGENTS, seed=3, cached=False)
    world = covid.build_world(population)
    covid_params = covid.default_params(
        world, 14, contact_normaliser=covid.default_contact_normaliser(world), transmission_rate=4.0,
        initial_exposed_share=0.03, initial_infected_share=0.03,
        mortality={a: 0.3 for a in population.category_labels("age")},  # deaths within the run
    )
    attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=3)
    world = _economy_world(world, population, attributes)
    baseline_stimulus = labour.stimulus_payment(0.0, [1], num_months=MONTHS)
    params = Parts(covid=covid_params, economy=labour.default_params(world, stimulus=baseline_stimulus))
    model = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model()},
                             extra=[Model(name="checks", observe=_violations)], name="checked")
    return population, attributes, world, params, model


def _run(setup, params=None, seed=0):
    population, attributes, world, base_params, model = setup
    params = base_params if params is None else params
    state = model.init(jax.random.key(seed), params, world)
    initial = jax.tree.map(jnp.copy, state)
    result = engine.run(model, jax.random.key(100 + seed), state, params, world, DAYS, chunk_days=DAYS)
    return result, initial


@pytest.fixture(scope="module")
def baseline(setup):
    return _run(setup)


# ------------------------------------------------------------------------------ the run
def test_no_agent_works_while_sick_dead_isolating_or_outside_the_labour_force(baseline):
    metrics = baseline[0].metrics
    for name in ("work_while_isolating", "work_while_sick", "work_while_dead_or_padding", "work_outside_labour_force"):
        assert metrics[name].sum() == 0, name
    # The checks meant something: agents were sick, dead and isolating, and others worked.
    assert metrics["infected"].max() > 20 and metrics["dead"][-1] > 5 and metrics["isolating"].min() > 50
    assert metrics["working"].max() > 500


def test_calendar_month_ends_weekends_and_month_index(baseline):
    metrics = baseline[0].metrics
    rows = labour.monthly_rows(metrics)
    np.testing.assert_array_equal(rows, [30, 60, 91])  # 31 Aug, 30 Sep, 31 Oct 2020
    np.testing.assert_array_equal(metrics["month_index"][rows], [0, 1, 2])
    weekend = np.asarray([(START + dt.timedelta(days=d)).weekday() >= 5 for d in range(DAYS)])
    assert np.all(metrics["working"][weekend] == 0) and np.all(metrics["working"][~weekend] > 0)
    off = np.ones(DAYS, bool)
    off[rows] = False
    assert np.all(metrics["city_tax"][off] == 0) and np.all(metrics["unemployment_rate"][off] == 0)


def test_case_signal_counts_the_months_onsets(setup, baseline):
    world, params = setup[2], setup[3]
    metrics = baseline[0].metrics
    rows = labour.monthly_rows(metrics)
    residents = np.asarray(world.inputs["region_residents"])
    ascertainment = float(params.economy.ascertainment)
    onsets = (metrics["case_signal"][rows] * residents / 1000.0 / ascertainment).sum(axis=1)
    first = np.r_[0, rows[:-1] + 1]
    daily = np.asarray([metrics["new_cases"][a: b + 1].sum() for a, b in zip(first, rows)])
    assert daily.sum() > 50
    np.testing.assert_allclose(onsets, daily, rtol=1e-4)


def test_tax_collected_equals_tax_redistributed_every_month(baseline):
    metrics = baseline[0].metrics
    rows = labour.monthly_rows(metrics)
    tax, transfers = metrics["city_tax"][rows], metrics["city_transfers"][rows]
    assert np.all(tax > 0)
    np.testing.assert_allclose(transfers, tax, rtol=1e-5)
    np.testing.assert_allclose(metrics["transfers"][rows].sum(axis=1), tax, rtol=1e-5)


def test_savings_change_equals_income_minus_consumption_in_every_borough(setup, baseline):
    result, initial = baseline
    world = setup[2]
    metrics = result.metrics
    rows = labour.monthly_rows(metrics)
    start = np.asarray(jax.ops.segment_sum(initial.economy.savings, world.agents["region"].astype(jnp.int32), 6))[:5]
    savings = np.vstack([start, metrics["savings"][rows]])
    income = sum(metrics[k][rows] for k in ("earnings", "transfers", "ui_benefits", "pensions", "stimulus_paid")) - metrics["tax"][rows]
    np.testing.assert_allclose(np.diff(savings, axis=0), income - metrics["consumption"][rows], rtol=1e-4, atol=50.0)
    assert np.all(metrics["consumption"][rows] > 0) and np.all(metrics["earnings"][rows] > 0)


def test_unemployment_stays_in_unit_interval_with_extreme_labour_markets(setup, baseline):
    params = setup[3]
    rows = labour.monthly_rows(baseline[0].metrics)
    for separation, hiring, sensitivity, expected_last in ((60.0, -60.0, 50.0, 1.0), (-60.0, 60.0, 0.0, None)):
        extreme = params.replace(economy=params.economy.replace(
            separation_logit=jnp.full(5, separation), hiring_logit=jnp.full(5, hiring),
            separation_case_sensitivity=jnp.float32(sensitivity), hiring_claims_sensitivity=jnp.float32(-sensitivity),
        ))
        rate = _run(setup, extreme)[0].metrics["unemployment_rate"][rows]
        assert np.all(np.isfinite(rate)) and np.all((rate >= 0) & (rate <= 1))
        if expected_last is not None:
            np.testing.assert_allclose(rate[1:], 1.0)  # everyone laid off, nobody hired
        else:
            # Everyone who is willing finds a job and keeps it; only unwilling quitters stay out.
            assert np.all(rate[2] < 0.1)
    rate = baseline[0].metrics["unemployment_rate"][rows]
    assert np.all((rate > 0) & (rate < 0.5))


def test_epidemic_is_the_plain_covid_model_draw_for_draw(setup, baseline):
    _, _, world, params, _ = setup
    result, initial = baseline
    plain = engine.run(covid.covid_model(), jax.random.key(100), jax.tree.map(jnp.copy, initial.covid), params.covid, world, DAYS, chunk_days=DAYS)
    for name in ("new_infections", "new_cases", "new_deaths", "isolating", "susceptible", "dead"):
        np.testing.assert_array_equal(plain.metrics[name], result.metrics[name], err_msg=name)


def test_labour_model_runs_alone_without_an_epidemic(setup):
    """The labour model with no epidemic composed: every real agent is alive and available
    and nobody has symptoms (the bridges' defaults); money is still conserved."""
    from jaxsim.world import make_world

    population, attributes = setup[0], setup[1]
    world = _economy_world(make_world(population, attributes=("age",)), population, attributes)
    assert "stage" not in world.agents and "initial_stage" not in world.agents  # no epidemic in this world
    params = labour.default_params(world, stimulus=labour.stimulus_payment(500.0, [1], num_months=MONTHS))
    model = labour.labour_model()
    state = model.init(jax.random.key(0), params, world)
    assert isinstance(state, labour.LabourState)
    result = engine.run(model, jax.random.key(1), state, params, world, DAYS, chunk_days=DAYS)
    metrics = result.metrics
    assert result.days == DAYS and "new_cases" not in metrics and "infected" not in metrics
    rows = labour.monthly_rows(metrics)
    np.testing.assert_array_equal(rows, [30, 60, 91])
    # Nobody is sick: no onsets, so the case signal stays 0; nobody dies: the labour force stays whole.
    np.testing.assert_array_equal(metrics["case_signal"], 0.0)
    force = np.bincount(attributes.region[attributes.labour_force], minlength=5)
    np.testing.assert_array_equal(metrics["labour_force"][rows], np.tile(force, (MONTHS, 1)))
    assert metrics["working"].max() > 500
    # Tax collected == tax redistributed, every month.
    tax, transfers = metrics["city_tax"][rows], metrics["city_transfers"][rows]
    assert np.all(tax > 0)
    np.testing.assert_allclose(transfers, tax, rtol=1e-5)
    np.testing.assert_allclose(metrics["transfers"][rows].sum(axis=1), tax, rtol=1e-5)
    # Income == consumption + change in savings, in every borough (stimulus included).
    start = np.asarray(jax.ops.segment_sum(state.savings, world.agents["region"].astype(jnp.int32), 6))[:5]
    savings = np.vstack([start, metrics["savings"][rows]])
    income = sum(metrics[k][rows] for k in ("earnings", "transfers", "ui_benefits", "pensions", "stimulus_paid")) - metrics["tax"][rows]
    np.testing.assert_allclose(np.diff(savings, axis=0), income - metrics["consumption"][rows], rtol=1e-4, atol=50.0)
    assert np.all(metrics["consumption"][rows] > 0) and np.all(metrics["earnings"][rows] > 0)
    assert metrics["stimulus_paid"][rows[1]].sum() > 0
    # Unemployment stays a fraction.
    rate = metrics["unemployment_rate"][rows]
    assert np.all(np.isfinite(rate)) and np.all((rate >= 0) & (rate <= 1))
    assert np.all((rate > 0) & (rate < 0.5))


def test_stimulus_under_common_random_numbers(setup, baseline):
    population, attributes, world, params, _ = setup
    rows = labour.monthly_rows(baseline[0].metrics)
    paid = params.replace(economy=params.economy.replace(
        stimulus=params.economy.stimulus.replace(amount=jnp.float32(1000.0))
    ))
    with_stimulus = _run(setup, paid)[0].metrics
    without = baseline[0].metrics
    # Nothing differs before the payment, and the epidemic never does (no feedback).
    for name in ("consumption", "unemployment_rate", "savings", "working"):
        np.testing.assert_array_equal(with_stimulus[name][: rows[0] + 1], without[name][: rows[0] + 1])
    np.testing.assert_array_equal(with_stimulus["new_infections"], without["new_infections"])
    total = with_stimulus["stimulus_paid"][rows].sum(axis=1)
    assert total[0] == 0 and total[2] == 0 and total[1] > 0
    recipients = total[1] / 1000.0
    adults = float(np.sum(population.attributes["age"] != population.code("age", "U19")))
    dead = float(with_stimulus["dead"][rows[1]])  # all ages, by the day of payment
    assert recipients == round(recipients) and adults - dead <= recipients < adults
    assert with_stimulus["city_consumption"][rows[1]] > without["city_consumption"][rows[1]] + 0.5 * total[1]
    # Only the unemployed: fewer recipients, all of them unemployed.
    only = paid.replace(economy=paid.economy.replace(
        stimulus=paid.economy.stimulus.replace(unemployed_only=jnp.float32(1.0))
    ))
    metrics = _run(setup, only)[0].metrics
    assert 0 < metrics["stimulus_paid"][rows[1]].sum() / 1000.0 <= metrics["unemployed"][rows[1]].sum()


def test_agents_average_to_the_expected_flows(setup):
    """The calibration's expected flows are the mean of the agents' unemployment rate."""
    simulated, expected = [], []
    rows = None
    for seed in range(5):
        metrics = _run(setup, seed=seed)[0].metrics
        rows = labour.monthly_rows(metrics)
        force = metrics["labour_force"][rows]
        rate = metrics["unemployment_rate"][rows]
        problem = ec.LabourCalibrationProblem(
            params=setup[3].economy, observed=rate, willingness=metrics["willingness"][rows],
            case_signal=metrics["case_signal"][rows], claims_rate=metrics["claims_rate"][rows],
            initial_unemployment=rate[0], train_months=MONTHS,
        )
        weights = force / force.sum(axis=1, keepdims=True)
        simulated.append((rate * weights).sum(axis=1))
        expected.append((np.asarray(ec.expected_unemployment(problem.params, problem)) * weights).sum(axis=1))
    simulated, expected = np.mean(simulated, axis=0), np.mean(expected, axis=0)
    assert abs(simulated[-1] - simulated[0]) > 0.005  # the rate moved
    np.testing.assert_allclose(simulated, expected, atol=0.008)


# ------------------------------------------------------------------------ calibration
def _problem(world, months=10, train=7, **params_kw):
    rng = np.random.default_rng(5)
    truth = labour.default_params(
        world, separation_logit=[-3.6, -3.9, -4.2, -3.8, -4.0], hiring_logit=[-1.5, -1.2, -0.9, -1.1, -1.0],
        hiring_claims_sensitivity=-0.08,
    )
    inputs = dict(
        willingness=rng.uniform(0.85, 0.97, (months, 5)), case_signal=rng.uniform(0, 8, (months, 5)),
        claims_rate=rng.uniform(0.03, 0.2, (months, 5)), initial_unemployment=np.full(5, 0.16),
    )
    scratch = ec.LabourCalibrationProblem(params=truth, observed=np.full((months, 5), 0.1), train_months=train, **inputs)
    observed = np.asarray(ec.expected_unemployment(truth, scratch))
    start = labour.default_params(world, **params_kw)
    return ec.LabourCalibrationProblem(params=start, observed=observed, train_months=train, **inputs), truth


def test_calibration_gradient_matches_finite_differences(setup):
    problem, _ = _problem(setup[2])
    names = ("separation_logit", "hiring_logit", "separation_case_sensitivity", "hiring_claims_sensitivity",
             "quit_if_unwilling")
    loss = jax.jit(ec.loss_of_unconstrained(problem, names))
    z = ec.unconstrained(problem.params, names)
    grad = jax.grad(loss)(z)
    eps = 1e-2
    for name, index in (("separation_logit", 0), ("hiring_logit", 2), ("separation_case_sensitivity", None),
                        ("hiring_claims_sensitivity", None), ("quit_if_unwilling", None)):
        def shifted(delta):
            value = z[name] + delta if index is None else z[name].at[index].add(delta)
            return float(loss(z | {name: value}))

        numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        analytic = float(grad[name] if index is None else grad[name][index])
        assert abs(numeric) > 1e-3, name
        assert analytic == pytest.approx(numeric, rel=0.02, abs=1e-3), name


def test_calibration_recovers_the_labour_market_and_scores_held_out_months(setup):
    problem, truth = _problem(setup[2])
    fit = ec.fit_labour_market(problem, ("separation_logit", "hiring_logit", "hiring_claims_sensitivity"), steps=1500)
    assert fit.stopped == "completed" and fit.loss_curve[-1] < 1e-4 * fit.loss_curve[0]
    for name in ("separation_logit", "hiring_logit", "hiring_claims_sensitivity"):
        np.testing.assert_allclose(getattr(fit.params, name), getattr(truth, name), atol=0.02, err_msg=name)
    predicted = np.asarray(ec.expected_unemployment(fit.params, problem))
    scores = ec.evaluate(predicted, problem.observed, problem.train_months)
    assert scores["test"]["mae"] < 0.02 and scores["test"]["points"] == 15  # percentage points
    assert scores["test"]["mae"] < scores["persistence_test"]["mae"]
    assert set(fit.fitted_values()) == {"separation_logit", "hiring_logit", "hiring_claims_sensitivity"}


def _alignment_problem(world, scale, offset, start_scale=1.0, start_offset=0.0, answers=(0.1, 0.6)):
    """A problem whose observed rates come from willingness answers on a scale of their own
    (uniform in ``answers``), mapped by the alignment ``scale``, ``offset``."""
    rng = np.random.default_rng(11)
    months, train = 10, 8
    market = dict(separation_logit=[-3.6, -3.9, -4.2, -3.8, -4.0], hiring_logit=[-1.5, -1.2, -0.9, -1.1, -1.0],
                  hiring_claims_sensitivity=-0.08, quit_if_unwilling=0.3)
    truth = labour.default_params(world, **market, willingness_alignment_scale=scale,
                                  willingness_alignment_offset=offset)
    inputs = dict(
        willingness=rng.uniform(*answers, (months, 5)), case_signal=rng.uniform(0, 8, (months, 5)),
        claims_rate=rng.uniform(0.03, 0.2, (months, 5)), initial_unemployment=np.full(5, 0.16),
    )
    scratch = ec.LabourCalibrationProblem(params=truth, observed=np.full((months, 5), 0.1), train_months=train, **inputs)
    observed = np.asarray(ec.expected_unemployment(truth, scratch))
    start = labour.default_params(world, **market, willingness_alignment_scale=start_scale,
                                  willingness_alignment_offset=start_offset)
    return ec.LabourCalibrationProblem(params=start, observed=observed, train_months=train, **inputs), truth


def _assert_gradient_matches_differences(loss, z, names, tolerance):
    """The autodiff gradient of ``loss`` at ``z`` (unconstrained scalars) against central
    differences of step 0.01: non-zero, within 2% (or ``tolerance``)."""
    grad = jax.grad(loss)(z)
    for name in names:
        eps = 1e-2
        numeric = (float(loss(z | {name: z[name] + eps})) - float(loss(z | {name: z[name] - eps}))) / (2 * eps)
        assert abs(numeric) > 1e-3, name
        assert float(grad[name]) == pytest.approx(numeric, rel=0.02, abs=tolerance), name


def test_willingness_alignment_is_fitted_with_the_market(setup):
    """Answers on the wrong scale (an LLM's) are mapped onto the market: the alignment
    ``sigmoid(a logit(w) + b)`` is recovered, its gradient matches finite differences, and
    with it fitted the held-out months are forecast; without it the answers cannot fit."""
    problem, truth = _alignment_problem(setup[2], scale=0.5, offset=1.6)
    names = ec.WILLINGNESS_ALIGNMENT
    assert set(names) <= set(ec.LABOUR_FITTABLE)
    loss = jax.jit(ec.loss_of_unconstrained(problem, names))
    _assert_gradient_matches_differences(loss, ec.unconstrained(problem.params, names), names, tolerance=1e-3)
    fit = ec.fit_labour_market(problem, names, steps=1500)
    assert fit.stopped == "completed" and fit.loss_curve[-1] < 1e-4 * fit.loss_curve[0]
    assert float(fit.params.willingness_alignment_scale) == pytest.approx(0.5, abs=0.02)
    assert float(fit.params.willingness_alignment_offset) == pytest.approx(1.6, abs=0.04)
    aligned = ec.evaluate(np.asarray(ec.expected_unemployment(fit.params, problem)), problem.observed, 8)
    assert not set(ec.DEFAULT_FIT) & set(names)  # the default fit is the market alone
    market_only = ec.fit_labour_market(problem, ec.DEFAULT_FIT, steps=1500)
    unaligned = ec.evaluate(np.asarray(ec.expected_unemployment(market_only.params, problem)), problem.observed, 8)
    assert aligned["test"]["mae"] < 0.02 < unaligned["train"]["mae"]


def test_willingness_alignment_keeps_its_gradient_near_one(setup):
    """The willingness the market sees is about 0.9; a clipped linear alignment saturated
    there (at a = 1, b = 1.5 every cell is clipped: no gradient, fitted values meaningless).
    The log-odds alignment has gradients that match finite differences there and at the
    start, and a fit from (1, 0) recovers a map that pushes answers of 0.85-0.97 further
    toward 1, the aligned willingness staying below 1."""
    problem, truth = _alignment_problem(setup[2], scale=1.3, offset=0.7, answers=(0.85, 0.97))
    names = ec.WILLINGNESS_ALIGNMENT
    loss = jax.jit(ec.loss_of_unconstrained(problem, names))
    saturating = problem.params.replace(willingness_alignment_offset=jnp.float32(1.5))
    for params in (problem.params, saturating):
        _assert_gradient_matches_differences(loss, ec.unconstrained(params, names), names, tolerance=1e-4)
    fit = ec.fit_labour_market(problem, names, steps=2000)
    assert fit.stopped == "completed" and fit.loss_curve[-1] < 1e-5 * fit.loss_curve[0]
    assert float(fit.params.willingness_alignment_scale) == pytest.approx(1.3, abs=0.05)
    assert float(fit.params.willingness_alignment_offset) == pytest.approx(0.7, abs=0.1)
    aligned = np.asarray(labour_kernels.aligned_willingness(problem.willingness, fit.params.willingness_alignment_scale,
                                                            fit.params.willingness_alignment_offset))
    assert 0.9 < aligned.min() and aligned.max() < 0.999


def _sigmoid_map(p, a, b):
    """The alignment in float64: ``sigmoid(a logit(clip(p, 0.01, 0.99)) + b)``."""
    q = np.clip(np.asarray(p, np.float64), 0.01, 0.99)
    return 1 / (1 + np.exp(-(a * np.log(q / (1 - q)) + b)))


def test_aligned_willingness_kernel():
    """``sigmoid(a logit(p) + b)`` with ``p`` read at a resolution of 0.01: (1, 0) returns
    the input bit for bit (ends included, jitted, and under vmap over batched parameters),
    other values match the formula (an answer of 1.0 counts as 0.99), and the derivatives
    in ``a`` and ``b`` match finite differences, at (1, 0) too."""
    p = jnp.asarray(np.concatenate([[0.0, 1e-7, 0.005, 0.5, 0.995, 1 - 1e-7, 1.0],
                                    np.random.default_rng(3).uniform(0, 1, 20_000)]), jnp.float32)
    aligned = jax.jit(labour_kernels.aligned_willingness)
    np.testing.assert_array_equal(np.asarray(aligned(p, 1.0, 0.0)), np.asarray(p))
    batched = jax.jit(jax.vmap(lambda a, b: labour_kernels.aligned_willingness(p, a, b)))(
        jnp.asarray([1.0, 0.5, 1.0]), jnp.asarray([0.0, 0.3, 0.0]))
    np.testing.assert_array_equal(np.asarray(batched[0]), np.asarray(p))
    np.testing.assert_array_equal(np.asarray(batched[2]), np.asarray(p))
    np.testing.assert_allclose(np.asarray(batched[1], np.float64), _sigmoid_map(p, 0.5, 0.3), atol=2e-6)
    for a, b in ((0.5, 1.0), (2.0, -0.7), (0.0, 0.3), (1.0001, 0.0)):
        got = np.asarray(aligned(p, a, b), np.float64)
        np.testing.assert_allclose(got, _sigmoid_map(p, a, b), atol=2e-6, err_msg=f"{a}, {b}")
        assert got.min() > 0 and got.max() < 1
    for prob, a, b in ((0.97, 1.0, 0.0), (0.97, 1.3, 0.7), (0.3, 0.5, 1.6), (1.0, 1.2, 0.3), (0.0, 0.8, -0.2)):
        grad = jax.grad(lambda a, b: labour_kernels.aligned_willingness(jnp.float32(prob), a, b), argnums=(0, 1))(
            jnp.float32(a), jnp.float32(b))
        eps = 1e-3
        for k, (da, db) in enumerate(((eps, 0.0), (0.0, eps))):
            numeric = (_sigmoid_map(prob, a + da, b + db) - _sigmoid_map(prob, a - da, b - db)) / (2 * eps)
            assert float(grad[k]) == pytest.approx(float(numeric), rel=1e-2, abs=1e-6), (prob, a, b, k)
    slope = jax.grad(lambda q: labour_kernels.aligned_willingness(q, 1.0, 0.0))(jnp.float32(0.4))
    assert float(slope) == pytest.approx(1.0, rel=1e-5)  # d/dp of the map at (1, 0) inside the resolution


def _grouped_problem(world, mismatch=0.0):
    """A problem whose willingness comes in 3 groups with different shares per region."""
    rng = np.random.default_rng(5)
    months, num_groups = 8, 3
    groups = rng.uniform(0.2, 0.95, (months, num_groups)).astype(np.float32)
    share = rng.dirichlet(np.ones(num_groups), size=5).astype(np.float32)
    params = labour.default_params(world)
    return ec.LabourCalibrationProblem(
        params=params, observed=np.full((months, 5), 0.1), willingness=groups @ share.T + mismatch,
        case_signal=rng.uniform(0, 8, (months, 5)), claims_rate=rng.uniform(0.03, 0.2, (months, 5)),
        initial_unemployment=np.full(5, 0.12), train_months=6, willingness_groups=groups, group_share=share,
    )


def test_grouped_willingness_is_aligned_per_group_then_averaged(setup):
    """With each group's answers and the regions' shares the fit aligns every answer, then
    averages with the shares (what the agent-based model does); at (1, 0) it equals the fit
    on the regional means; the regional-mean shortcut differs once the map bends."""
    problem = _grouped_problem(setup[2])
    plain = dataclasses.replace(problem, willingness_groups=None, group_share=None)
    np.testing.assert_allclose(ec.expected_unemployment(problem.params, problem),
                               ec.expected_unemployment(problem.params, plain), atol=1e-6)
    bent = problem.params.replace(willingness_alignment_scale=jnp.float32(0.4),
                                  willingness_alignment_offset=jnp.float32(1.2))
    month = 3
    want = problem.group_share.astype(np.float64) @ _sigmoid_map(problem.willingness_groups[month], 0.4, 1.2)
    got = ec.regional_willingness(bent, jnp.asarray(problem.willingness_groups[month]), jnp.asarray(problem.group_share))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    shortcut = ec.regional_willingness(bent, jnp.asarray(problem.willingness[month]))
    assert np.max(np.abs(np.asarray(shortcut) - want)) > 1e-3
    exact, approximate = ec.expected_unemployment(bent, problem), ec.expected_unemployment(bent, plain)
    assert np.max(np.abs(np.asarray(exact) - np.asarray(approximate))) > 1e-5
    with pytest.raises(ec.CalibrationError, match="differs from willingness by up to 0.05"):
        _grouped_problem(setup[2], mismatch=0.05)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"group_share": None}, "willingness_groups and group_share go together"),
        ({"willingness_groups": np.full((8, 2), 0.5)}, r"group_share must have shape \[5, 2\]"),
        ({"willingness_groups": np.full((8, 3), 1.5)}, r"willingness_groups must be probabilities"),
        ({"group_share": np.full((5, 3), 0.5)}, "group_share rows must be shares summing to 1"),
    ],
)
def test_grouped_willingness_bad_input(setup, change, message):
    problem = _grouped_problem(setup[2])
    fields = {f.name: getattr(problem, f.name) for f in dataclasses.fields(problem)}
    with pytest.raises(ec.CalibrationError, match=message):
        ec.LabourCalibrationProblem(**(fields | change))


def test_willingness_alignment_maps_each_agents_probability(setup):
    """The labour model reads the alignment: each agent's willingness probability (its
    group's answer) is ``sigmoid(a logit(p) + b)``; 1 and 0 leave the answers as they are;
    the boroughs' work-group shares give the same regional willingness from the answers."""
    from jaxsim import behaviour

    population, attributes, _, params, _ = setup
    grouping = behaviour.group_agents(population, ["age"])
    answers = np.linspace(0.05, 0.95, grouping.num_groups).astype(np.float32)
    months = 1
    world = _economy_world(
        covid.build_world(population), population, attributes, claims_rate=np.full((months, 5), 0.1, np.float32),
        work_groups=grouping.codes, work_group_labels=grouping.names, willingness=np.tile(answers, (months, 1)),
    )
    model = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model(policy="inputs")})
    days = labour.days_in_months(START, months)
    region = np.asarray(world.agents["region"])
    codes = np.asarray(world.agents["work_group"])

    for scale, offset in ((1.0, 0.0), (0.5, 0.3), (2.0, -0.2)):
        p = params.replace(economy=params.economy.replace(willingness_alignment_scale=jnp.float32(scale),
                                                          willingness_alignment_offset=jnp.float32(offset)))
        state = model.init(jax.random.key(0), p, world)
        # The labour force alive when the month's willingness is drawn (day 0, after the
        # epidemic's substeps of that day).
        day0 = engine.run(model, jax.random.key(1), state, p, world, 1, progress=False).state
        active = np.asarray(world.agents["labour_force"] * (day0.covid.stage < covid.DEAD), np.float64)
        metrics = engine.run(model, jax.random.key(1), state, p, world, days, progress=False).metrics
        simulated = np.asarray(metrics["willingness"])[labour.monthly_rows(metrics)[0]]
        aligned = _sigmoid_map(answers, scale, offset)
        prob = aligned[codes]
        expected = [(prob * active)[region == b].sum() / active[region == b].sum() for b in range(5)]
        np.testing.assert_allclose(simulated, expected, rtol=1e-5, err_msg=f"{scale}, {offset}")
        np.testing.assert_allclose(simulated, labour.work_group_share(world) @ aligned, atol=2e-3)


def test_evaluate_and_persistence_by_hand():
    observed = np.tile(np.asarray([[0.10], [0.09], [0.08], [0.07]]), (1, 5))
    predicted = observed + np.asarray([[0], [0.01], [0.0], [0.02]])
    scores = ec.evaluate(predicted, observed, train_months=2, regions=np.asarray([1, 1, 0, 0, 0], bool))
    assert scores["train"]["mae"] == pytest.approx(1.0)  # month 1 only, pp
    assert scores["test"]["mae"] == pytest.approx(1.0) and scores["test"]["points"] == 4
    assert scores["persistence_test"]["mae"] == pytest.approx(1.5)  # 9 % repeated vs 8 %, 7 %
    assert scores["test"]["nd"] == pytest.approx(4 * 1.0 / (2 * 8 + 2 * 7))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train_months": 1}, "train_months must be in 2..10"),
        ({"train_months": 11}, "train_months must be in 2..10"),
        ({"willingness": np.ones((9, 5))}, r"willingness must have shape \[10, 5\]"),
        ({"observed": np.full((10, 5), 1.5)}, "observed unemployment rates must be fractions"),
        ({"initial_unemployment": np.full(5, -0.1)}, "initial_unemployment must be 5 fractions"),
        ({"observed": np.full((10, 5), np.nan)}, "no observed unemployment in the training months"),
    ],
)
def test_bad_calibration_problems(setup, change, message):
    problem, _ = _problem(setup[2])
    fields = {k: getattr(problem, k) for k in ("params", "observed", "willingness", "case_signal", "claims_rate",
                                                "initial_unemployment", "train_months")}
    with pytest.raises(ec.CalibrationError, match=message):
        ec.LabourCalibrationProblem(**(fields | change))


def test_bad_fit_names(setup):
    problem, _ = _problem(setup[2])
    with pytest.raises(ec.CalibrationError, match=r"cannot fit \['transmission_rate'\]"):
        ec.fit_labour_market(problem, ["transmission_rate"])
    with pytest.raises(ec.CalibrationError, match="named more than once"):
        ec.fit_labour_market(problem, ["hiring_logit", "hiring_logit"])
    with pytest.raises(ec.CalibrationError, match="nothing to fit"):
        ec.fit_labour_market(problem, [])


# ----------------------------------------------------------------------------- calendar
def test_civil_date_matches_python_for_every_day_of_several_years():
    days = np.arange(labour.epoch_day("2019-12-25"), labour.epoch_day("2025-01-05"))
    year, month, day = (np.asarray(v) for v in jax.jit(labour.civil_date)(jnp.asarray(days)))
    dates = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in days]
    np.testing.assert_array_equal(year, [d.year for d in dates])
    np.testing.assert_array_equal(month, [d.month for d in dates])
    np.testing.assert_array_equal(day, [d.day for d in dates])
    start = labour.epoch_day("2020-11-15")
    cal = jax.jit(jax.vmap(lambda t: labour.calendar_of_day(t, jnp.int32(start))))(jnp.arange(80))
    dates = [dt.date(2020, 11, 15) + dt.timedelta(days=t) for t in range(80)]
    np.testing.assert_array_equal(cal["month_end"], [(d + dt.timedelta(days=1)).day == 1 for d in dates])
    np.testing.assert_array_equal(cal["workday"], [d.weekday() < 5 for d in dates])
    np.testing.assert_array_equal(cal["run_month"], [(d.year - 2020) * 12 + d.month - 11 for d in dates])
    assert labour.days_in_months(dt.date(2020, 8, 1), 12) == 365
    assert labour.days_in_months(dt.date(2023, 12, 1), 3) == 31 + 31 + 29


# --------------------------------------------------------------------- labour force
def _tiny_population(soc=None, county=True):
    attributes = {"age": np.asarray([0, 1, 2, 3, 4, 5, 0, 1], np.int32)}
    labels = {"age": ["20t29", "30t39", "40t49", "50t64", "65A", "U19"]}
    if county:
        attributes["county"] = np.asarray([0, 1, 2, 3, 4, 0, 1, 2], np.int32)
        labels["county"] = ["Bronx", "Kings", "New York", "Queens", "Richmond"]
    strings = {} if soc is None else {"soc_code": np.asarray(soc, object)}
    return Population(attributes=attributes, labels=labels, strings=strings,
                      networks={"household": EdgeList.from_pairs(np.arange(7), np.arange(1, 8))})


def test_occupations_from_soc_codes():
    population = _tiny_population(["15-1252", "", "35-2014", "411011", "47", "nan", "53-3032", "11-1021"])
    attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=0)
    names = [labour.OCCUPATIONS[o] if o >= 0 else None for o in attributes.occupation]
    assert names == ["management_professional", None, "service", "sales_office", "construction_maintenance",
                     None, "production_transport", "management_professional"]
    np.testing.assert_array_equal(attributes.labour_force, [o is not None for o in names])
    assert attributes.source == "soc_code" and np.all((attributes.wage > 0) == attributes.labour_force)
    np.testing.assert_array_equal(attributes.region, [0, 1, 2, 3, 4, 0, 1, 2])


@pytest.mark.parametrize(
    "code, message",
    [("15/1252", r"agent 2: '15/1252' is not a SOC occupation code"),
     ("99-1111", r"agent 2: '99-1111' has unknown SOC major group '99'"),
     ("teacher", r"agent 2: 'teacher' is not a SOC")],
)
def test_bad_soc_codes(code, message):
    codes = ["15-1252", "", code, "", "", "", "", ""]
    population = _tiny_population(codes)
    with pytest.raises(labour.EconomyError, match="column 'soc_code', " + message):
        labour.labour_attributes(population, boroughs.borough_codes(population), seed=0)


def test_sampled_labour_force_follows_participation():
    population = boroughs.five_borough_population(6000, seed=1, cached=False)
    attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=1)
    age = population.attributes["age"]
    for label, rate in labour.DEFAULT_PARTICIPATION.items():
        share = attributes.labour_force[age == population.code("age", label)].mean()
        assert share == pytest.approx(rate, abs=0.05), label
    occupation = attributes.occupation[attributes.labour_force]
    assert np.mean(occupation == labour.OCCUPATIONS.index("service")) == pytest.approx(0.22, abs=0.04)
    assert np.all(attributes.occupation[~attributes.labour_force] == -1)


def test_population_without_boroughs_or_age_bands_is_refused():
    no_boroughs = _tiny_population(county=False)
    with pytest.raises(PopulationError, match="needs each agent's borough"):
        labour.labour_attributes(no_boroughs, boroughs.borough_codes(no_boroughs), seed=0)
    bad = _tiny_population()
    bad.labels["county"] = ["Bronx", "Kings", "Essex", "Queens", "Richmond"]
    with pytest.raises(PopulationError, match="label 'Essex' is not a New York City county"):
        labour.labour_attributes(bad, boroughs.borough_codes(bad), seed=0)
    odd_ages = _tiny_population()
    odd_ages.labels["age"] = ["young", "30t39", "40t49", "50t64", "65A", "U19"]
    with pytest.raises(labour.EconomyError, match="participation"):
        labour.labour_attributes(odd_ages, boroughs.borough_codes(odd_ages), seed=0)


def test_five_borough_population_covers_every_borough_in_proportion():
    population = boroughs.five_borough_population(5000, seed=0, cached=False)
    counts = np.bincount(boroughs.borough_codes(population), minlength=5)
    people = boroughs.borough_people()
    assert counts.sum() == 5000 and np.all(counts > 0)
    np.testing.assert_allclose(counts / 5000, np.asarray([people[b] for b in boroughs.BOROUGHS]) / sum(people.values()),
                               atol=1e-3)
    assert population.category_labels("area") == [boroughs.CASE_DATA_NTAS[b] for b in boroughs.BOROUGHS]


# ------------------------------------------------------------------- parameters, world
@pytest.mark.parametrize(
    "change, message",
    [
        ({"tax_thresholds": (0.0, 5000.0, 3000.0), "tax_rates": (0.0, 0.1, 0.2)}, "tax_thresholds: must start at 0 and increase"),
        ({"tax_thresholds": (100.0, 5000.0), "tax_rates": (0.0, 0.1)}, "tax_thresholds: must start at 0"),
        ({"tax_rates": (0.0, 0.1, 0.2, 0.3, 1.5)}, r"tax_rates: \[0\.0, 0\.1, 0\.2, 0\.3, 1\.5\] is outside its bounds \[0\.0, 1\.0\]"),
        ({"tax_rates": (0.0, 0.1)}, "tax_thresholds: needs one lower edge per rate"),
        ({"willingness_baseline": 1.0}, "willingness_baseline: probabilities must lie strictly between 0 and 1"),
        ({"ui_replacement": 1.2}, r"ui_replacement: 1\.2 is outside its bounds \[0\.0, 1\.0\]"),
        ({"mpc": float("nan")}, "mpc: non-finite value"),
        ({"subsistence": -1.0}, r"subsistence: -1\.0 is outside its bounds \[0\.0, inf\]"),
        ({"ascertainment": 0.0}, r"ascertainment: must lie in \(0, 1\]"),
        ({"separation_logit": [1.0, 2.0]}, r"separation_logit: needs one value per 'region' category \(5: .*got shape \(2,\)"),
        ({"hiring_logit": {"bronx": 0.0}}, r"hiring_logit: no value given for 'region' labels \['brooklyn', 'manhattan', 'queens', 'staten_island'\]"),
        ({"willingness_baseline": {"20t29": 0.9}}, "willingness_baseline: .*no value given"),
        ({"willingness_alignment_scale": -2.0}, r"willingness_alignment_scale: -2\.0 is outside its bounds \[0\.0, inf\]"),
        ({"willingness_alignment_offset": float("nan")}, r"willingness_alignment_offset: non-finite value"),
        ({"willingness_alignment_scale": [1.0, 0.5, 2.0, 1.0, 1.0]}, "willingness_alignment_scale: must be one number"),
    ],
)
def test_bad_economy_parameters(setup, change, message):
    with pytest.raises(labour.EconomyError, match=message):
        labour.default_params(setup[2], **change)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"amount": -5.0}, "stimulus 'stimulus': amount must be a finite number of USD >= 0"),
        ({"amount": float("inf")}, "amount must be a finite number"),
        ({"months": [3]}, "month 3 is outside the run's months 0..2"),
        ({"months": [1, 1]}, "month 1 is listed twice"),
        ({"months": []}, "name at least one run month"),
        ({"months": ["x"]}, "months must be whole run-month numbers"),
        ({"max_earnings": -1.0}, "max_earnings must be >= 0"),
    ],
)
def test_bad_stimulus(kwargs, message):
    arguments = {"amount": 1000.0, "months": [1], "num_months": 3} | kwargs
    with pytest.raises(labour.EconomyError, match=message):
        labour.stimulus_payment(**arguments)


def test_bad_economy_world(setup):
    population, attributes = setup[0], setup[1]
    world = covid.build_world(population)
    with pytest.raises(labour.EconomyError, match=r"claims_rate must have shape \[months, 5\]"):
        _economy_world(world, population, attributes, claims_rate=np.zeros((3, 4)))
    with pytest.raises(labour.EconomyError, match=r"claims_rate: beneficiaries per labour-force member must lie in \[0, 1\]"):
        _economy_world(world, population, attributes, claims_rate=np.full((3, 5), 2.0))
    with pytest.raises(labour.EconomyError, match=r"willingness must have shape \[months, 6\]"):
        _economy_world(world, population, attributes, claims_rate=np.zeros((3, 5)),
                       willingness=np.zeros((3, 2)))
    with pytest.raises(labour.EconomyError, match=r"willingness: probabilities must lie in \[0, 1\]"):
        _economy_world(world, population, attributes, claims_rate=np.zeros((3, 5)),
                       willingness=np.full((3, 6), 1.5))


def test_compose_refuses_clashes_and_strangers():
    from jaxsim.engine import Substep

    def report(state, params, world):
        return {"x": jnp.float32(0.0)}

    same = Model(name="a", substeps=(), observe=report)
    twice = coupling.compose({"a": same, "b": same}, name="twice")
    with pytest.raises(ValueError, match=r"observations \['x'\] reported twice"):
        twice.observe(Parts(a=None, b=None), Parts(a=None, b=None), None)
    step = Substep("s", lambda key, state, params, t, world: (state, {}))
    with pytest.raises(ValueError, match=r"duplicate substep names \['s'\]"):
        coupling.compose({"a": Model(name="a", substeps=(step,)), "b": Model(name="b", substeps=(step,))},
                         name="dupes")
    with pytest.raises(TypeError, match="expected a Model or a Substep"):
        coupling.compose({"bad": lambda: None}, name="bad")


def test_model_validation_names_what_is_missing(setup):
    population, attributes, world, params, _ = setup
    coupled = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model()})
    state = coupled.init(jax.random.key(0), params, world)
    model = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model(policy="inputs")})
    with pytest.raises(labour.EconomyError, match=r"policy 'inputs' needs world.inputs\['willingness'\]"):
        model.validate(state, params, world)
    plain_world = covid.build_world(population)
    with pytest.raises(labour.EconomyError, match="no economy array 'region'"):
        coupled.validate(state, params, plain_world)
    with pytest.raises(labour.EconomyError, match="unknown willingness policy"):
        labour.labour_model(policy="llm")


# ----------------------------------------------------------------- the LLM work layer
def test_work_template_checks_and_prompts(setup):
    from jaxsim import behaviour
    from jaxsim.behaviour import BehaviourLayer, PromptTemplate
    from jaxsim.llm import FunctionBackend
    from jaxsim.models.labour import MonthlySignals, WILLINGNESS_POLICY, work_template

    fields = WILLINGNESS_POLICY.signal_fields
    work_template(["age", "gender"]).check(["age", "gender"], fields)
    with pytest.raises(behaviour.ArchetypeError, match=r"unknown placeholders \['cases_this_week'\]"):
        PromptTemplate("sys", "This week {cases_this_week} cases.").check(["age"], fields)
    with pytest.raises(behaviour.ArchetypeError, match="literal number near"):
        PromptTemplate("sys", "Answer 0.9 if unsure, {month_name}.").check(["age"], fields)
    grouping = behaviour.group_agents(setup[0], ["age", "county"])
    options = {"region_of": borough_of_labels, "region_names": BOROUGH_NAMES}
    layer = BehaviourLayer(WILLINGNESS_POLICY, grouping, FunctionBackend(lambda r: "0.5"), options=options)
    signals = MonthlySignals(
        2, dt.date(2020, 10, 1), case_signal=np.asarray([4.0, 2.0, 1.0, 3.0, 5.0]),
        previous_case_signal=np.asarray([2.0, 2.0, 2.0, 3.0, 5.0]), unemployment=np.asarray([0.2, 0.1, 0.1, 0.1, 0.1]),
        labour_force=np.ones(5), residents=np.ones(5), price_level=1.012, stimulus_usd=1400.0,
        region_names=BOROUGH_NAMES, region_of=borough_of_labels,
    )
    prompts = layer.prompts(signals)
    user = prompts[grouping.names.index("age=65A|county=Bronx")][1]["content"]
    assert "sixty-five or older, living in the Bronx" in user and "It is October 2020" in user
    assert "Last month 4.0 in every thousand residents of the Bronx" in user and "up 100% on the month before" in user
    assert "unemployment rate in the Bronx is 20.0%" in user and "risen by 1.2%" in user
    assert "stimulus payment of $1,400" in user and "{" not in user
    city = BehaviourLayer(WILLINGNESS_POLICY, behaviour.group_agents(setup[0], ["gender"]),
                          FunctionBackend(lambda r: "0.5"), options=options)
    assert "living in New York City" in city.prompts(signals)[0][1]["content"]


def test_work_layer_run_feeds_answers_into_the_simulation(setup):
    from jaxsim import behaviour
    from jaxsim.behaviour import BehaviourLayer, run_with_behaviour
    from jaxsim.llm import CachedBackend, FunctionBackend, ResponseCache

    population, attributes, world, params, _ = setup
    grouping = behaviour.group_agents(population, ["age"])

    def answer(request):
        text = request.messages[1]["content"]
        if "in your twenties" in text:
            return "not sure"  # unreadable twice: falls back to the heuristic prior
        return '{"probability": 0.0}' if "August" in text else '{"probability": 1.0}'

    months = 2
    world = _economy_world(
        covid.build_world(population), population, attributes,
        claims_rate=np.full((months, 5), 0.1, np.float32), work_groups=grouping.codes,
        work_group_labels=grouping.names, willingness=np.zeros((months, grouping.num_groups), np.float32),
    )
    model = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model(policy="inputs")})
    layer = BehaviourLayer(
        behaviour.policy_of(model, "willingness"), grouping,
        CachedBackend(FunctionBackend(answer), ResponseCache(":memory:", mode="off")),
        options={"region_of": borough_of_labels, "region_names": BOROUGH_NAMES},
    )
    state = model.init(jax.random.key(0), params, world)
    days = labour.days_in_months(START, months)
    run = run_with_behaviour(model, jax.random.key(1), state, params, world, days, [layer])
    twenties = grouping.names.index("age=20t29")
    table = run.tables["willingness"]
    assert table.shape == (2, grouping.num_groups)
    assert np.all(np.delete(table[0], twenties) == 0.0) and np.all(np.delete(table[1], twenties) == 1.0)
    assert 0.5 < table[0, twenties] < 1.0  # the prior (heuristic willingness)
    assert layer.fallbacks == 2 and layer.retries == 2 and layer.parse_failures == 2
    report = layer.report()
    assert report["months"][0]["fell_back_to_prior"] == ["age=20t29"] and report["llm_calls"] == 14
    # In August only agents in their twenties were willing; in September everyone was.
    metrics = run.result.metrics
    august = np.arange(31)
    age = population.attributes["age"]
    twenties_force = attributes.labour_force[age == population.code("age", "20t29")].sum()
    assert 0 < metrics["working"][august].max() <= twenties_force
    assert metrics["working"][31:].max() > 2 * twenties_force
    assert run.result.days == 61
    # A table with one column per age band, not per archetype, is refused before running.
    wrong = world.replace(inputs={**world.inputs, "willingness": jnp.zeros((months, grouping.num_groups + 1))})
    with pytest.raises(behaviour.ArchetypeError,
                       match=rf"inputs\['willingness'\] of shape \[months, {grouping.num_groups}\].*got \(2, "):
        run_with_behaviour(model, jax.random.key(1), state, params, wrong, days, [layer])
