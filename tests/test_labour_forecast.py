"""Rolling-origin unemployment forecasts (jaxsim.models.labour.forecast and
benchmarks/bench_forecast_unemployment.py): no observation after an origin reaches its
forecast, the ensemble's mechanics, the scores, and bad input."""

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from jaxsim import cli
from jaxsim.models.labour import calibration as labour_calibration
from jaxsim.models.labour import forecast as lf
from jaxsim.nyc import boroughs
from jaxsim.nyc import economy as nyc_economy
from jaxsim.nyc import economy_data as data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_forecast_unemployment.py"
AGENTS = 1000
START = pd.Period("2020-08", "M")
SPAN = 7  # 2020-08 .. 2021-02: the script's span for origins 2020-10 .. 2020-12, horizon 2
STEPS = 60  # Adam steps: enough to move the fit, few enough to be quick


@pytest.fixture(scope="module")
def span():
    population = boroughs.five_borough_population(AGENTS, seed=0)
    setup = nyc_economy.economy_setup(population, START, SPAN, seed=0)
    signals = lf.simulate_signals(setup, seed=0)
    unemployment = data.load_unemployment()
    claims = data.load_ui_claims().claims_rate(unemployment, START, SPAN)
    return setup, signals, setup.observed_rate, claims


def forecast(span, origin=4, observed=None, claims=None, signals=None, **kwargs):
    setup, span_signals, observed_all, claims_all = span
    signals = span_signals if signals is None else signals
    settings = dict(train_months=9, horizon=2, members=64, steps=STEPS, seed=3, regions=setup.has_force)
    settings.update(kwargs)
    return lf.model_forecast(setup.params.economy, observed_all if observed is None else observed,
                             claims_all if claims is None else claims, signals, origin, **settings)


# ------------------------------------------------------------------ leakage
def test_forward_run_signals_ignore_the_observed_claims(span):
    setup, signals, _, _ = span
    assert signals.willingness.shape == (SPAN, 5) and signals.case_signal.shape == (SPAN, 5)
    assert np.all((signals.willingness > 0.5) & (signals.willingness <= 1)) and np.all(signals.case_signal >= 0)
    claims = np.asarray(setup.world.inputs["claims_rate"]).copy()
    claims[1:] = 0.4  # any later claims: the run holds the first month's
    altered = lf.simulate_signals(type(setup)(**{**vars(setup), "world": setup.world.with_inputs(
        claims_rate=jnp.asarray(claims))}), seed=0)
    np.testing.assert_array_equal(altered.willingness, signals.willingness)
    np.testing.assert_array_equal(altered.case_signal, signals.case_signal)


def test_forecast_reads_no_observation_after_the_origin(span):
    _, _, observed, claims = span
    origin = 4
    base = forecast(span, origin)
    later_observed, later_claims = observed.copy(), claims.copy()
    later_observed[origin + 1:] = 0.5
    later_claims[origin + 1:] = 0.3
    changed = forecast(span, origin, later_observed, later_claims)
    truncated = forecast(span, origin, observed[: origin + 1], claims[: origin + 1])
    np.testing.assert_array_equal(changed.members, base.members)
    np.testing.assert_array_equal(truncated.members, base.members)
    np.testing.assert_array_equal(truncated.free_run, base.free_run)
    # ... while what is known at the origin does move it.
    known = observed.copy()
    known[origin] += 0.01
    assert not np.allclose(forecast(span, origin, known).members, base.members)


def test_members_restart_from_the_origin_and_spread_grows(span):
    setup, signals, observed, claims = span
    origin = 4
    result = forecast(span, origin, members=400, horizon=2)
    assert result.members.shape == (400, 2, 5) and result.window == (0, 5)
    assert np.all((result.members >= 0) & (result.members <= 1))
    step = np.asarray(lf.one_step(result.fit.params, observed[origin].astype(np.float32),
                                  jnp.asarray(signals.willingness[origin]), jnp.asarray(signals.case_signal[origin]),
                                  jnp.asarray(claims[origin], jnp.float32)))
    # Horizon 1: the flows from the observed origin month (claims known) plus centred shocks.
    spread = result.members[:, 0].std(axis=0)
    assert np.all(spread > 0)
    assert np.all(np.abs(result.members[:, 0].mean(axis=0) - step) < 4 * spread / np.sqrt(400) + 1e-6)
    widths = np.quantile(result.members, 0.95, axis=0) - np.quantile(result.members, 0.05, axis=0)
    assert widths[1].mean() > widths[0].mean()
    # Without the restart (free-run) the forecast starts from the fitted trajectory instead.
    assert result.free_run.shape == (2, 5) and not np.allclose(result.free_run[0], step)


