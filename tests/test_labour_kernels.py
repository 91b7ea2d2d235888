"""The labour kernels one by one: who works, willingness, earnings, tax and its
redistribution (money conserved), consumption and savings (accounts balance), prices,
job flows and the unemployment rate (always in [0, 1])."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim.kernels import labour
from jaxsim.models.covid import CASE_HISTORY_DAYS, EXPOSURE_HISTORY_DAYS, CovidState
from jaxsim.models.covid.model import available

S, E, I, R, M, PAD = 0, 1, 2, 3, 4, 5


def _can_work_today(stage, isolating):
    """The COVID model's ``available`` bridge on a state holding these stages and isolation flags."""
    n = stage.shape[0]
    state = CovidState(
        stage=stage, day_infected=jnp.zeros(n, jnp.int16), isolating=isolating,
        daily_exposures=jnp.zeros(EXPOSURE_HISTORY_DAYS, jnp.float32), isolation_prob=jnp.zeros(1, jnp.float32),
        daily_cases=jnp.zeros(CASE_HISTORY_DAYS, jnp.float32),
    )
    return available(state, None, jnp.int32(0), None)


def test_sum_by_code_one_and_many_columns():
    codes = jnp.asarray([0, 2, 2, 5, 1, 0], jnp.int8)  # 5: padding, counted nowhere
    values = jnp.asarray([1.0, 2.0, 3.0, 100.0, 4.0, 5.0])
    np.testing.assert_allclose(labour.sum_by_code(values, codes, 3), [6.0, 4.0, 5.0])
    stacked = jnp.stack([values, 2 * values], axis=1)
    np.testing.assert_allclose(labour.sum_by_code(stacked, codes, 3), [[6, 12], [4, 8], [5, 10]])


def test_sick_dead_isolating_and_padding_agents_cannot_work():
    stage = jnp.asarray([S, E, I, R, M, PAD, S, R], jnp.int8)
    isolating = jnp.asarray([0, 0, 0, 0, 0, 0, 1, 1], jnp.float32)
    np.testing.assert_array_equal(_can_work_today(stage, isolating), [1, 1, 0, 1, 0, 0, 0, 0])
    ones = jnp.ones(8)
    able = _can_work_today(stage, isolating)
    np.testing.assert_array_equal(labour.works_today(ones, ones, able, 1.0), able)
    assert float(labour.works_today(ones, ones, able, 0.0).sum()) == 0.0  # weekend
    employed = jnp.asarray([1, 0, 1, 1, 1, 1, 1, 1], jnp.float32)
    willing = jnp.asarray([1, 1, 1, 0, 1, 1, 1, 1], jnp.float32)
    np.testing.assert_array_equal(labour.works_today(employed, willing, able, 1.0), [1, 0, 0, 0, 0, 0, 0, 0])


def test_heuristic_willingness_responds_to_cases_prices_and_savings():
    base = jnp.asarray([0.9, 0.6])
    at_rest = labour.heuristic_willingness(base, 0.0, 1.0, 0.0, 0.4, 2.0, 0.3)
    np.testing.assert_allclose(at_rest, base, rtol=1e-6)
    more_cases = labour.heuristic_willingness(base, 10.0, 1.0, 0.0, 0.4, 2.0, 0.3)
    higher_prices = labour.heuristic_willingness(base, 0.0, 1.2, 0.0, 0.4, 2.0, 0.3)
    more_savings = labour.heuristic_willingness(base, 0.0, 1.0, 6.0, 0.4, 2.0, 0.3)
    assert np.all(more_cases < at_rest) and np.all(higher_prices > at_rest) and np.all(more_savings < at_rest)
    extreme = labour.heuristic_willingness(base, 1e30, 1e-30, 1e30, 1e3, 1e3, 1e3)
    assert np.all(np.isfinite(extreme)) and np.all((extreme >= 0) & (extreme <= 1))


def test_earnings_and_unemployment_benefit():
    wage = jnp.asarray([3000.0, 6000.0, 8000.0])
    np.testing.assert_allclose(labour.monthly_earnings(wage, jnp.asarray([21.0, 10.5, 0.0]), 21.0), [3000, 3000, 0])
    assert float(labour.monthly_earnings(wage, jnp.zeros(3), 0.0).sum()) == 0.0
    benefit = labour.unemployment_benefit(jnp.asarray([1.0, 1.0, 0.0]), wage, 0.5, 2184.0)
    np.testing.assert_allclose(benefit, [1500.0, 2184.0, 0.0])  # capped; employed get none


