"""scenarios/counterfactual_isolation.py end to end on a small population, with a
calibration file, and its input errors (one line, exit status 2, nothing written)."""

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
    assert {p.name for p in out.iterdir()} == {"scenarios.csv", "summary.json", "counterfactual.png"}
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