def test_one_step_matches_the_expected_flows(span):
    setup, signals, observed, claims = span
    problem = labour_calibration.LabourCalibrationProblem(
        params=setup.params.economy, observed=observed, willingness=signals.willingness,
        case_signal=signals.case_signal, claims_rate=claims, initial_unemployment=observed[0], train_months=SPAN,
    )
    expected = np.asarray(labour_calibration.expected_unemployment(setup.params.economy, problem))
    rate = observed[0].astype(np.float32)
    for m in range(1, SPAN):
        rate = np.asarray(lf.one_step(setup.params.economy, rate, jnp.asarray(signals.willingness[m - 1]),
                                      jnp.asarray(signals.case_signal[m - 1]), jnp.asarray(claims[m - 1])))
        np.testing.assert_allclose(rate, expected[m], atol=1e-6)
    residuals = lf.one_step_residuals(setup.params.economy, observed, signals.willingness, signals.case_signal, claims)
    assert residuals.shape == (SPAN - 1, 5)
    first = lf.one_step(setup.params.economy, observed[0], jnp.asarray(signals.willingness[0]),
                        jnp.asarray(signals.case_signal[0]), jnp.asarray(claims[0]))
    np.testing.assert_allclose(residuals[0], observed[1] - np.asarray(first), atol=1e-6)


def test_bootstrap_refits_give_one_parameter_set_per_group(span):
    result = forecast(span, 4, members=30, refits=4, refit_steps=20)
    assert result.members.shape == (30, 2, 5) and "4 bootstrap refits" in result.shocks
    assert np.all(np.isfinite(result.members))


def _grouped_signals(signals):
    """The span's signals with willingness from 3 behaviour groups (answers from 0.3 to
    1.0) and random shares per borough; the regional willingness their share-weighted mean."""
    rng = np.random.default_rng(7)
    groups = np.clip(rng.uniform(0.3, 1.0, (SPAN, 3)), 0, 1).astype(np.float32)
    groups[:, 2] = 1.0  # an answer at the end of the range
    share = rng.dirichlet(np.ones(3), size=5).astype(np.float32)
    plain = dataclasses.replace(signals, willingness=(groups @ share.T).astype(np.float32))
    return plain, plain.with_groups(groups, share)


def test_grouped_willingness_through_fits_steps_and_refits(span):
    """Signals with each group's answers: at the alignment's (1, 0) the forecast equals the
    one on the regional means (the groups' rows line up with the signals' months, the pad
    row included); fitted with the alignment, the one-month step equals the expected flows
    month by month, and refits run per group of members."""
    setup, signals, observed, claims = span
    plain, grouped = _grouped_signals(signals)
    for origin in (4, 5):  # 5: the horizon reaches the signals' end (a pad row)
        kwargs = dict(members=40, fit_names=labour_calibration.DEFAULT_FIT)
        np.testing.assert_allclose(forecast(span, origin, signals=grouped, **kwargs).members,
                                   forecast(span, origin, signals=plain, **kwargs).members, atol=2e-5)
    names = labour_calibration.DEFAULT_FIT + labour_calibration.WILLINGNESS_ALIGNMENT
    result = forecast(span, 5, signals=grouped, members=30, refits=2, refit_steps=20, fit_names=names)
    assert result.members.shape == (30, 2, 5) and np.all(np.isfinite(result.members))
    assert "2 bootstrap refits" in result.shocks and "non-finite" not in result.shocks
    bent = setup.params.economy.replace(willingness_alignment_scale=jnp.float32(0.6),
                                        willingness_alignment_offset=jnp.float32(0.8))
    problem = labour_calibration.LabourCalibrationProblem(
        params=bent, observed=observed, willingness=grouped.willingness, case_signal=grouped.case_signal,
        claims_rate=claims, initial_unemployment=observed[0], train_months=SPAN,
        willingness_groups=grouped.willingness_groups, group_share=grouped.group_share,
    )
    expected = np.asarray(labour_calibration.expected_unemployment(bent, problem))
    rate = observed[0].astype(np.float32)
    for m in range(1, SPAN):
        rate = np.asarray(lf.one_step(bent, rate, jnp.asarray(grouped.willingness_groups[m - 1]),
                                      jnp.asarray(grouped.case_signal[m - 1]), jnp.asarray(claims[m - 1]),
                                      jnp.asarray(grouped.group_share)))
        np.testing.assert_allclose(rate, expected[m], atol=1e-6)
    shortcut = labour_calibration.expected_unemployment(bent, dataclasses.replace(
        problem, willingness_groups=None, group_share=None))
    assert np.max(np.abs(np.asarray(shortcut) - expected)) > 1e-4  # the bent map is not the regional mean's


