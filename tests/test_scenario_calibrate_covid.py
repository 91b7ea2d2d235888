"""scenarios/calibrate_covid.py end to end on small populations, and its input errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc import synthesis as synthetic
from jaxsim.population_io import save_population

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scenarios" / "calibrate_covid.py"
PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--agents", "3000", "--train-weeks", "2", "--test-weeks", "1", "--steps", "4",
         "--seeds", "2", "--members", "4"]
TOP_KEYS = {"nta", "start_week", "train_weeks", "test_weeks", "method", "fitted_parameters",
            "loss_curve", "seconds", "stopped", "simulator_runs", "heldout_metrics", "baselines",
            "observed", "forecast", "epiweeks", "population", "versions"}
METRICS = {"mae", "rmse", "nd"}


@pytest.fixture(scope="module")
def scenario():
    return load_script(SCRIPT)


def finite_metrics(metrics):
    assert METRICS <= set(metrics)
    return all(math.isfinite(metrics[k]) and metrics[k] >= 0 for k in METRICS)


def check_outputs(out: Path, *, method: str, weeks: int, train: int, agents: int, steps: int) -> dict:
    result = json.loads((out / "calibration.json").read_text())
    assert TOP_KEYS <= set(result)
    assert result["method"] == method
    assert result["nta"] == "QN0103" and result["start_week"] == 202047
    assert result["train_weeks"] == train and result["test_weeks"] == weeks - train
    assert result["epiweeks"] == [202047, 202048, 202049][:weeks]
    assert len(result["observed"]) == weeks
    for key in ("mean", "q05", "q95"):
        assert len(result["forecast"][key]) == weeks
        assert all(math.isfinite(v) for v in result["forecast"][key])
    assert all(lo <= hi for lo, hi in zip(result["forecast"]["q05"], result["forecast"]["q95"]))
    rate = result["fitted_parameters"]["transmission_rate"]
    assert len(rate) == weeks and all(0 <= r <= 20 for r in rate)
    assert len(result["loss_curve"]) == steps and all(math.isfinite(v) for v in result["loss_curve"])
    assert result["stopped"] == "completed"
    assert result["simulator_runs"] == steps * 2
    assert result["seconds"] > 0
    assert finite_metrics(result["heldout_metrics"])
    held_scores = result["heldout_metrics"]
    assert held_scores["wis"] >= 0 and 0 <= held_scores["coverage_50"] <= held_scores["coverage_90"] <= 1
    # Persistence is a point forecast: its WIS is its MAE.
    assert result["baselines"]["persistence"]["wis"] == pytest.approx(result["baselines"]["persistence"]["mae"])
    assert finite_metrics(result["baselines"]["persistence"])
    free = result["baselines"]["gradient_free"]
    assert finite_metrics(free)
    assert free["seconds"] > 0 and 0 < free["simulator_runs"] <= result["simulator_runs"]
    assert result["population"]["agents"] == agents
    assert result["versions"]["jax"]
    # Held-out metrics are those of the ensemble mean over the held-out weeks.
    held = np.asarray(result["forecast"]["mean"][train:]) - np.asarray(result["observed"][train:])
    assert result["heldout_metrics"]["mae"] == pytest.approx(np.mean(np.abs(held)), rel=1e-6)
    assert (out / "fit.png").read_bytes()[:8] == PNG
    assert not list(out.glob(".staging-*")), "staging folder left behind"
    assert not list(out.glob(".*tmp*")), "temporary file left behind"
    return result


def test_params_method_end_to_end(scenario, tmp_path, capsys):
    out = tmp_path / "params"
    assert scenario.main([*SMALL, "--out", str(out)]) == 0
    result = check_outputs(out, method="params", weeks=3, train=2, agents=3000, steps=4)
    # Observed cases are scaled to 3,000 of Astoria's 47,303 people.
    observed = nyc_cases.observed_cases(["QN0103"])
    start = observed.week_index(202047)
    np.testing.assert_allclose(result["observed"], observed.cases[start : start + 3] * 3000 / 47303, rtol=1e-6)
    # Held-out weeks repeat the last fitted week's rate; persistence repeats the last count.
    rate = result["fitted_parameters"]["transmission_rate"]
    assert rate[2] == rate[1]
    assert result["baselines"]["persistence"]["forecast"] == [result["observed"][1]]
    printed = capsys.readouterr().out
    for row in ("gradient fit (params)", "persistence", "gradient-free (Nelder-Mead)"):
        assert row in printed


def test_cma_es_baseline_on_the_same_budget(scenario, tmp_path, capsys):
    """``--gradient-free cma-es``: 8 Adam steps x 2 seeds = 16 runs, one CMA-ES generation of
    8 parameter sets x 2 seeds."""
    out = tmp_path / "cma"
    assert scenario.main([*SMALL, "--steps", "8", "--gradient-free", "cma-es", "--out", str(out)]) == 0
    result = check_outputs(out, method="params", weeks=3, train=2, agents=3000, steps=8)
    free = result["baselines"]["gradient_free"]
    assert free["method"] == "cma-es" and free["simulator_runs"] == 16 and len(free["loss_curve"]) == 1
    assert "gradient-free (CMA-ES)" in capsys.readouterr().out


def test_random_walk_forecast(scenario, tmp_path):
    """``--forecast random-walk``: each member's held-out R(t) its own path. The training
    weeks and the first held-out week (its cases come from exposures under the fitted
    rates: a 5-day lag) are unchanged; the second held-out week differs."""
    last, walk = tmp_path / "last", tmp_path / "walk"
    two = [*SMALL, "--test-weeks", "2", "--observation-noise", "none"]
    assert scenario.main([*two, "--forecast", "last", "--out", str(last)]) == 0
    assert scenario.main([*two, "--forecast", "random-walk", "--out", str(walk)]) == 0
    a = json.loads((last / "calibration.json").read_text())
    b = json.loads((walk / "calibration.json").read_text())
    assert a["forecast_method"] == "last" and b["forecast_method"] == "random-walk"
    np.testing.assert_allclose(b["forecast"]["mean"][:2], a["forecast"]["mean"][:2], rtol=1e-6)
    assert b["forecast"]["mean"][3] != a["forecast"]["mean"][3]
    assert finite_metrics(b["heldout_metrics"]) and math.isfinite(b["heldout_metrics"]["wis"])


def test_default_forecast_is_anchored_noisy_and_scored_next_to_log_linear(scenario, tmp_path, capsys):
    """The default forecast: mean-reverting R(t) paths, anchored to the last two fitted
    weeks, negative-binomial counts; the log-linear baseline is scored alongside. With
    anchoring the ensemble's first held-out week is the un-anchored one times the ratio
    of observed to simulated over the last two fitted weeks."""
    plain, anchored = tmp_path / "plain", tmp_path / "anchored"
    common = [*SMALL, "--test-weeks", "2", "--observation-noise", "none", "--forecast", "mean-reverting"]
    assert scenario.main([*common, "--anchor", "off", "--out", str(plain)]) == 0
    assert scenario.main([*common, "--out", str(anchored)]) == 0
    a = json.loads((plain / "calibration.json").read_text())
    b = json.loads((anchored / "calibration.json").read_text())
    assert b["forecast_settings"]["anchor"] == "on" and b["forecast_method"] == "mean-reverting"
    ratio = (sum(b["observed"][:2]) + 0.5) / (sum(a["forecast"]["mean"][:2]) + 0.5)
    assert ratio != pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(b["forecast"]["mean"][:2], a["forecast"]["mean"][:2], rtol=1e-6)
    np.testing.assert_allclose(b["forecast"]["mean"][2:], np.asarray(a["forecast"]["mean"][2:]) * ratio, rtol=1e-5)
    log_linear = b["baselines"]["log_linear"]
    assert finite_metrics(log_linear) and 0 <= log_linear["coverage_90"] <= 1
    assert "log-linear trend" in capsys.readouterr().out
    noisy = tmp_path / "noisy"
    assert scenario.main([*SMALL, "--test-weeks", "2", "--out", str(noisy)]) == 0
    c = json.loads((noisy / "calibration.json").read_text())
    assert c["forecast_settings"]["observation_noise"] == "nb" and c["forecast_settings"]["dispersion"] >= 2.0
    # Members are counts: the 4-member means are multiples of 1/4, unlike the expected values.
    assert all(float(v * 4).is_integer() for v in c["forecast"]["mean"])
    assert not all(float(v * 4).is_integer() for v in b["forecast"]["mean"])


def test_an_ensemble_of_bootstrap_fits_shares_the_members(scenario, tmp_path):
    out = tmp_path / "fits"
    assert scenario.main([*SMALL, "--fits", "2", "--out", str(out)]) == 0
    result = check_outputs(out, method="params", weeks=3, train=2, agents=3000, steps=4)
    fits = result["fits"]
    assert fits["count"] == 2 and len(fits["transmission_rate"]) == 2
    # The first fit is the reported one; the second, to resampled cases, differs.
    assert fits["transmission_rate"][0] == result["fitted_parameters"]["transmission_rate"][:2]
    assert fits["transmission_rate"][1] != fits["transmission_rate"][0]


def test_network_method_end_to_end(scenario, tmp_path):
    out = tmp_path / "network"
    assert scenario.main([*SMALL, "--method", "network", "--out", str(out)]) == 0
    result = check_outputs(out, method="network", weeks=3, train=2, agents=3000, steps=4)
    features = np.asarray(result["network"]["features"])
    assert features.shape == (3, 7)
    # The held-out week's case feature is the last training week's (no peeking).
    assert features[2, 6] == pytest.approx(np.log1p(result["observed"][1]) / 5, rel=1e-5)


def test_population_directory_and_non_finite_stop(scenario, tmp_path, monkeypatch, capsys):
    """A population directory, and a fit that meets a non-finite loss: it stops, keeps the
    last good parameters, says so, and still writes every output."""
    population = synthetic.synthesize_nyc_population(["QN0103"], seed=2, max_agents=1500)
    directory = save_population(population, tmp_path / "pop")
    real_fit = scenario.calibration.fit

    def fit_with_nan_rate(*args, **kwargs):
        return real_fit(*args, **{**kwargs, "learning_rate": float("nan")})

    monkeypatch.setattr(scenario.calibration, "fit", fit_with_nan_rate)
    out = tmp_path / "nan"
    argv = ["--population", str(directory), "--train-weeks", "2", "--test-weeks", "1", "--steps", "3",
            "--seeds", "2", "--members", "3", "--out", str(out)]
    assert scenario.main(argv) == 0
    result = json.loads((out / "calibration.json").read_text())
    assert result["stopped"].startswith("stopped at step 1")
    assert len(result["loss_curve"]) == 1
    # Step 0's loss was that of the starting rate; nothing finite came after it.
    assert "fallback" in result
    assert result["fitted_parameters"]["transmission_rate"] == pytest.approx([2.5, 2.5, 2.5])
    assert finite_metrics(result["heldout_metrics"])
    held_scores = result["heldout_metrics"]
    assert held_scores["wis"] >= 0 and 0 <= held_scores["coverage_50"] <= held_scores["coverage_90"] <= 1
    # Persistence is a point forecast: its WIS is its MAE.
    assert result["baselines"]["persistence"]["wis"] == pytest.approx(result["baselines"]["persistence"]["mae"])
    assert result["population"]["agents"] == 1500
    assert result["case_scale"] == pytest.approx(1500 / 47303)
    assert "warning:" in capsys.readouterr().err
    assert (out / "fit.png").read_bytes()[:8] == PNG


@pytest.fixture(scope="module")
def cases_with_gap(tmp_path_factory):
    """The case file with QN0103's count of epiweek 202048 removed."""
    frame = pd.read_csv(nyc_cases.DATA_DIR / nyc_cases.WEEKLY_CASES_FILE)
    frame.loc[(frame["nta_id"] == "QN0103") & (frame["epiweek"] == 202048), "cases_week"] = np.nan
    path = tmp_path_factory.mktemp("cases") / "cases.csv"
    frame.to_csv(path, index=False)
    return path


