"""Loaders of the monthly unemployment and UI-claims files: the shipped data, and every
kind of bad input named by file, line, column and value."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxsim.nyc import economy_data as data
from jaxsim.nyc.boroughs import BOROUGHS

UNEMPLOYMENT = data.DATA_DIR / data.UNEMPLOYMENT_FILE
CLAIMS = data.DATA_DIR / data.UI_CLAIMS_FILE


def test_shipped_unemployment_file():
    u = data.load_unemployment()
    assert str(u.months[0]) == "2020-08" and str(u.months[-1]) == "2023-12" and len(u.months) == 41
    assert u.rate.shape == u.labour_force.shape == (41, 5)
    bronx, manhattan = BOROUGHS.index("bronx"), BOROUGHS.index("manhattan")
    assert u.rate[0, bronx] == pytest.approx(0.198)  # 19.8 % in the file
    assert u.labour_force[0, bronx] == 622300
    assert np.all((u.rate > 0) & (u.rate < 0.25)) and np.all(u.rate[:, bronx] > u.rate[:, manhattan])
    window = u.window(pd.Period("2023-11", "M"), 3)
    assert np.all(np.isfinite(window[:2])) and np.all(np.isnan(window[2]))  # Jan 2024: no data


def test_shipped_claims_file_and_rate():
    c = data.load_ui_claims()
    assert str(c.months[0]) == "2019-01" and str(c.months[-1]) == "2024-02" and c.beneficiaries.shape == (62, 5)
    u = data.load_unemployment()
    rate = c.claims_rate(u, pd.Period("2020-08", "M"), 3)
    bronx = BOROUGHS.index("bronx")
    assert rate.shape == (3, 5) and rate.dtype == np.float32
    # Aug 2020 Bronx: 119,300 beneficiaries (month 19) over a labour force of 622,300.
    assert rate[0, bronx] == pytest.approx(119300 / 622300, rel=1e-5)
    # Before the unemployment data starts, the labour force of its first month is used.
    early = c.claims_rate(u, pd.Period("2020-06", "M"), 1)
    assert early[0, bronx] == pytest.approx(126200 / 622300, rel=1e-5)


def test_parse_month():
    assert data.parse_month("2020-08") == pd.Period("2020-08", "M")
    for bad in ("2020-8", "2020/08", "August", "2020-13", "", "2020-08-01"):
        with pytest.raises(ValueError, match="is not a month like 2020-08"):
            data.parse_month(bad)


def _edit(tmp_path: Path, source: Path, edit) -> Path:
    lines = source.read_text().splitlines()
    lines = edit(lines)
    path = tmp_path / source.name
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(line_number: int, column: str, value: str):
    """Replace one cell (1-based file line, the header is line 1)."""

    def edit(lines):
        header = lines[0].split(",")
        cells = lines[line_number - 1].split(",")
        cells[header.index(column)] = value
        lines[line_number - 1] = ",".join(cells)
        return lines

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set(3, "borough", "harlem"), r"line 3, column 'borough': 'harlem' is not a borough"),
        (_set(4, "year", "x"), r"line 4, column 'year': 'x' is not a finite number"),
        (_set(4, "year", "0"), r"line 4, column 'year': '0' is below 1"),
        (_set(5, "month", "12"), r"line 5, column 'month': '12' is above 11 \(0 = January\)"),
        (_set(5, "month", "7.5"), r"line 5, column 'month': '7.5' is not a whole number"),
        (_set(6, "labor_force", "-3"), r"line 6, column 'labor_force': '-3' is below 1"),
        (_set(6, "labor_force", ""), r"line 6, column 'labor_force': '' is not a finite number"),
        (_set(7, "unemployment_rate", "120"), r"line 7, column 'unemployment_rate': '120' is above 100 \(percent\)"),
        (_set(7, "unemployment_rate", "nan"), r"line 7, column 'unemployment_rate': 'nan' is not a finite number"),
        (_set(3, "month", "7"), r"line 3: borough 'bronx', month 2020-08 \(columns year, month\) appears twice \(first on line 2\)"),
        (lambda lines: [l for i, l in enumerate(lines) if i != 5], r"borough 'bronx' has no row for month\(s\) \['2020-12'\]"),
        (lambda lines: [l for l in lines if not l.startswith("queens")], r"no rows for borough 'queens'"),
        (lambda lines: [lines[0].replace("labor_force", "people")] + lines[1:], r"missing column\(s\) \['labor_force'\]"),
        (lambda lines: lines[:1], r"no data rows"),
    ],
)
def test_bad_unemployment_files(tmp_path, edit, message):
    path = _edit(tmp_path, UNEMPLOYMENT, edit)
    with pytest.raises(data.EconomyDataError, match=message) as err:
        data.load_unemployment(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set(2, "borough", "Jersey"), r"line 2, column 'borough': 'Jersey' is not a borough"),
        (_set(3, "beneficiaries", "-1"), r"line 3, column 'beneficiaries': '-1' is below 0"),
        (_set(3, "beneficiaries", "many"), r"line 3, column 'beneficiaries': 'many' is not a finite number"),
        (_set(4, "total_amount", "-5.0"), r"line 4, column 'total_amount': '-5.0' is below 0 \(USD\)"),
        (_set(5, "month", "-1"), r"line 5, column 'month': '-1' is below 0"),
        (_set(5, "month", "2"), r"line 5: borough 'bronx', month 2019-03 \(columns month\) appears twice \(first on line 4\)"),
        (lambda lines: [l for i, l in enumerate(lines) if i != 30], r"borough 'bronx' has no row for month\(s\) \['2021-06'\]"),
        (lambda lines: [lines[0].replace("beneficiaries", "claimants")] + lines[1:], r"missing column\(s\) \['beneficiaries'\]"),
    ],
)
def test_bad_claims_files(tmp_path, edit, message):
    path = _edit(tmp_path, CLAIMS, edit)
    with pytest.raises(data.EconomyDataError, match=message) as err:
        data.load_ui_claims(path)
    assert str(path) in str(err.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(data.EconomyDataError, match="unemployment file not found"):
        data.load_unemployment(tmp_path / "nope.csv")
    with pytest.raises(data.EconomyDataError, match="UI claims file not found"):
        data.load_ui_claims(tmp_path / "nope.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage\x00")
    with pytest.raises(data.EconomyDataError, match="binary.csv"):
        data.load_unemployment(binary)
