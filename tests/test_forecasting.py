"""Forecast ensembles from fits (parameter paths, observation noise), the log-linear
baseline, the smoothness penalty of fits, and compiled programs shared between fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import calibration as cal
from jaxsim import forecasting
from jaxsim.models import covid
from jaxsim.nyc import synthesis


@pytest.fixture(scope="module")
def problem():
    population = synthesis.synthesize_population_of_size(2000, seed=1)
    world = covid.build_world(population, prior_daily_cases=1.0)
    params = covid.default_params(
        world, 6, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.01, initial_infected_share=0.01,
        transmission_rate=np.asarray([3.0, 3.2, 3.4, 3.1, 3.0, 3.0], np.float32),
    )
    return cal.CalibrationProblem(covid.covid_model(), world, params, np.full(6, 20.0), 4,
                                  cal.Observation("new_cases", 7, scale=1.0))


def fitted(problem, values):
    return problem.params.replace(transmission_rate=jnp.asarray(values, jnp.float32))


def test_random_walk_is_reversion_one_and_mean_reversion_pulls_toward_the_fitted_level(problem):
    params = fitted(problem, [2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    walk = forecasting.parameter_paths(params, "transmission_rate", 4, 4000, seed=5, step_sd=0.1)
    np.testing.assert_array_equal(walk, cal.random_walk_paths(params, "transmission_rate", 4, 4000, seed=5,
                                                               step_sd=0.1))
    np.testing.assert_allclose(np.median(walk[:, 4:], axis=0), [1.0, 1.0], rtol=0.02)
    reverting = forecasting.parameter_paths(params, "transmission_rate", 4, 4000, seed=5, step_sd=0.1,
                                            reversion=0.5)
    level = np.exp(np.mean(np.log([2.0, 2.0, 2.0, 1.0])))  # 1.68
    # log x5 = m + 0.5 (log 1 - m): halfway toward the level on the log scale, then a quarter.
    expected = np.exp([np.log(level) * 0.5, np.log(level) * 0.75])
    np.testing.assert_allclose(np.median(reverting[:, 4:], axis=0), expected, rtol=0.02)
    np.testing.assert_array_equal(reverting[:, :4], np.tile([2.0, 2.0, 2.0, 1.0], (4000, 1)))
    flat = forecasting.parameter_paths(params, "transmission_rate", 4, 4000, seed=5, step_sd=0.1, reversion=0.0)
    np.testing.assert_allclose(np.std(np.log(flat[:, 4:]), axis=0), [0.1, 0.1], rtol=0.05)


def test_parameter_paths_refuse_bad_settings(problem):
    with pytest.raises(forecasting.ForecastError, match="reversion must lie in"):
        forecasting.parameter_paths(problem.params, "transmission_rate", 4, 8, reversion=1.5)
    with pytest.raises(forecasting.ForecastError, match="not a per-period parameter"):
        forecasting.parameter_paths(problem.params, "initial_exposed_share", 4, 8)
    with pytest.raises(forecasting.ForecastError, match="members must be"):
        forecasting.parameter_paths(problem.params, "transmission_rate", 4, 0)


def test_dispersion_is_estimated_from_the_history_around_its_trend():
    rng = np.random.default_rng(0)
    mu = 50.0 * np.exp(0.05 * np.arange(400))[:8]
    estimates = []
    for _ in range(300):
        counts = rng.negative_binomial(10.0, 10.0 / (10.0 + mu))
        estimates.append(forecasting.dispersion_from_history(counts, weeks=8))
    assert 5.0 < np.median(estimates) < 20.0  # true size 10
    poisson = [forecasting.dispersion_from_history(rng.poisson(mu), weeks=8) for _ in range(300)]
    assert np.median(poisson) > 50.0  # nearly Poisson: a large size
    with pytest.raises(forecasting.ForecastError, match="at least 3 periods"):
        forecasting.dispersion_from_history([1.0, 2.0])
    with pytest.raises(forecasting.ForecastError, match="finite and >= 0"):
        forecasting.dispersion_from_history([1.0, -2.0, 3.0])


def test_observation_noise_is_negative_binomial_around_each_member():
    expected = np.full((20000, 2), [5.0, 80.0])
    noisy = forecasting.with_observation_noise(expected, 4.0, seed=1)
    np.testing.assert_allclose(noisy.mean(axis=0), [5.0, 80.0], rtol=0.03)
    np.testing.assert_allclose(noisy.var(axis=0), [5.0 + 25.0 / 4, 80.0 + 6400.0 / 4], rtol=0.08)
    assert np.all(noisy == np.round(noisy))
    with pytest.raises(forecasting.ForecastError, match="dispersion must be"):
        forecasting.with_observation_noise(expected, 0.0)


def test_log_linear_baseline_extrapolates_the_log_trend_and_widens_with_horizon():
    history = np.expm1(np.log(10.0) + 0.2 * np.arange(6))
    samples = forecasting.log_linear_forecast(history, 3, weeks=4, members=20000, seed=2)
    np.testing.assert_allclose(np.median(samples, axis=0), np.expm1(np.log(10.0) + 0.2 * np.arange(6, 9)),
                               rtol=0.03)
    widths = np.diff(np.log1p(np.quantile(samples, [0.05, 0.95], axis=0)), axis=0)[0]
    assert np.all(np.diff(widths) > 0)
    with pytest.raises(forecasting.ForecastError, match="test_periods must be"):
        forecasting.log_linear_forecast(history, 0)


def test_forecast_ensemble_last_matches_the_plain_ensemble_and_noise_gives_counts(problem):
    params = fitted(problem, [3.0, 3.2, 3.4, 2.5, 9.0, 9.0])
    last = forecasting.forecast_ensemble(problem, params, 3, parameter_forecast="last", seed=4)
    plain = cal.ensemble_forecast(problem, cal.extend_last_week(params, 4), 3, seed=1004)
    np.testing.assert_allclose(last, plain)
    noisy = forecasting.forecast_ensemble(problem, params, 3, parameter_forecast="mean-reverting", dispersion=5.0,
                                          seed=4)
    assert noisy.shape == (3, 6) and np.all(noisy == np.round(noisy))
    with pytest.raises(forecasting.ForecastError, match="unknown parameter forecast"):
        forecasting.forecast_ensemble(problem, params, 3, parameter_forecast="tomorrow")


def test_smoothness_penalty_is_the_mean_squared_log_change_and_ties_weeks_together(problem):
    params = fitted(problem, [1.0, np.e, 1.0, np.e, 5.0, 5.0])
    value = cal.smoothness_penalty(params, ["transmission_rate"], 4, 2.0)
    assert float(value) == pytest.approx(2.0 * 1.0)  # changes of +-1 on the log scale
    assert float(cal.smoothness_penalty(params, ["transmission_rate"], 4, 0.0)) == 0.0
    observed = np.asarray([20.0, 60.0, 10.0, 60.0, 0.0, 0.0])
    rough = cal.fit(cal.CalibrationProblem(problem.model, problem.world, problem.params, observed, 4,
                                           problem.observation), steps=25, seeds_per_step=1, learning_rate=0.2)
    smooth = cal.fit(cal.CalibrationProblem(problem.model, problem.world, problem.params, observed, 4,
                                            problem.observation), steps=25, seeds_per_step=1, learning_rate=0.2,
                     smoothing=100.0)

    def spread(result):
        return float(np.std(np.log(np.asarray(result.params.transmission_rate)[:4])))

    assert spread(smooth) < 0.5 * spread(rough)
    with pytest.raises(cal.CalibrationError, match="smoothing must be"):
        cal.fit(problem, steps=1, smoothing=-1.0)


def test_a_second_fit_of_another_window_reuses_the_compiled_programs(problem):
    """World, parameters and observations are jit arguments: fits of other data with the
    same settings and shapes share one compiled program (none is compiled again)."""
    # Another window of the same population: another prior case signal, day-0 shares and cases.
    other_world = covid.build_world(synthesis.synthesize_population_of_size(2000, seed=1), prior_daily_cases=60.0)
    other = cal.CalibrationProblem(problem.model, other_world,
                                   problem.params.replace(initial_exposed_share=jnp.float32(0.02)),
                                   np.full(6, 35.0), 4, problem.observation)
    cal.fit(problem, steps=2, seeds_per_step=1, learning_rate=0.05)
    update = cal._fit_program(problem, ("transmission_rate",), "poisson", 0.05, None, None)
    compiled = update._cache_size()
    result = cal.fit(other, steps=2, seeds_per_step=1, learning_rate=0.05, seed=3)
    assert update._cache_size() == compiled
    assert cal._fit_program(other, ("transmission_rate",), "poisson", 0.05, None, None) is update
    assert np.all(np.isfinite(np.asarray(result.params.transmission_rate)))
    # The programs read the world they are given: other data, another fit.
    again = cal.fit(problem, steps=2, seeds_per_step=1, learning_rate=0.05, seed=3)
    assert not np.allclose(np.asarray(again.params.transmission_rate), np.asarray(result.params.transmission_rate))
    run = cal._simulate_program(problem, 6)
    key = jax.random.key(0)
    assert not np.allclose(np.asarray(run(problem.params, key, problem.world)),
                           np.asarray(run(problem.params, key, other_world)))


def test_case_calibration_scales_the_window_and_knows_only_the_weeks_before_the_origin():
    from jaxsim.nyc import cases as nyc_cases
    from jaxsim.nyc.forecast import case_calibration

    population = synthesis.synthesize_nyc_population(["QN0103"], seed=0, max_agents=3000)
    case = case_calibration(population, "QN0103", 202047, 2, 3)
    observed = nyc_cases.observed_cases(["QN0103"])
    start = observed.week_index(202047)
    scale = 3000 / 47303
    assert case.case_scale == pytest.approx(scale)
    np.testing.assert_allclose(case.observed, observed.cases[start:start + 5] * scale, rtol=1e-6)
    # The history ends with the last fitted week: nothing from the held-out weeks.
    np.testing.assert_allclose(case.history, observed.cases[:start + 2] * scale, rtol=1e-6)
    assert case.train == 2 and case.problem.total_periods == 5 and case.epiweeks[0] == 202047
    assert "202047" in case.initial_source
    with pytest.raises(cal.InputError, match="XX0000"):
        case_calibration(population, "XX0000", 202047, 2, 3)


def test_bootstrap_fits_fit_resampled_cases_and_share_the_forecast_members(problem):
    observed = np.asarray([20.0, 30.0, 45.0, 60.0, 0.0, 0.0])
    case = cal.CalibrationProblem(problem.model, problem.world, problem.params, observed, 4, problem.observation)
    fits = forecasting.bootstrap_fits(case, 3, dispersion=5.0, steps=2, seeds_per_step=1)
    assert len(fits) == 3
    first = cal.fit(case, steps=2, seeds_per_step=1)
    np.testing.assert_array_equal(np.asarray(fits[0].params.transmission_rate),
                                  np.asarray(first.params.transmission_rate))  # the first: the data itself
    rates = [np.asarray(f.params.transmission_rate) for f in fits]
    assert not np.allclose(rates[1], rates[0]) and not np.allclose(rates[2], rates[1])
    params = [f.params for f in fits]
    members = forecasting.forecast_from_fits(case, params, 5, parameter_forecast="last", seed=3)
    assert members.shape == (5, 6)
    np.testing.assert_array_equal(members[[1, 4]], forecasting.forecast_ensemble(
        case, params[1], 2, parameter_forecast="last", seed=3 + 7919))
    with pytest.raises(forecasting.ForecastError, match="members must be"):
        forecasting.forecast_from_fits(case, params, 2)
    with pytest.raises(forecasting.ForecastError, match="fits must be"):
        forecasting.bootstrap_fits(case, 0)


def test_the_rolling_origin_benchmark_runs_and_scores_every_method(tmp_path, capsys):
    """benchmarks/bench_forecast.py end to end on one origin of one NTA (tiny settings)."""
    import csv
    from pathlib import Path

    from conftest import load_script

    bench = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_forecast.py")
    assert bench.main(["--ntas", "QN0103", "--max-origins", "1", "--agents", "2000", "--steps", "2", "--seeds", "1",
                       "--members", "4", "--gradient-free", "none", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "forecast_origins.csv")))
    methods = {r["method"] for r in rows}
    assert {"persistence", "log-linear", bench.variant_name("gradient", *bench.DEFAULT_VARIANT)} <= methods
    assert all(r["origin"] == "202040" for r in rows) and len(rows) == len(bench.MAIN_VARIANTS) + 2
    persistence = next(r for r in rows if r["method"] == "persistence")
    assert float(persistence["wis"]) == pytest.approx(float(persistence["mae"]))
    assert "ND<pers." in capsys.readouterr().out
    # Origins every 2 weeks from 202041 to 202045, with 1 week before and 2 weeks from each
    # in the data: 202045 has only one week left.
    weeks = np.asarray([202040, 202041, 202042, 202043, 202044, 202045])
    assert bench.origins_of(weeks, 202041, 202045, 2, 1, 2) == [1, 3]
    assert bench.origins_of(weeks, 202041, 202045, 2, 1, 1) == [1, 3, 5]
    with pytest.raises(SystemExit, match="XX0000"):
        bench.main(["--ntas", "XX0000", "--out", str(tmp_path)])