def test_progressive_tax_by_hand_and_progressivity():
    thresholds = jnp.asarray([0.0, 1000.0, 4000.0])
    rates = jnp.asarray([0.0, 0.1, 0.3])
    income = jnp.asarray([-50.0, 0.0, 500.0, 1000.0, 2500.0, 4000.0, 10000.0])
    expected = [0, 0, 0, 0, 150, 300, 300 + 0.3 * 6000]
    np.testing.assert_allclose(labour.progressive_tax(income, thresholds, rates), expected, rtol=1e-6)
    grid = jnp.linspace(1.0, 50000.0, 500)
    tax = labour.progressive_tax(grid, thresholds, rates)
    assert np.all(np.diff(np.asarray(tax / grid)) >= -1e-7)  # the average rate never falls
    assert np.all(tax <= grid)
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda x: labour.progressive_tax(x[None], thresholds, rates)[0]))(
        jnp.asarray([500.0, 2000.0, 9000.0])), [0.0, 0.1, 0.3], rtol=1e-6)  # marginal rates


def test_tax_collected_equals_tax_redistributed():
    rng = np.random.default_rng(0)
    income = jnp.asarray(rng.lognormal(8, 1, 20_000).astype(np.float32))
    recipients = jnp.asarray((rng.random(20_000) < 0.7).astype(np.float32))
    tax = labour.progressive_tax(income, jnp.asarray([0.0, 1000.0, 4000.0, 8000.0]), jnp.asarray([0.0, 0.12, 0.22, 0.3]))
    transfers = labour.redistribute(tax.sum(), recipients)
    assert float(transfers.sum()) == pytest.approx(float(tax.sum()), rel=1e-5)
    assert float(jnp.abs(transfers * (1 - recipients)).sum()) == 0.0  # only recipients receive
    np.testing.assert_allclose(transfers[recipients > 0], transfers[recipients > 0][0])  # equal shares
    # Money before and after: tax and transfers only move it between agents.
    after = income - tax + transfers
    assert float(after.sum()) == pytest.approx(float(income.sum()), rel=1e-5)
    np.testing.assert_array_equal(labour.redistribute(jnp.float32(1e6), jnp.zeros(5)), np.zeros(5))


def test_consumption_and_savings_balance_for_every_agent():
    rng = np.random.default_rng(1)
    income = jnp.asarray(rng.uniform(0, 9000, 5000).astype(np.float32))
    savings = jnp.asarray(rng.uniform(0, 20000, 5000).astype(np.float32))
    subsistence = jnp.asarray(rng.choice([0.0, 1200.0], 5000).astype(np.float32))
    consumption, new_savings = labour.consumption_and_savings(income, savings, subsistence, 1.03, 0.8, 0.02)
    np.testing.assert_allclose(income, consumption + (new_savings - savings), atol=2e-3)
    assert np.all(consumption >= 0) and np.all(new_savings >= 0)
    broke = labour.consumption_and_savings(jnp.asarray([100.0]), jnp.asarray([50.0]), jnp.asarray([1200.0]), 1.0, 0.8, 0.02)
    np.testing.assert_allclose(broke[0], [150.0])  # cannot borrow: spends all it has
    np.testing.assert_allclose(broke[1], [0.0], atol=1e-6)


def test_price_update_follows_the_change_in_excess_demand():
    assert float(labour.price_update(1.0, 120.0, 100.0, 0.0, 0.1, 0.01)[0]) == 1.0  # first month
    assert float(labour.price_update(1.0, 120.0, 100.0, 1.2, 0.1, 0.01)[0]) == pytest.approx(1.0)
    up, ratio = labour.price_update(1.0, 126.0, 100.0, 1.2, 0.1, 0.05)
    assert float(up) == pytest.approx(np.exp(0.1 * np.log(1.26 / 1.2)), rel=1e-6) and float(ratio) == pytest.approx(1.26)
    assert float(labour.price_update(1.0, 1e9, 1.0, 1.2, 0.1, 0.01)[0]) == pytest.approx(np.exp(0.01))  # clipped
    assert float(labour.price_update(1.0, 1.0, 1e9, 1.2, 0.1, 0.01)[0]) == pytest.approx(np.exp(-0.01))