# ------------------------------------------------------------------ pieces
def test_windows_origins_and_carry_forward():
    assert lf.training_window(2, 9) == (0, 3)
    assert lf.training_window(20, 9) == (12, 9)
    months = data.load_unemployment().months
    indices = lf.origin_indices(months, pd.Period("2020-10", "M"), pd.Period("2022-06", "M"), horizon=4,
                                train_months=9)
    assert len(indices) == 21 and indices[0] == 2 and months[indices[-1]] == pd.Period("2022-06", "M")
    values = np.arange(10.0).reshape(5, 2)
    carried = lf.carry_forward(values, 3)
    np.testing.assert_array_equal(carried[3:], [[4.0, 5.0], [4.0, 5.0]])
    np.testing.assert_array_equal(carried[:3], values[:3])


@pytest.mark.parametrize("first, last, horizon, train, message", [
    ("2020-08", "2021-01", 4, 9, "--first-origin 2020-08"),
    ("2020-10", "2023-10", 4, 9, "--last-origin 2023-10"),
    ("2020-10", "2021-01", 4, 1, "--train-months must be >= 2"),
    ("2020-10", "2021-01", 0, 9, "--horizon must be >= 1"),
    ("2021-01", "2020-10", 4, 9, "is before --first-origin"),
])
def test_origin_errors_name_the_setting(first, last, horizon, train, message):
    months = data.load_unemployment().months
    with pytest.raises(lf.ForecastInputError, match=message):
        lf.origin_indices(months, pd.Period(first, "M"), pd.Period(last, "M"), horizon=horizon, train_months=train)


def test_claims_paths_start_at_the_origin_and_walk():
    rng = np.random.default_rng(0)
    window = np.array([[0.10, 0.05], [0.08, 0.04], [0.09, 0.05]])
    paths = lf.claims_paths(window, 3, 500, rng)
    assert paths.shape == (500, 3, 2)
    np.testing.assert_allclose(paths[:, 0], np.broadcast_to(window[-1], (500, 2)), rtol=1e-6)
    logs = np.log(paths)
    assert np.all(logs[:, 2].std(axis=0) > logs[:, 1].std(axis=0)) and np.all(logs[:, 1].std(axis=0) > 0)
    # One citywide step a month: the regions' log rates move together.
    np.testing.assert_allclose(logs[:, 2, 0] - logs[:, 2, 1], np.log(window[-1, 0] / window[-1, 1]), atol=1e-5)
    flat = lf.claims_paths(np.full((4, 2), 0.05), 3, 10, rng)
    np.testing.assert_allclose(flat, 0.05, rtol=1e-6)


def test_shock_pool_scales_residuals_or_falls_back_to_changes():
    residuals = np.array([[0.01, -0.02], [0.03, 0.00], [-0.01, 0.02]])
    pool, source = lf.shock_pool(residuals, np.zeros((4, 2)), fitted=2)
    centred = residuals.ravel() - residuals.mean()
    np.testing.assert_allclose(pool, centred * np.sqrt(6 / 4))
    assert "one-step residuals" in source
    window = np.array([[0.10, 0.20], [0.12, 0.19], [0.15, 0.17]])
    pool, source = lf.shock_pool(residuals, window, fitted=6)
    changes = np.diff(window, axis=0).ravel()
    np.testing.assert_allclose(np.sort(pool), np.sort(changes - changes.mean()))
    assert "observed monthly changes" in source


