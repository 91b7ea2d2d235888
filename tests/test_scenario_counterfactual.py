"""scenarios/counterfactual_isolation.py end to end on a small population, with a
calibration file, fitting R(t) first (the default), with --no-fit and without case data,
and its input errors (one line, exit status 2, nothing written)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scenarios" / "counterfactual_isolation.py"
SMALL = ["--agents", "2000", "--members", "3", "--observed-weeks", "3", "--weeks-ahead", "1"]


@pytest.fixture(scope="module")
def scenario():
    return load_script(SCRIPT)


def write_calibration(path: Path, rates, epiweeks, **extra) -> Path:
    """A calibration.json in the layout scenarios/calibrate_covid.py writes."""
    info = {"scenario": "calibrate_covid", "nta": "QN0103", "epiweeks": epiweeks,
            "fitted_parameters": {"transmission_rate": rates, **extra}}
    path.write_text(json.dumps(info))
    return path


def test_small_run_with_calibration_writes_all_outputs(scenario, tmp_path):
    calibration = write_calibration(tmp_path / "calibration.json", [4.0, 3.5, 3.0], [202047, 202048, 202049],
                                    mortality={"65A": 0.05, "50t64": 0.006, "40t49": 0.0015, "30t39": 0.0004,
                                               "20t29": 0.0001, "U19": 0.00002})
    out = tmp_path / "out"
    args = SMALL + ["--calibration", str(calibration), "--out", str(out)]
    assert scenario.main(args) == 0
    assert {p.name for p in out.iterdir()} == {"scenarios.csv", "scenarios.parquet", "summary.json",
                                               "counterfactual.png", "report.html", "config.toml"}
    table = pd.read_csv(out / "scenarios.csv")
    assert list(table.columns[:4]) == ["scenario", "period", "day", "date"]
    assert {"mean", "q05", "q25", "q50", "q75", "q95", "observed"} <= set(table.columns)
    assert set(table["scenario"]) == set(scenario.SCENARIOS)
    assert set(table["period"]) == {"retrospective", "prospective"}
    assert (table.loc[table.day < 21, "period"] == "retrospective").all()
    infections = table[(table.metric == "new_infections") & (table.scenario == "baseline")]
    assert len(infections) == 28 and (infections["q05"] <= infections["q95"]).all()
    weekly = table[(table.metric == "reported_cases_per_week") & (table.scenario == "baseline")]
    assert len(weekly) == 4 and weekly["observed"].iloc[:3].notna().all() and np.isnan(weekly["observed"].iloc[3])
    assert table["date"].iloc[0] == "2020-11-15"  # epiweek 202047 starts on Sunday 15 November

    summary = json.loads((out / "summary.json").read_text())
    # Calibrated rates by epiweek; the prospective week repeats the last calibrated one.
    assert summary["parameters"]["transmission_rate"] == [4.0, 3.5, 3.0, 3.0]
    assert summary["parameters"]["mortality"]["65A"] == pytest.approx(0.05)
    assert summary["parameter_source"].startswith("calibration: ")
    assert summary["start_epiweek"] == 202047
    for period in ("counterfactual", "prospective", "whole_horizon"):
        differences = summary[period]["differences"]
        assert set(differences) == set(scenario.SCENARIOS) - {"baseline"}
        for outcomes in differences.values():
            assert {"infections_averted", "deaths_averted", "extra_isolation_days"} <= set(outcomes)
            averted = outcomes["infections_averted"]
            assert averted["low"] <= averted["median"] <= averted["high"] and averted["members"] == 3
    assert summary["counterfactual"]["days"] == [0, 20] and summary["prospective"]["days"] == [21, 27]
    # Before day 14 no policy acts, so the retrospective differences come from days 14..20.
    retro = summary["retrospective"]
    assert len(retro["observed_cases_per_week"]) == 3 and 0 <= retro["coverage_90"] <= 1
    described = summary["scenarios"]["isolation_plus_20pct"]
    assert described[0]["isolation_probability_multiplier_per_week"] == [1.2] * 4
    assert described[0]["when"]["start_day"] == 14
    assert summary["scenarios"]["baseline"][3]["doses_per_day"] == 0
    assert summary["timing"]["members_per_second"] > 0
    assert (out / "counterfactual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".staging-*"))


def test_default_run_fits_rt_first_and_prints_the_retrospective_check(scenario, tmp_path, capsys):
    out = tmp_path / "out"
    assert scenario.main(SMALL + ["--fit-steps", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameter_source"].startswith("fitted here: transmission_rate of the 3 observed weeks, 3 of 3 "
                                                  "Adam steps x 4 seeds, loss ")
    fit = summary["fit"]
    assert fit["steps"] == 3 and len(fit["loss_curve"]) == 3 and fit["seconds"] > 0
    assert summary["timing"]["fit_seconds"] == fit["seconds"]
    fitted = fit["fitted_weekly"]["transmission_rate"]
    rates = summary["parameters"]["transmission_rate"]
    # The 3 fitted weeks, then the prospective week repeating the last of them.
    assert len(fitted) == 3 and rates == pytest.approx(fitted + fitted[-1:])
    assert fit["run_weekly"]["transmission_rate"] == rates
    assert not np.allclose(fitted, scenario.covid.DEFAULT_TRANSMISSION_RATE)
    assert "fitting the weekly R(t) to epiweeks 202047..202049 (3 weeks): 3 Adam steps" in printed
    assert "  step    3/3  loss " in printed
    retro = summary["retrospective"]
    k = retro["coverage_90_weeks"]
    assert retro["in_sample"] and retro["coverage_90"] == pytest.approx(k / 3)
    assert f"{k} of 3 observed weeks inside the baseline's 90% band" in printed
    persistence = retro["persistence"]
    assert persistence["weeks"] == 3  # the week before 202047 predicts the first
    observed = np.asarray(retro["observed_cases_per_week"])
    previous = 63.0 * retro["case_scale"]  # epiweek 202046's cases
    expected = np.sum(np.abs(np.concatenate([[previous], observed[:-1]]) - observed)) / observed.sum()
    assert persistence["nd"] == pytest.approx(expected)
    assert f"{persistence['nd']:.3f} for one-week-ahead persistence" in printed
    worse = k < 1.5 or persistence["median_nd_same_weeks"] > persistence["nd"]
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(notes) == (1 if worse else 0), printed


def test_no_fit_keeps_the_default_parameters(scenario, tmp_path, capsys):
    out = tmp_path / "out"
    assert scenario.main(SMALL + ["--no-fit", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameter_source"] == "defaults of jaxsim.models.covid (--no-fit)"
    assert summary["fit"] is None and summary["timing"]["fit_seconds"] is None
    assert summary["parameters"]["transmission_rate"] == pytest.approx([scenario.covid.DEFAULT_TRANSMISSION_RATE] * 4)
    assert "fitting" not in printed and "uncalibrated (--no-fit" in printed
    retro = summary["retrospective"]
    assert f"{retro['coverage_90_weeks']} of 3 observed weeks inside the baseline's 90% band" in printed
    assert not retro["in_sample"]
    worse = retro["coverage_90"] < 0.5 or retro["persistence"]["median_nd_same_weeks"] > retro["persistence"]["nd"]
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(notes) == (1 if worse else 0), printed


def test_retrospective_note_says_when_the_baseline_is_poor(scenario):
    observed = np.array([10.0, 20.0, 30.0, 40.0])
    good = scenario.retrospective_check(observed + 1, observed - 5, observed + 5, observed, previous=0.0)
    retro = {"observed_cases_per_week": observed.tolist(), "epiweeks": [202047, 202048, 202049, 202050]} | good
    lines = scenario.retrospective_lines(retro, source="test")
    assert good["coverage_90_weeks"] == 4 and good["median_nd"] == pytest.approx(0.04)
    assert good["persistence"]["weeks"] == 4 and good["persistence"]["nd"] == pytest.approx(0.4)
    assert len(lines) == 2 and "4 of 4 observed weeks inside the baseline's 90% band" in lines[0]
    assert "0.040 vs 0.400 for one-week-ahead persistence" in lines[1]
    # Flat at 12: 1 of 4 weeks inside the band, and worse than persistence (no week before: weeks 2..4).
    flat = np.full(4, 12.0)
    poor = scenario.retrospective_check(flat, flat - 3, flat + 3, observed, previous=None)
    lines = scenario.retrospective_lines(retro | poor, source="test")
    assert poor["coverage_90_weeks"] == 1 and poor["persistence"]["weeks"] == 3
    assert poor["persistence"]["nd"] == pytest.approx(30 / 90)
    assert poor["persistence"]["median_nd_same_weeks"] == pytest.approx((8 + 18 + 28) / 90)
    assert len(lines) == 3 and lines[2].startswith("note: ")
    assert "1 of 4 observed weeks (25%)" in lines[2]
    assert "ND 0.600) is worse than one-week-ahead persistence (ND 0.333)" in lines[2]
    # Only worse than persistence: still a note; only one week and none before: no comparison.
    inside = scenario.retrospective_check(flat, flat - 30, flat + 30, observed, previous=None)
    assert scenario.retrospective_lines(retro | inside, source="test")[-1].startswith("note: the baseline's median")
    single = scenario.retrospective_check(np.array([11.0]), np.array([5.0]), np.array([15.0]), np.array([10.0]),
                                          previous=None)
    lines = scenario.retrospective_lines({"observed_cases_per_week": [10.0], "epiweeks": [202047]} | single,
                                         source="test")
    assert single["persistence"] is None and len(lines) == 2 and "no persistence comparison" in lines[1]


def test_without_case_data_the_defaults_are_used_with_a_note(scenario, tmp_path, capsys, monkeypatch):
    from jaxsim.nyc.setup import CaseWindow

    monkeypatch.setattr(scenario, "case_window", lambda population, start_week=None: CaseWindow(None))
    out = tmp_path / "out"
    assert scenario.main(SMALL + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameter_source"].startswith("defaults of jaxsim.models.covid (no case data")
    assert summary["fit"] is None
    assert summary["parameters"]["transmission_rate"] == pytest.approx([scenario.covid.DEFAULT_TRANSMISSION_RATE] * 4)
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "uncalibrated defaults" in notes[0]
    assert "fitting" not in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--members", "0"], "--members must be >= 1, got 0"),
        (["--observed-weeks", "0"], "--observed-weeks must be >= 1, got 0"),
        (["--calibration", "missing/calibration.json"], "no such file"),
        (["--start-week", "201901"], "--start-week 201901: epiweek 201901 is not in the case data"),
        (["--calibration", "BAD_UNKNOWN"], "fitted_parameters ['contact_normaliser'] are not fittable"),
        (["--calibration", "BAD_WEEKS"], "transmission_rate needs one value per epiweek (2)"),
        (["--calibration", "BAD_LATE", "--start-week", "202047"], "covers epiweeks 202101..202101; the run starts earlier"),
        (["--calibration", "BAD_JSON"], "not a JSON file"),
        (["--fit-steps", "0"], "--fit-steps must be >= 1, got 0"),
        (["--no-fit", "--calibration", "BAD_WEEKS"], "--no-fit and --calibration"),
    ],
)
def test_bad_input_is_one_line_with_exit_status_2_and_writes_nothing(scenario, tmp_path, capsys, extra, message):
    files = {
        "BAD_UNKNOWN": write_calibration(tmp_path / "u.json", [3.0], [202047], contact_normaliser=2.0),
        "BAD_WEEKS": write_calibration(tmp_path / "w.json", [3.0], [202047, 202048]),
        "BAD_LATE": write_calibration(tmp_path / "l.json", [3.0], [202101]),
    }
    (tmp_path / "j.json").write_text("{not json")
    files["BAD_JSON"] = tmp_path / "j.json"
    extra = [str(files.get(value, value)) for value in extra]
    out = tmp_path / "out"
    from jaxsim import cli

    status = cli.run_cli(scenario.main, SMALL + ["--out", str(out)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists() or not any(out.iterdir())
