"""Observed weekly COVID-19 cases and mobility for NYC neighbourhoods (NTAs).

Source file: ``weekly_cases_mobility_by_neighborhood.csv`` (shipped in ``jaxsim/data/nyc``;
the same file as ``shared/data/nyc``): one row per NTA per epiweek, epiweeks 202032 to
202241, with ``cases_week`` and Google-mobility changes. ``date`` is the last day
(Saturday) of the epiweek.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from jaxsim.errors import InputError

DATA_DIR = Path(__file__).resolve().parent / "data"
WEEKLY_CASES_FILE = "weekly_cases_mobility_by_neighborhood.csv"

MOBILITY_COLUMNS = (
    "retail_and_recreation_change_week",
    "grocery_and_pharmacy_change_week",
    "parks_change_week",
    "transit_stations_change_week",
    "workplaces_change_week",
    "residential_change_week",
)
REQUIRED_COLUMNS = ("date", "epiweek", "nta_id", "neighborhood", "cases_week") + MOBILITY_COLUMNS

#: Share of infections that were reported as cases in the US in 2020: CDC, "Estimated
#: COVID-19 Burden" (2021), about 1 in 4.0 infections reported (Feb-Sep 2020).
DEFAULT_ASCERTAINMENT = 0.25


class CaseDataError(InputError):
    """The weekly case file is missing, malformed, or lacks the requested NTA/weeks."""


def load_weekly_cases(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the weekly case/mobility file.

    Returns a DataFrame with the file's columns, ``date`` parsed, sorted by NTA and epiweek.
    """
    path = Path(path) if path is not None else DATA_DIR / WEEKLY_CASES_FILE
    if not path.is_file():
        raise CaseDataError(f"{path}: weekly case file not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CaseDataError(f"{path}: cannot parse as CSV ({err})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CaseDataError(f"{path}: missing column(s) {missing}")
    if frame.empty:
        raise CaseDataError(f"{path}: no rows")
    for column in ("epiweek", "cases_week") + MOBILITY_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CaseDataError(
                f"{path}: line {row + 2}, column {column!r}: non-numeric value {frame[column].iloc[row]!r}"
            )
        frame[column] = values
    negative = frame["cases_week"] < 0
    if negative.any():
        row = int(np.flatnonzero(negative.to_numpy())[0])
        raise CaseDataError(
            f"{path}: line {row + 2}, column 'cases_week': negative count {frame['cases_week'].iloc[row]}"
        )
    try:
        frame["date"] = pd.to_datetime(frame["date"], format="%Y/%m/%d")
    except (ValueError, TypeError) as err:
        raise CaseDataError(f"{path}: column 'date' is not YYYY/MM/DD ({err})") from None
    frame["epiweek"] = frame["epiweek"].astype(int)
    return frame.sort_values(["nta_id", "epiweek"]).reset_index(drop=True)


@dataclass(frozen=True)
class ObservedCases:
    """Weekly cases summed over a set of NTAs.

    Attributes:
        ntas: the NTA codes included (those with data).
        epiweeks: int ``[W]`` epiweeks, consecutive in the file.
        week_end: ``[W]`` last day (Saturday) of each epiweek.
        cases: float ``[W]`` reported cases per week (NaN where missing).
        mobility: float ``[W, 6]`` mean mobility change (percent) over the NTAs.
    """

    ntas: tuple[str, ...]
    epiweeks: np.ndarray
    week_end: pd.DatetimeIndex
    cases: np.ndarray
    mobility: np.ndarray

    @property
    def start_date(self) -> pd.Timestamp:
        """First day (Sunday) of the first epiweek."""
        return self.week_end[0] - pd.Timedelta(days=6)

    def week_index(self, epiweek: int) -> int:
        hits = np.flatnonzero(self.epiweeks == int(epiweek))
        if hits.size == 0:
            raise CaseDataError(
                f"epiweek {epiweek} is not in the case data for {list(self.ntas)} "
                f"(available {int(self.epiweeks[0])}..{int(self.epiweeks[-1])})"
            )
        return int(hits[0])


def observed_cases(
    ntas: Sequence[str], frame: pd.DataFrame | None = None
) -> ObservedCases | None:
    """Weekly cases summed over those of ``ntas`` that the data covers; ``None`` if none is."""
    frame = load_weekly_cases() if frame is None else frame
    covered = [n for n in ntas if n in set(frame["nta_id"])]
    if not covered:
        return None
    sub = frame[frame["nta_id"].isin(covered)]
    grouped = sub.groupby("epiweek", sort=True)
    cases = grouped["cases_week"].sum(min_count=len(covered)).to_numpy(dtype=float)
    return ObservedCases(
        ntas=tuple(covered),
        epiweeks=np.asarray(grouped.size().index, dtype=int),
        week_end=pd.DatetimeIndex(grouped["date"].first().to_numpy()),
        cases=cases,
        mobility=grouped[list(MOBILITY_COLUMNS)].mean().to_numpy(dtype=float),
    )


#: Boroughs by the first two letters of an NTA code.
BOROUGHS = {"BK": "Brooklyn", "BX": "the Bronx", "MN": "Manhattan", "QN": "Queens", "SI": "Staten Island"}


def neighbourhood_names(ntas: Sequence[str], frame: pd.DataFrame | None = None) -> dict[str, str]:
    """``{nta: "Astoria, Queens"}``: the neighbourhood name the case file gives (the NTA
    code where it has none) and the borough from the code's prefix."""
    frame = load_weekly_cases() if frame is None else frame
    named = frame.drop_duplicates("nta_id").set_index("nta_id")["neighborhood"].to_dict()
    out = {}
    for nta in ntas:
        name = str(named.get(nta, nta))
        borough = BOROUGHS.get(str(nta)[:2].upper())
        out[nta] = f"{name}, {borough}" if borough else name
    return out


def available_ntas(frame: pd.DataFrame | None = None) -> list[str]:
    frame = load_weekly_cases() if frame is None else frame
    return sorted(frame["nta_id"].unique())


@dataclass(frozen=True)
class CaseSeeding:
    """Initial conditions and prior case signal derived from observed weekly cases.

    Attributes:
        exposed_share, infected_share: share of agents in E and I on day 0.
        prior_daily_case_share: ``[28]`` onsets per agent per day over the 28 days before
            day 0 (oldest first); times ``N`` it is the isolation heuristic's prior signal.
        source: how the figures were obtained (for run.json).
    """

    exposed_share: float
    infected_share: float
    prior_daily_case_share: np.ndarray
    source: str


#: Share of agents in E and in I on day 0 when no case data covers the population.
DEFAULT_INITIAL_SHARE = 0.001


def seeding_from_cases(
    observed: ObservedCases | None,
    start_index: int,
    people_in_observed_ntas: float,
    *,
    exposed_days: int,
    infected_days: int,
    ascertainment: float = DEFAULT_ASCERTAINMENT,
) -> CaseSeeding:
    """Day-0 E and I shares from the start week's reported cases.

    Infections per week are ``cases / ascertainment``; agents exposed in the last
    ``exposed_days`` days are in E and those with onset in the last ``infected_days`` days
    are in I, so ``E share = infections_per_week * exposed_days / 7 / people`` and likewise
    for I. The 4 weeks before the start (or the start week repeated where the data begins
    later) give the prior case signal.
    """
    if not 0 < ascertainment <= 1:
        raise InputError(f"ascertainment must lie in (0, 1], got {ascertainment}")
    if observed is None or people_in_observed_ntas <= 0:
        share = DEFAULT_INITIAL_SHARE
        prior = np.full(28, share / infected_days, np.float32)
        return CaseSeeding(share, share, prior, f"default share {share} (no case data for the population)")
    cases = observed.cases
    if not np.isfinite(cases[start_index]):
        raise CaseDataError(
            f"no case count for epiweek {int(observed.epiweeks[start_index])} in {list(observed.ntas)}"
        )
    per_week = cases[start_index] / ascertainment / people_in_observed_ntas
    prior_weeks = []
    for back in range(4, 0, -1):
        i = start_index - back
        value = cases[i] if i >= 0 and np.isfinite(cases[i]) else cases[start_index]
        prior_weeks.append(value / ascertainment / people_in_observed_ntas)
    prior_daily_share = np.repeat(np.asarray(prior_weeks) / 7.0, 7).astype(np.float32)
    return CaseSeeding(
        exposed_share=float(min(per_week * exposed_days / 7.0, 1.0)),
        infected_share=float(min(per_week * infected_days / 7.0, 1.0)),
        prior_daily_case_share=prior_daily_share,
        source=(
            f"epiweek {int(observed.epiweeks[start_index])} cases {cases[start_index]:g} in "
            f"{list(observed.ntas)} / ascertainment {ascertainment:g}"
        ),
    )
