"""Loaders for the New York City data shipped with the package (``jaxsim/data/nyc``).

Every loader validates its file and raises :class:`NYCDataError` (a ``ValueError``) whose
message names the file, the column and the row (NTA code and line number) at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from jaxsim.errors import InputError

#: The packaged NYC data directory (``jaxsim/data/nyc``); a copy of ``shared/data/nyc``.
DATA_DIR: Path = Path(__file__).resolve().parent / "data"


class NYCDataError(InputError):
    """An NYC data file is missing or malformed; the message names file, column and row."""


# =============================================================================================
# Households by neighbourhood (NTA) — used by jaxsim.nyc.synthesis
# =============================================================================================

HOUSEHOLDS_FILE = "households_by_nta.csv"

#: Count columns the synthetic generator reads; each must be a non-negative integer.
HOUSEHOLD_COUNT_COLUMNS: tuple[str, ...] = (
    "people",
    "households",
    "householders_living_alone",
    "family_households_with_own_children_under_18",
    "households_with_member_65_and_over",
)

#: NTA codes: a borough prefix (BK, BX, MN, QN, SI) and four digits, e.g. ``QN0103``.
_NTA_PATTERN = re.compile(r"^(BK|BX|MN|QN|SI)\d{4}$")


def _line(row_position: int) -> int:
    """1-based line in the CSV of the data row at ``row_position`` (the header is line 1)."""
    return row_position + 2


def read_text_csv(
    path: Path, required: Sequence[str], what: str, error: type[Exception]
) -> pd.DataFrame:
    """A data file's rows as text (no type guessing, empty cells as ``""``), checked to
    exist, parse, have the ``required`` columns and at least one row; otherwise ``error``
    naming the file (``what`` says which kind of file it is)."""
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for unreadable CSVs
        raise error(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise error(f"{path}: missing column(s) {missing}; the file has {list(raw.columns)}")
    if raw.empty:
        raise error(f"{path}: no data rows")
    return raw


def load_households(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate ``households_by_nta.csv``: one row per NTA, indexed by ``nta``.

    Args:
        path: the CSV file; default ``DATA_DIR / "households_by_nta.csv"``.

    Returns:
        A DataFrame indexed by the NTA code (str), in file order, with every column of the
        file; the columns of :data:`HOUSEHOLD_COUNT_COLUMNS` are ``int64``.

    Raises:
        NYCDataError: the file is missing or unreadable, a required column is absent, an
            NTA code is empty, malformed or repeated, or a count is missing, non-numeric,
            fractional or negative. The message names the file, column and row.
    """
    path = Path(path) if path is not None else DATA_DIR / HOUSEHOLDS_FILE
    raw = read_text_csv(path, ("nta",) + HOUSEHOLD_COUNT_COLUMNS, "households", NYCDataError)

    codes = raw["nta"].str.strip()
    for pos, code in enumerate(codes):
        if not _NTA_PATTERN.match(code):
            raise NYCDataError(
                f"{path}: column 'nta', line {_line(pos)}: {code!r} is not an NTA code "
                "(borough prefix BK/BX/MN/QN/SI and four digits, e.g. 'QN0103')"
            )
    dup = codes[codes.duplicated()]
    if len(dup):
        pos = int(np.flatnonzero(codes.duplicated().to_numpy())[0])
        raise NYCDataError(
            f"{path}: column 'nta', line {_line(pos)}: NTA {dup.iloc[0]!r} appears more than once"
        )

    out = raw.copy()
    out["nta"] = codes
    for col in HOUSEHOLD_COUNT_COLUMNS:
        text = raw[col].str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise NYCDataError(
                f"{path}: column {col!r}, line {_line(pos)} (NTA {codes.iloc[pos]}): "
                f"{raw[col].iloc[pos]!r} is not a non-negative integer count"
            )
        out[col] = values.astype(np.int64)
    # Remaining columns: numeric where they parse (averages are empty for unpopulated NTAs).
    for col in out.columns:
        if col == "nta" or col in HOUSEHOLD_COUNT_COLUMNS:
            continue
        converted = pd.to_numeric(out[col].replace("", np.nan), errors="coerce")
        if converted.notna().sum() == (out[col] != "").sum():
            out[col] = converted
    return out.set_index("nta")


def nta_codes_with_people(path: str | Path | None = None) -> list[str]:
    """Sorted NTA codes whose ``people`` count is positive (parks, airports etc. excluded)."""
    table = load_households(path)
    return sorted(table.index[table["people"] > 0])


# =============================================================================================
# end of households section
# =============================================================================================


def census_people(nta: str, path: str | Path | None = None) -> float:
    """Census people of one NTA; :class:`NYCDataError` naming it when the file lacks it."""
    households = load_households(path)
    if nta not in households.index:
        raise NYCDataError(f"--nta {nta}: not in the census households file")
    return float(households.loc[nta, "people"])