def test_scores_point_forecast_and_ensemble():
    truth = np.array([[0.10, 0.20], [0.12, 0.18]])
    point = np.array([[[0.11, 0.20], [0.11, 0.20]]])
    s = lf.score(point, truth)
    error = 100 * np.abs(point[0] - truth)
    assert s["mae"] == pytest.approx(error.mean()) and s["wis"] == pytest.approx(error.mean())
    assert s["nd"] == pytest.approx(error.sum() / (100 * truth.sum()))
    np.testing.assert_allclose(s["wis_by_horizon"], error.mean(axis=1))
    members = truth[None] + np.linspace(-0.02, 0.02, 201)[:, None, None]
    wide = lf.score(members, truth)
    assert wide["coverage_90"] == 1.0 and wide["nd"] == pytest.approx(0.0, abs=1e-12) and wide["wis"] > 0
    off = lf.score(members + 0.05, truth)
    assert off["coverage_90"] == 0.0 and off["wis"] > wide["wis"]
    masked = lf.score(point, truth, regions=np.array([True, False]))
    assert masked["points"] == 2 and masked["mae"] == pytest.approx(error[:, 0].mean())


def test_rolling_origin_summary_and_targets(span):
    setup, signals, observed, claims = span
    months = pd.period_range(START, periods=SPAN, freq="M")
    result = lf.rolling_origin(
        setup.params.economy, months, observed, claims, signals, [2, 3], region_names=boroughs.BOROUGHS,
        horizon=2, members=40, steps=STEPS, regions=setup.has_force,
    )
    table = result.per_origin
    assert len(table) == 2 * len(lf.METHODS) and list(table["origin"].unique()) == ["2020-10", "2020-11"]
    persistence = table[table["method"] == "persistence"]
    np.testing.assert_allclose(persistence["wis"], persistence["mae"])
    assert persistence["coverage_90"].isna().all() and not persistence["beats_persistence_nd"].any()
    model = table[table["method"] == "model"]
    np.testing.assert_array_equal(model["beats_persistence_nd"].to_numpy(),
                                  model["nd"].to_numpy() < persistence["nd"].to_numpy())
    assert len(result.forecasts) == 2 * len(lf.METHODS) * 2 * 5
    point = result.forecasts[(result.forecasts["method"] == "persistence") & (result.forecasts["horizon"] == 2)]
    np.testing.assert_allclose(point["median"].to_numpy(), 100 * np.concatenate([observed[2], observed[3]]))
    summary = lf.summarise(table, result.forecasts)
    assert list(summary["method"]) == list(lf.METHODS)
    row = summary.set_index("method").loc["model"]
    assert row["beats_persistence_nd"] == pytest.approx(model["beats_persistence_nd"].mean())
    assert row["wis"] == pytest.approx(model["wis"].mean()) and 0 <= row["coverage_90"] <= 1
    checks = lf.targets(summary)
    assert len(checks) == 3 and all(isinstance(met, bool) for _, met, _ in checks)
    assert checks[1][1] == bool(row["wis"] < summary.set_index("method").loc["persistence", "wis"])


# ------------------------------------------------------------------ the script
@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def test_script_writes_its_tables(script, span, tmp_path, capsys):
    out = tmp_path / "bench"
    code = cli.run_cli(script.main, [
        "--borough-agents", str(AGENTS), "--first-origin", "2020-10", "--last-origin", "2020-12", "--horizon", "2",
        "--members", "40", "--fit-steps", str(STEPS), "--out", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Targets (the model's ensemble)" in printed and "ND below persistence's" in printed
    per_origin = pd.read_csv(out / "per_origin.csv")
    assert len(per_origin) == 3 * len(lf.METHODS) and list(per_origin["train_months"].unique()) == [3, 4, 5]
    assert len(pd.read_csv(out / "forecasts.csv")) == 3 * len(lf.METHODS) * 2 * 5
    assert set(pd.read_csv(out / "summary.csv")["method"]) == set(lf.METHODS)


@pytest.mark.parametrize("argv, message", [
    (["--first-origin", "2020-08"], "--first-origin 2020-08: origins must lie in 2020-09..2023-08"),
    (["--last-origin", "2023-10"], "--last-origin 2023-10: origins must lie in"),
    (["--train-months", "1"], "--train-months must be >= 2"),
    (["--first-origin", "2020-13"], "--first-origin: month '2020-13' is not a month"),
    (["--members", "0"], "--members must be >= 1"),
    (["--fit", "wages"], "--fit: cannot fit ['wages']"),
])
def test_script_bad_input_is_one_line(script, argv, message, capsys, tmp_path):
    assert cli.run_cli(script.main, argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()