BAD_INPUTS = [
    (["--nta", "XX0000"], ["XX0000", "QN0103"]),
    (["--start-week", "199901"], ["199901"]),
    (["--train-weeks", "1"], ["--train-weeks", "1"]),
    (["--test-weeks", "0"], ["--test-weeks", "0"]),
    (["--start-week", "202238", "--train-weeks", "3", "--test-weeks", "2"], ["202238", "4 weeks are available"]),
    (["--fit", "transmission_rate,bogus"], ["bogus"]),
    (["--fit", "exposed_days"], ["exposed_days"]),
    (["--steps", "0"], ["--steps", "0"]),
    (["--seeds", "0"], ["--seeds", "0"]),
    (["--members", "0"], ["--members"]),
    (["--reversion", "1.5"], ["--reversion", "1.5"]),
    (["--fits", "0"], ["--fits", "0"]),
    (["--fits", "20", "--members", "4"], ["--fits 20", "--members (4)"]),
    (["--smoothing", "-1"], ["--smoothing", "-1"]),
    (["--agents", "0"], ["--agents"]),
    (["--agents", "900000"], ["900000"]),
    (["--population", "/nonexistent/pop"], ["/nonexistent/pop"]),
    (["--method", "network", "--fit", "susceptibility"], ["susceptibility"]),
    ("GAP", ["202048"]),
]


@pytest.mark.parametrize("args, messages", BAD_INPUTS)
def test_bad_input_is_one_clear_line(args, messages, tmp_path, cases_with_gap):
    if args == "GAP":
        args = ["--cases", str(cases_with_gap), "--start-week", "202047"]
    out = tmp_path / "o"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    for message in messages:
        assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