def _flows(willing, borough=None, **kw):
    args = dict(
        separation_logit=jnp.full(5, -4.0), hiring_logit=jnp.full(5, -1.0), case_signal=jnp.zeros(5),
        claims_rate=jnp.zeros(5), separation_case_sensitivity=0.3, hiring_claims_sensitivity=-0.05,
        quit_if_unwilling=0.2,
    ) | kw
    borough = jnp.zeros(len(willing), jnp.int8) if borough is None else borough
    return labour.job_flow_probabilities(borough, jnp.asarray(willing, jnp.float32), **args)


def test_job_flows_by_hand():
    leave, hire = _flows([1.0, 0.0])
    s, h = 1 / (1 + np.exp(4.0)), 1 / (1 + np.exp(1.0))
    np.testing.assert_allclose(leave, [s, 1 - (1 - s) * (1 - 0.2)], rtol=1e-5)
    np.testing.assert_allclose(hire, [h, 0.0], rtol=1e-5)  # the unwilling do not look for work
    more_cases, _ = _flows([1.0], case_signal=jnp.full(5, 20.0))
    _, more_claims = _flows([1.0], claims_rate=jnp.full(5, 0.2))
    assert float(more_cases[0]) > s and float(more_claims[0]) < h
    padding_leave, padding_hire = _flows([1.0], borough=jnp.asarray([5], jnp.int8))
    assert float(padding_leave[0]) == 0.0 and float(padding_hire[0]) == 0.0


@pytest.mark.parametrize("logit", [-1e4, -50.0, 0.0, 50.0, 1e4, np.inf, -np.inf])
def test_unemployment_rate_stays_in_unit_interval_for_extreme_parameters(logit):
    rng = np.random.default_rng(2)
    n = 4000
    borough = jnp.asarray(rng.integers(0, 6, n).astype(np.int8))  # 5 = padding
    active = jnp.asarray((rng.random(n) < 0.6).astype(np.float32))
    employed = jnp.asarray((rng.random(n) < 0.9).astype(np.float32)) * active
    willing = jnp.asarray((rng.random(n) < 0.8).astype(np.float32))
    leave, hire = _flows(
        willing, borough, separation_logit=jnp.full(5, logit), hiring_logit=jnp.full(5, -logit),
        case_signal=jnp.full(5, 1e6), claims_rate=jnp.full(5, 1.0), separation_case_sensitivity=1e3,
        hiring_claims_sensitivity=-1e3, quit_if_unwilling=5.0,
    )
    assert np.all(np.isfinite(leave)) and np.all((leave >= 0) & (leave <= 1))
    assert np.all(np.isfinite(hire)) and np.all((hire >= 0) & (hire <= 1))
    for draws in ((leave, hire), (jnp.round(leave), jnp.round(hire))):
        nxt = labour.next_employment(employed, *draws)
        rate, force = labour.unemployment_rate(nxt, active, borough, 5)
        assert np.all(np.isfinite(rate)) and np.all((rate >= 0) & (rate <= 1))
        np.testing.assert_allclose(force, labour.sum_by_code(active, borough, 5))


def test_unemployment_rate_by_hand_and_empty_borough():
    employed = jnp.asarray([1.0, 0.0, 0.0, 1.0, 1.0])
    active = jnp.asarray([1.0, 1.0, 0.0, 1.0, 1.0])  # agent 2 is out of the labour force
    borough = jnp.asarray([0, 0, 0, 1, 1], jnp.int8)
    rate, force = labour.unemployment_rate(employed, active, borough, 3)
    np.testing.assert_allclose(rate, [0.5, 0.0, 0.0])  # borough 2 has nobody: 0, not NaN
    np.testing.assert_allclose(force, [2.0, 2.0, 0.0])
    np.testing.assert_allclose(labour.next_employment(jnp.asarray([1.0, 0.0, 0.6]), jnp.asarray([1.0, 0.0, 0.5]),
                                                      jnp.asarray([0.0, 1.0, 0.25])), [0.0, 1.0, 0.4])
