"""Observed case data loader and seeding from cases."""

import numpy as np
import pandas as pd
import pytest

from jaxsim.nyc import cases as nyc_cases


def test_loader_reads_shipped_file_and_sums_ntas():
    frame = nyc_cases.load_weekly_cases()
    assert set(nyc_cases.available_ntas(frame)) == {"QN0103", "MN0702", "BK1001", "BX1003", "SI0106"}
    one = nyc_cases.observed_cases(["QN0103"], frame)
    two = nyc_cases.observed_cases(["QN0103", "BK1001", "XX9999"], frame)
    assert two.ntas == ("QN0103", "BK1001")
    i = one.week_index(202047)
    assert one.cases[i] == 45.0
    bk = frame[(frame.nta_id == "BK1001") & (frame.epiweek == 202047)].cases_week.iloc[0]
    assert two.cases[two.week_index(202047)] == 45.0 + bk
    assert one.start_date == pd.Timestamp("2020-08-02")
    assert one.mobility.shape == (len(one.epiweeks), 6)
    assert nyc_cases.observed_cases(["MN0101"], frame) is None
    with pytest.raises(nyc_cases.CaseDataError, match="epiweek 199901"):
        one.week_index(199901)


def test_loader_errors_name_file_line_and_value(tmp_path):
    good = nyc_cases.load_weekly_cases()
    with pytest.raises(nyc_cases.CaseDataError, match="not found"):
        nyc_cases.load_weekly_cases(tmp_path / "missing.csv")
    path = tmp_path / "cases.csv"
    raw = pd.read_csv(nyc_cases.DATA_DIR / nyc_cases.WEEKLY_CASES_FILE)
    raw.drop(columns=["cases_week"]).to_csv(path, index=False)
    with pytest.raises(nyc_cases.CaseDataError, match=r"cases.csv: missing column\(s\) \['cases_week'\]"):
        nyc_cases.load_weekly_cases(path)
    bad = raw.copy()
    bad["cases_week"] = bad["cases_week"].astype(object)
    bad.loc[3, "cases_week"] = "lots"
    bad.to_csv(path, index=False)
    with pytest.raises(nyc_cases.CaseDataError, match=r"line 5, column 'cases_week': non-numeric value 'lots'"):
        nyc_cases.load_weekly_cases(path)
    bad = raw.copy()
    bad.loc[7, "cases_week"] = -2
    bad.to_csv(path, index=False)
    with pytest.raises(nyc_cases.CaseDataError, match="line 9.*negative"):
        nyc_cases.load_weekly_cases(path)
    path.write_text("")
    with pytest.raises(nyc_cases.CaseDataError, match="cannot parse"):
        nyc_cases.load_weekly_cases(path)
    assert len(good) == 575


def test_seeding_from_cases():
    observed = nyc_cases.observed_cases(["QN0103"])
    i = observed.week_index(202047)
    seeding = nyc_cases.seeding_from_cases(
        observed, i, 47303, exposed_days=5, infected_days=5, ascertainment=0.25
    )
    per_week = 45 / 0.25 / 47303
    assert seeding.exposed_share == pytest.approx(per_week * 5 / 7)
    assert seeding.infected_share == pytest.approx(per_week * 5 / 7)
    # Prior signal: the four weeks before 202047 (202043..202046: 19, 25, 39, 63 cases).
    weekly = seeding.prior_daily_case_share.reshape(4, 7).sum(axis=1) * 47303 * 0.25
    np.testing.assert_allclose(weekly, [19, 25, 39, 63], rtol=1e-5)
    first = nyc_cases.seeding_from_cases(observed, 0, 47303, exposed_days=5, infected_days=5)
    np.testing.assert_allclose(first.prior_daily_case_share, first.prior_daily_case_share[0])
    fallback = nyc_cases.seeding_from_cases(None, 0, 0, exposed_days=5, infected_days=5)
    assert fallback.exposed_share == nyc_cases.DEFAULT_INITIAL_SHARE
    with pytest.raises(ValueError, match="ascertainment"):
        nyc_cases.seeding_from_cases(observed, 0, 10, exposed_days=5, infected_days=5, ascertainment=0)
