"""scenarios/nyc_economy.py end to end on a small five-borough population: outputs,
calibration, the stimulus counterfactual, the bundled LLM, reproducibility and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script, require_llama_cpp_or_skip

from jaxsim.nyc import boroughs
from jaxsim.population_io import save_population

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scenarios" / "nyc_economy.py"
SMALL = ["--borough-agents", "2500", "--months", "3", "--no-progress"]


@pytest.fixture(scope="module")
def scenario():
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def full_run(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("economy") / "run"
    code = scenario.main(SMALL + [
        "--out", str(out), "--calibrate", "--train-months", "2", "--fit-steps", "200",
        "--stimulus", "1000", "--stimulus-months", "1", "--members", "3",
    ])
    assert code == 0
    return out


def test_outputs_daily_epidemic_and_monthly_economy(full_run):
    table = pd.read_csv(full_run / "metrics.csv")
    assert len(table) == 92 and table["date"].iloc[0] == "2020-08-01" and table["date"].iloc[-1] == "2020-10-31"
    assert {"susceptible", "infected", "new_cases", "isolating", "working"} <= set(table.columns)
    ends = table[table["month_end"] == 1]
    assert list(ends["date"]) == ["2020-08-31", "2020-09-30", "2020-10-31"]
    for name in ("unemployment_rate", "labour_force", "consumption", "tax", "transfers", "willingness"):
        columns = [f"{name}_{b}" for b in boroughs.BOROUGHS]
        assert set(columns) <= set(table.columns), name
        assert ends[columns].notna().all().all() and table.loc[table["month_end"] == 0, columns].isna().all().all()
    rates = ends[[f"unemployment_rate_{b}" for b in boroughs.BOROUGHS]].to_numpy()
    assert np.all((rates >= 0) & (rates <= 1))
    np.testing.assert_allclose(ends["city_tax"], ends["city_transfers"], rtol=1e-5)
    assert (full_run / "economy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(full_run.glob(".staging-*")), "staging folder left behind"


def test_run_json_reports_data_calibration_and_counterfactual(full_run):
    run = json.loads((full_run / "run.json").read_text())
    assert run["start_month"] == "2020-08" and run["months"] == 3 and run["days"] == 92 and run["seed"] == 0
    assert run["population"]["agents"] == 2500 and run["labour"]["source"] == "sampled"
    assert set(run["labour"]["labour_force_by_borough"]) == set(boroughs.BOROUGHS)
    unemployment = run["unemployment"]
    assert unemployment["months"] == ["2020-08", "2020-09", "2020-10"]
    assert unemployment["observed"][0][0] == pytest.approx(0.198)  # Bronx, August 2020
    assert len(unemployment["simulated"]) == 3 and unemployment["fit_to_observed"]["points"] == 10
    calibration = run["calibration"]
    assert set(calibration["fitted"]) == {"separation_logit", "hiring_logit", "separation_case_sensitivity",
                                          "hiring_claims_sensitivity"}
    assert calibration["steps"] == 200 and calibration["loss_curve"][-1] < calibration["loss_curve"][0]
    for part in ("agents", "expected_flows"):
        scores = calibration[part]
        assert scores["test_months"] == 1 and scores["test"]["points"] == 5
        assert {"mae", "nd", "rmse"} <= set(scores["test"]) and scores["persistence_test"]["mae"] >= 0
    # The held-out score says what it is: observed claims in the held-out months.
    assert "not a forecast" in calibration["heldout_note"] and "observed UI claims" in calibration["heldout_note"]
    counterfactual = run["counterfactual"]
    assert counterfactual["members"] == 3 and counterfactual["stimulus"]["paid_run_months"] == [1]
    extra = counterfactual["differences"]["stimulus"]["extra_consumption_usd"]
    assert extra["members"] == 3 and extra["mean"] > 0 and extra["share_positive"] == 1.0
    by_month = counterfactual["by_month"]
    assert by_month[0]["extra_consumption_usd"]["mean"] == 0.0  # nothing differs before the payment
    assert by_month[0]["extra_unemployment_rate_pp"]["mean"] == 0.0
    assert by_month[1]["extra_consumption_usd"]["mean"] > 0.5 * counterfactual["stimulus_paid_usd_mean"]
    assert run["parameters"]["economy"]["stimulus"]["usd_per_eligible_adult_per_paid_month"] == 1000.0
    assert run["timing"]["compile_seconds"] > 0 and run["timing"]["counterfactual_seconds"] > 0


def test_same_seed_same_metrics(scenario, tmp_path):
    for name in ("a", "b"):
        assert scenario.main(SMALL + ["--out", str(tmp_path / name)]) == 0
    a = pd.read_csv(tmp_path / "a" / "metrics.csv")
    b = pd.read_csv(tmp_path / "b" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)


def test_population_directory_with_soc_codes(scenario, tmp_path):
    # The default population's size and contacts: the compiled program is reused.
    population = boroughs.five_borough_population(2500, seed=0, cached=False)
    rng = np.random.default_rng(0)
    codes = np.where(rng.random(population.size) < 0.5, "35-2014", "")
    codes[:5] = "15-1252"
    population.strings = {"soc_code": codes.astype(object)}
    save_population(population, tmp_path / "pop")
    out = tmp_path / "run"
    assert scenario.main(SMALL + ["--population", str(tmp_path / "pop"), "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["labour"]["source"] == "soc_code"
    assert run["labour"]["labour_force"] == int(np.sum(codes != ""))
    assert run["labour"]["occupations"]["management_professional"] == 5


def test_bundled_llm_sets_willingness(scenario, tmp_path):
    require_llama_cpp_or_skip()
    out = tmp_path / "llm"
    assert scenario.main(SMALL[:2] + ["--months", "1", "--behavior", "llm-local", "--archetypes", "gender",
                                      "--llm-cache", str(tmp_path / "cache.sqlite"), "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    llm = run["llm"]
    assert llm["question"] == "willingness to work this month" and llm["archetypes"] == ["gender=male", "gender=female"]
    assert llm["llm_calls"] + llm["cache_hits"] >= 2 and len(llm["months"]) == 1
    assert "willing to go to work this month" in llm["example_prompt"][1]["content"]
    for month in llm["months"]:
        assert all(0 <= p <= 1 for p in month["probabilities"].values())
    table = pd.read_csv(out / "metrics.csv")
    assert table["working"].max() > 0


def test_llm_willingness_calibrated_with_its_alignment_per_archetype(scenario, tmp_path):
    """--calibrate with LLM archetypes fits the alignment of each archetype's answer
    (aligned, then averaged with the boroughs' shares of the archetype)."""
    from jaxsim.models.labour import calibration as labour_calibration

    require_llama_cpp_or_skip()
    out = tmp_path / "llm"
    names = labour_calibration.DEFAULT_FIT + labour_calibration.WILLINGNESS_ALIGNMENT
    assert scenario.main(SMALL + ["--behavior", "llm-local", "--archetypes", "gender", "--calibrate",
                                  "--train-months", "2", "--fit", ",".join(names), "--fit-steps", "100",
                                  "--llm-cache", str(tmp_path / "cache.sqlite"), "--out", str(out)]) == 0
    calibration = json.loads((out / "run.json").read_text())["calibration"]
    assert set(calibration["fitted"]) == set(names) and calibration["willingness_groups"] == 2
    assert calibration["stopped"] == "completed" and calibration["loss_curve"][-1] < calibration["loss_curve"][0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--months", "0"], "--months must be >= 1"),
        (["--start-month", "2020/08"], "is not a month like 2020-08"),
        (["--start-month", "2019-05"], "the unemployment data covers 2020-08 to 2023-12"),
        (["--start-month", "2023-01"], "the case data for .* ends with the week of 2022-10"),
        (["--stimulus", "1000"], "--stimulus needs --stimulus-months"),
        (["--stimulus", "1000", "--stimulus-months", "5"], "month 5 is outside the run's months 0..2"),
        (["--stimulus", "-1", "--stimulus-months", "1"], "amount must be a finite number of USD >= 0"),
        (["--stimulus-months", "1"], "need --stimulus USD"),
        (["--train-months", "2"], "--train-months applies with --calibrate only"),
        (["--calibrate", "--train-months", "7"], r"--train-months must be in 2..3"),
        (["--calibrate", "--fit", "hiring_logit,transmission_rate"], r"cannot fit \['transmission_rate'\]"),
        (["--imported-infections", "-2"], "--imported-infections must be >= 0"),
        (["--borough-agents", "3"], "--borough-agents must be >= 5"),
        (["--llm-url", "http://x"], "only apply with --behavior llm or llm-local"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(scenario, tmp_path, capsys, arguments, message):
    from jaxsim import cli

    out = tmp_path / "bad"
    assert cli.run_cli(scenario.main, SMALL + ["--out", str(out)] + arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(message, error), error
    assert not out.exists()


def test_population_without_boroughs_is_refused(scenario, tmp_path, capsys):
    from conftest import random_population

    from jaxsim import cli

    save_population(random_population(400), tmp_path / "pop")
    out = tmp_path / "run"
    assert cli.run_cli(scenario.main, ["--population", str(tmp_path / "pop"), "--months", "1", "--out", str(out)]) == 2
    assert "needs each agent's borough" in capsys.readouterr().err
    assert not out.exists()


def test_calibration_fits_the_market_by_default_and_the_alignment_on_request(scenario):
    """The default --fit is the market alone (fitting the willingness alignment too
    worsened the benchmark's WIS, see jaxsim.models.labour.calibration.DEFAULT_FIT); the
    alignment is fittable by name."""
    from jaxsim.models.labour import calibration as labour_calibration

    def fit_of(extra):
        args = scenario.parse_args(["--calibrate", "--months", "4"] + extra)
        scenario.check_args(args)
        return tuple(args.fit.split(","))

    assert fit_of([]) == labour_calibration.DEFAULT_FIT
    named = ",".join(labour_calibration.DEFAULT_FIT + labour_calibration.WILLINGNESS_ALIGNMENT)
    assert fit_of(["--behavior", "llm-local", "--fit", named]) == (
        labour_calibration.DEFAULT_FIT + labour_calibration.WILLINGNESS_ALIGNMENT)
