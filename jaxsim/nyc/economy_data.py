"""Monthly labour-market data for New York City's boroughs (shipped in ``jaxsim/data/nyc``,
the same files as ``shared/data/nyc``).

- ``monthly_unemployment_by_borough.csv``: ``borough, area, year, month, labor_force,
  unemployment_rate``; ``year`` 1 = 2020, ``month`` 0 = January; ``unemployment_rate`` in
  percent. Aug 2020 to Dec 2023 for each borough. The calibration target.
- ``monthly_ui_claims_by_borough.csv``: ``borough, county, beneficiaries, total_amount,
  month``; unemployment-insurance beneficiaries (people) and benefits paid (USD) per
  borough per month, ``month`` 0 = Jan 2019 through 61 = Feb 2024. An input signal.

Months are ``pandas.Period`` (``"2020-08"``); the loaders return ``[months, 5]`` arrays in
the borough order of :data:`jaxsim.nyc.boroughs.BOROUGHS`. Every loader validates its file and
raises :class:`EconomyDataError` (a ``ValueError``) naming the file, the line, the column
and the value at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsim.errors import InputError

from jaxsim.nyc.boroughs import BOROUGHS
from jaxsim.nyc.households import read_text_csv

DATA_DIR: Path = Path(__file__).resolve().parent / "data"
UNEMPLOYMENT_FILE = "monthly_unemployment_by_borough.csv"
UI_CLAIMS_FILE = "monthly_ui_claims_by_borough.csv"

UNEMPLOYMENT_COLUMNS = ("borough", "area", "year", "month", "labor_force", "unemployment_rate")
UI_CLAIMS_COLUMNS = ("borough", "county", "beneficiaries", "total_amount", "month")

#: ``year`` 1 of the unemployment file is 2020.
UNEMPLOYMENT_YEAR_ORIGIN = 2019
#: ``month`` 0 of the UI claims file is January 2019.
UI_CLAIMS_MONTH_ORIGIN = pd.Period("2019-01", freq="M")


class EconomyDataError(InputError):
    """A labour-market data file is missing or malformed; the message names file, line,
    column and value."""


def _line(position: int) -> int:
    """1-based CSV line of the data row at ``position`` (the header is line 1)."""
    return position + 2


def _read(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    return read_text_csv(path, columns, what, EconomyDataError)


def _boroughs(path: Path, raw: pd.DataFrame) -> np.ndarray:
    names = raw["borough"].str.strip().str.lower()
    for position, name in enumerate(names):
        if name not in BOROUGHS:
            raise EconomyDataError(
                f"{path}: line {_line(position)}, column 'borough': {raw['borough'].iloc[position]!r} "
                f"is not a borough; expected one of {list(BOROUGHS)}"
            )
    return np.asarray([BOROUGHS.index(n) for n in names], np.int64)


def _numbers(
    path: Path, raw: pd.DataFrame, column: str, *, integer: bool, low: float | None = None,
    high: float | None = None, what: str = "",
) -> np.ndarray:
    text = raw[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    for position, value in enumerate(values):
        problem = None
        if not np.isfinite(value):
            problem = "is not a finite number"
        elif integer and value != np.round(value):
            problem = "is not a whole number"
        elif low is not None and value < low:
            problem = f"is below {low:g}"
        elif high is not None and value > high:
            problem = f"is above {high:g}"
        if problem:
            raise EconomyDataError(
                f"{path}: line {_line(position)}, column {column!r}: {raw[column].iloc[position]!r} "
                f"{problem}{f' ({what})' if what else ''}"
            )
    return values


def _grid(
    path: Path, boroughs: np.ndarray, months: list[pd.Period], columns: dict[str, np.ndarray],
    raw: pd.DataFrame, month_columns: str,
) -> tuple[pd.PeriodIndex, dict[str, np.ndarray]]:
    """``{name: [M, 5]}`` over consecutive months; every borough must have every month once."""
    ordinals = np.asarray([m.ordinal for m in months], np.int64)
    seen: dict[tuple[int, int], int] = {}
    for position, key in enumerate(zip(boroughs.tolist(), ordinals.tolist())):
        if key in seen:
            raise EconomyDataError(
                f"{path}: line {_line(position)}: borough {BOROUGHS[key[0]]!r}, month "
                f"{months[position]} (columns {month_columns}) appears twice (first on line {_line(seen[key])})"
            )
        seen[key] = position
    first, last = int(ordinals.min()), int(ordinals.max())
    periods = pd.period_range(pd.Period(ordinal=first, freq="M"), pd.Period(ordinal=last, freq="M"), freq="M")
    out = {name: np.full((len(periods), len(BOROUGHS)), np.nan) for name in columns}
    for b, borough in enumerate(BOROUGHS):
        has = boroughs == b
        if not has.any():
            raise EconomyDataError(f"{path}: no rows for borough {borough!r}")
        present = set(ordinals[has].tolist())
        gaps = [str(p) for p in periods if p.ordinal not in present]
        if gaps:
            raise EconomyDataError(
                f"{path}: borough {borough!r} has no row for month(s) {gaps[:6]}"
                f"{' ...' if len(gaps) > 6 else ''}; every borough needs every month "
                f"from {periods[0]} to {periods[-1]}"
            )
    rows = ordinals - first
    for name, values in columns.items():
        out[name][rows, boroughs] = values
    return periods, out


# ------------------------------------------------------------------------ unemployment
@dataclass(frozen=True)
class UnemploymentData:
    """Observed unemployment per borough and month.

    Attributes:
        months: consecutive monthly periods ``[M]``.
        labour_force: float64 ``[M, 5]`` people in the labour force.
        rate: float64 ``[M, 5]`` unemployment rate as a fraction in ``[0, 1]`` (the file
            gives percent).
    """

    months: pd.PeriodIndex
    labour_force: np.ndarray
    rate: np.ndarray

    def window(self, start: pd.Period, months: int) -> np.ndarray:
        """``[months, 5]`` rates from ``start`` on; NaN for months the data lacks."""
        return _window(self.months, self.rate, start, months)

    def labour_force_window(self, start: pd.Period, months: int) -> np.ndarray:
        """``[months, 5]`` labour force from ``start`` on, the nearest month the data has
        for months outside it."""
        index = _nearest_index(self.months, start, months)
        return self.labour_force[index]


def load_unemployment(path: str | Path | None = None) -> UnemploymentData:
    """Read and validate ``monthly_unemployment_by_borough.csv``.

    Raises:
        EconomyDataError: missing or unreadable file, missing column, no rows, an unknown
            borough, a ``year`` below 1 or not whole, a ``month`` outside 0..11, a labour
            force that is not a positive whole number, a rate outside [0, 100] percent, a
            repeated borough-month, or a borough missing a month (or missing altogether).
    """
    path = Path(path) if path is not None else DATA_DIR / UNEMPLOYMENT_FILE
    raw = _read(path, UNEMPLOYMENT_COLUMNS, "unemployment")
    boroughs = _boroughs(path, raw)
    year = _numbers(path, raw, "year", integer=True, low=1, high=200, what="1 = 2020")
    month = _numbers(path, raw, "month", integer=True, low=0, high=11, what="0 = January")
    labour_force = _numbers(path, raw, "labor_force", integer=True, low=1, what="people in the labour force")
    rate = _numbers(path, raw, "unemployment_rate", integer=False, low=0, high=100, what="percent")
    months = [
        pd.Period(year=int(UNEMPLOYMENT_YEAR_ORIGIN + y), month=int(m) + 1, freq="M") for y, m in zip(year, month)
    ]
    periods, grid = _grid(
        path, boroughs, months, {"labour_force": labour_force, "rate": rate / 100.0}, raw, "year, month"
    )
    return UnemploymentData(months=periods, labour_force=grid["labour_force"], rate=grid["rate"])


# --------------------------------------------------------------------------- UI claims
@dataclass(frozen=True)
class UIClaimsData:
    """Unemployment-insurance claims per borough and month.

    Attributes:
        months: consecutive monthly periods ``[M]``.
        beneficiaries: float64 ``[M, 5]`` people receiving benefits in the month.
        total_amount: float64 ``[M, 5]`` benefits paid in the month (USD).
    """

    months: pd.PeriodIndex
    beneficiaries: np.ndarray
    total_amount: np.ndarray

    def claims_rate(self, unemployment: UnemploymentData, start: pd.Period, months: int) -> np.ndarray:
        """float32 ``[months, 5]``: beneficiaries per person in the labour force, month by
        month from ``start``. Months outside the claims data take the nearest month it
        has; the labour force is that of the same month, or the nearest month the
        unemployment data has."""
        beneficiaries = self.beneficiaries[_nearest_index(self.months, start, months)]
        return (beneficiaries / unemployment.labour_force_window(start, months)).astype(np.float32)


def load_ui_claims(path: str | Path | None = None) -> UIClaimsData:
    """Read and validate ``monthly_ui_claims_by_borough.csv``.

    Raises:
        EconomyDataError: missing or unreadable file, missing column, no rows, an unknown
            borough, a ``month`` that is negative or not whole, negative or non-numeric
            ``beneficiaries`` / ``total_amount``, a repeated borough-month, or a borough
            missing a month (or missing altogether).
    """
    path = Path(path) if path is not None else DATA_DIR / UI_CLAIMS_FILE
    raw = _read(path, UI_CLAIMS_COLUMNS, "UI claims")
    boroughs = _boroughs(path, raw)
    month = _numbers(path, raw, "month", integer=True, low=0, high=2400, what="0 = January 2019")
    beneficiaries = _numbers(path, raw, "beneficiaries", integer=True, low=0, what="people")
    amount = _numbers(path, raw, "total_amount", integer=False, low=0, what="USD")
    months = [UI_CLAIMS_MONTH_ORIGIN + int(m) for m in month]
    periods, grid = _grid(
        path, boroughs, months, {"beneficiaries": beneficiaries, "total_amount": amount}, raw, "month"
    )
    return UIClaimsData(months=periods, beneficiaries=grid["beneficiaries"], total_amount=grid["total_amount"])


# ------------------------------------------------------------------------------ months
def parse_month(text: str | pd.Period) -> pd.Period:
    """``"2020-08"`` -> ``Period("2020-08", "M")``; ``ValueError`` naming the text otherwise."""
    if isinstance(text, pd.Period):
        return text.asfreq("M")
    match = re.fullmatch(r"\s*(\d{4})-(\d{2})\s*", str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputError(f"month {text!r} is not a month like 2020-08")
    return pd.Period(year=int(match.group(1)), month=int(match.group(2)), freq="M")


def _offsets(months: pd.PeriodIndex, start: pd.Period, count: int) -> np.ndarray:
    return (start.ordinal - months[0].ordinal) + np.arange(int(count))


def _window(months: pd.PeriodIndex, values: np.ndarray, start: pd.Period, count: int) -> np.ndarray:
    offsets = _offsets(months, start, count)
    out = np.full((int(count), values.shape[1]), np.nan)
    inside = (offsets >= 0) & (offsets < len(months))
    out[inside] = values[offsets[inside]]
    return out


def _nearest_index(months: pd.PeriodIndex, start: pd.Period, count: int) -> np.ndarray:
    return np.clip(_offsets(months, start, count), 0, len(months) - 1)


__all__ = [
    "DATA_DIR",
    "EconomyDataError",
    "UI_CLAIMS_FILE",
    "UNEMPLOYMENT_FILE",
    "UIClaimsData",
    "UnemploymentData",
    "load_ui_claims",
    "load_unemployment",
    "parse_month",
]
