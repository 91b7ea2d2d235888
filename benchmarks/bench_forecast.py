#!/usr/bin/env python
"""Rolling-origin forecasts of weekly COVID-19 cases in NYC neighbourhoods, against baselines.

    python benchmarks/bench_forecast.py [--ntas QN0103,...] [--first-origin 202040]
                                        [--last-origin 202226] [--every 4] [--train-weeks 4]
                                        [--horizon 4] [--agents 10000] [--steps 60] [--seeds 4]
                                        [--members 32] [--gradient-free cma-es|nelder-mead|none]
                                        [--out out/bench_forecast]

For every NTA with case data (all five by default) and every forecast origin (the first
held-out epiweek: ``--first-origin``, then every ``--every`` weeks up to ``--last-origin``),
the COVID model's weekly R(t) is fitted to the ``--train-weeks`` weeks before the origin
(``jaxsim.nyc.forecast.case_calibration``: the scenario ``calibrate_covid.py``'s problem,
on a synthetic copy of the NTA scaled to ``--agents`` agents, observed cases scaled
alike) and the ``--horizon`` weeks from the origin are forecast. Only data up to the
last training week is used for a forecast.

Methods compared on the same held-out weeks:

- ``gradient/<paths>[+nb][+anchor]``: the gradient fit (Adam, straight-through,
  ``--steps`` x ``--seeds``), its ``--members``-member ensemble with held-out R(t) carried
  by ``last`` value, a log ``random-walk`` or a ``mean-reverting`` AR(1) (``--reversion``
  per week); ``+nb``: with negative-binomial observation noise whose dispersion is
  estimated from the last 8 known weeks; ``+anchor``: the held-out weeks scaled so the
  ensemble's last two training weeks match the observed ones (:mod:`jaxsim.forecasting`);
- ``<gradient-free>/...``: the gradient-free fit (CMA-ES by default) on the same simulator
  budget, forecast like the default variant (:data:`DEFAULT_VARIANT`);
- with ``--fits K``, ``gradient xK fits/...``: the default variant from an ensemble of K
  fits (the first to the data, the others to negative-binomial resamples of it;
  :func:`jaxsim.forecasting.bootstrap_fits`), sharing the members;
- ``persistence``: the last training week repeated (a point forecast: WIS = MAE);
- ``log-linear``: a line through the log of the last 4 known weeks, extrapolated, with
  intervals from its residuals (:func:`jaxsim.forecasting.log_linear_forecast`).

Scores per origin over its held-out weeks: ND (sum |ensemble mean - observed| / sum
observed), MAE, WIS (the Forecast Hub's 23 quantiles) and 50%/90% interval coverage
(:mod:`jaxsim.scoring`). The summary per method: the share of origins whose ND is below
persistence's, mean ND, mean WIS over every held-out point, WIS relative to persistence's,
coverage over every held-out point, and mean WIS per horizon. Targets (issue 14): ND below
persistence on at least 75% of origins, mean WIS below persistence's, 90% intervals
covering 80-95%. A per-origin CSV is written to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

#: Forecast variants of the gradient fit: (parameter paths, observation noise, anchoring).
VARIANTS = (
    ("last", False, False, 0.05), ("last", True, False, 0.05), ("random-walk", True, False, 0.05),
    ("mean-reverting", True, False, 0.05), ("last", True, True, 0.05), ("random-walk", True, True, 0.05),
    ("mean-reverting", True, True, 0.05), ("random-walk", True, True, 0.15), ("mean-reverting", True, True, 0.15),
)
#: The variants of the recorded run (``--variants main``): the old default (last value), the
#: default of calibrate_covid.py, and its neighbours.
MAIN_VARIANTS = (
    ("last", False, False, 0.05), ("random-walk", True, True, 0.15), ("mean-reverting", True, True, 0.05),
    ("mean-reverting", True, True, 0.15),
)
DEFAULT_VARIANT = ("mean-reverting", True, True, 0.15)


def variant_name(fit: str, paths: str, noise: bool, anchor: bool, min_step_sd: float) -> str:
    return (f"{fit}/{paths}" + ("+nb" if noise else "") + ("+anchor" if anchor else "")
            + (f"+sd{min_step_sd:g}" if min_step_sd != 0.05 else ""))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ntas", default="", help="comma-separated NTA codes (default: every NTA with data)")
    parser.add_argument("--first-origin", type=int, default=202040, help="first forecast origin (epiweek)")
    parser.add_argument("--last-origin", type=int, default=202226, help="last forecast origin (epiweek)")
    parser.add_argument("--every", type=int, default=4, help="weeks between origins (default 4)")
    parser.add_argument("--train-weeks", type=int, default=4, help="weeks fitted before each origin (default 4)")
    parser.add_argument("--horizon", type=int, default=4, help="weeks forecast from each origin (default 4)")
    parser.add_argument("--agents", type=int, default=10_000, help="agents per NTA (default 10,000)")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps per fit (default 60)")
    parser.add_argument("--seeds", type=int, default=4, help="runs per step (default 4)")
    parser.add_argument("--smoothing", type=float, default=3.0,
                        help="weight of the random-walk penalty on the weekly log R(t) in every fit (default 3)")
    parser.add_argument("--variants", choices=("main", "all"), default="main",
                        help="forecast variants of the gradient fit: main (4, default) or all (9, for tuning)")
    parser.add_argument("--reversion", type=float, default=0.5,
                        help="mean-reverting forecasts: AR(1) coefficient per week on log R(t) (default 0.5)")
    parser.add_argument("--fits", type=int, default=1,
                        help="also forecast the default variant from an ensemble of this many bootstrap fits "
                        "(jaxsim.forecasting.bootstrap_fits; default 1: not run)")
    parser.add_argument("--members", type=int, default=32, help="forecast ensemble members (default 32)")
    parser.add_argument("--gradient-free", default="cma-es", choices=("cma-es", "nelder-mead", "none"),
                        help="gradient-free fit on the same budget (default cma-es; none to skip)")
    parser.add_argument("--max-origins", type=int, default=0, help="stop after this many origins per NTA (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/bench_forecast", help="directory of forecast_origins.csv")
    return parser.parse_args(argv)


def origins_of(epiweeks: np.ndarray, first: int, last: int, every: int, train: int, horizon: int) -> list[int]:
    """Origins (indices of the first held-out week) from ``first`` to ``last`` every
    ``every`` weeks, with ``train`` weeks before and ``horizon`` weeks from each in the data."""
    weeks = [int(w) for w in epiweeks]
    if first not in weeks or last not in weeks:
        raise SystemExit(f"error: origins {first}..{last} must be epiweeks of the data ({weeks[0]}..{weeks[-1]})")
    start, end = weeks.index(first), weeks.index(last)
    return [i for i in range(start, end + 1, every) if i - train >= 0 and i + horizon <= len(weeks)]


def scores(members: np.ndarray, observed: np.ndarray) -> dict:
    """ND/MAE of the ensemble mean, WIS and coverage of the ensemble, per-horizon WIS."""
    from jaxsim import calibration, scoring

    members = np.atleast_2d(members)
    point = members.mean(axis=0)
    out = calibration.heldout_metrics(point, observed)
    wis = scoring.weighted_interval_score(members, observed)
    out["wis"] = float(np.mean(wis))
    out["wis_by_horizon"] = [float(v) for v in np.atleast_1d(wis)]
    if members.shape[0] > 1:
        out["covered_50"] = scoring.coverage(members, observed, 0.5)
        out["covered_90"] = scoring.coverage(members, observed, 0.9)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from jaxsim import calibration, forecasting
    from jaxsim.nyc import cases as nyc_cases
    from jaxsim.nyc import synthesis
    from jaxsim.nyc.forecast import case_calibration

    frame = nyc_cases.load_weekly_cases()
    available = nyc_cases.available_ntas(frame)
    ntas = [n.strip() for n in args.ntas.split(",") if n.strip()] or available
    unknown = [n for n in ntas if n not in available]
    if unknown:
        raise SystemExit(f"error: --ntas {','.join(unknown)}: no case data; the data covers {','.join(available)}")
    train, horizon = args.train_weeks, args.horizon
    rows, started = [], time.perf_counter()
    for nta in ntas:
        population = synthesis.synthesize_nyc_population([nta], seed=args.seed, max_agents=args.agents)
        epiweeks = nyc_cases.observed_cases([nta], frame).epiweeks
        origins = origins_of(epiweeks, args.first_origin, args.last_origin, args.every, train, horizon)
        if args.max_origins:
            origins = origins[: args.max_origins]
        print(f"{nta}: {population.size:,} agents, {len(origins)} origins", flush=True)
        for index in origins:
            t0 = time.perf_counter()
            case = case_calibration(population, nta, int(epiweeks[index - train]), train, horizon, frame=frame)
            problem, observed = case.problem, case.observed
            held = observed[train:]
            dispersion = forecasting.dispersion_from_history(case.history)
            base = {"nta": nta, "origin": int(epiweeks[index]), "observed_sum": float(held.sum()),
                    "dispersion": dispersion}

            def record(method, members, seconds=None):
                rows.append(base | {"method": method, "seconds": seconds} | scores(members, held))

            fit_start = time.perf_counter()
            result = calibration.fit(problem, steps=args.steps, seeds_per_step=args.seeds, seed=args.seed,
                                     smoothing=args.smoothing)
            fit_seconds = time.perf_counter() - fit_start
            for paths, noise, anchor, step in (MAIN_VARIANTS if args.variants == "main" else VARIANTS):
                members = forecasting.forecast_ensemble(
                    problem, result.params, args.members, parameter_forecast=paths, reversion=args.reversion,
                    dispersion=dispersion if noise else None, anchor=observed if anchor else None,
                    min_step_sd=step, seed=args.seed + index)
                record(variant_name("gradient", paths, noise, anchor, step), members[:, train:], fit_seconds)
            if args.fits > 1:
                fits_start = time.perf_counter()
                paths, noise, anchor, step = DEFAULT_VARIANT
                # The first of the ensemble is the fit above again (same seed, same program).
                fits = forecasting.bootstrap_fits(problem, args.fits, dispersion=dispersion, seed=args.seed,
                                                  steps=args.steps, seeds_per_step=args.seeds,
                                                  smoothing=args.smoothing)
                members = forecasting.forecast_from_fits(
                    problem, [f.params for f in fits], args.members,
                    parameter_forecast=paths, reversion=args.reversion,
                    dispersion=dispersion if noise else None, anchor=observed if anchor else None,
                    min_step_sd=step, seed=args.seed + index)
                record(variant_name(f"gradient x{args.fits} fits", *DEFAULT_VARIANT), members[:, train:],
                       fit_seconds + time.perf_counter() - fits_start)
            if args.gradient_free != "none":
                free_start = time.perf_counter()
                free = calibration.gradient_free_fit(problem, simulator_runs=result.simulator_runs,
                                                     seeds_per_evaluation=args.seeds, seed=args.seed,
                                                     method=args.gradient_free, smoothing=args.smoothing)
                free_seconds = time.perf_counter() - free_start
                paths, noise, anchor, step = DEFAULT_VARIANT
                members = forecasting.forecast_ensemble(
                    problem, free.params, args.members, parameter_forecast=paths, reversion=args.reversion,
                    dispersion=dispersion if noise else None, anchor=observed if anchor else None,
                    min_step_sd=step, seed=args.seed + index)
                record(variant_name(args.gradient_free, *DEFAULT_VARIANT), members[:, train:], free_seconds)
            record("persistence", calibration.persistence_forecast(observed[:train], horizon)[None])
            record("log-linear", forecasting.log_linear_forecast(case.history, horizon, weeks=4,
                                                                 seed=args.seed + index))
            gradient = next(r for r in rows[::-1] if r["method"] == variant_name("gradient", *DEFAULT_VARIANT))
            persistence = rows[-2]
            print(f"  origin {base['origin']}: observed {held.astype(int).tolist()}, ND gradient "
                  f"{gradient['nd']:.2f} vs persistence {persistence['nd']:.2f}, {time.perf_counter() - t0:.1f} s",
                  flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["nta", "origin", "method", "nd", "mae", "rmse", "wis", "covered_50", "covered_90", "observed_sum",
              "dispersion", "seconds"] + [f"wis_h{h + 1}" for h in range(horizon)]
    with open(out / "forecast_origins.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {f"wis_h{h + 1}": v for h, v in enumerate(row["wis_by_horizon"])})
    print_summary(rows, horizon, time.perf_counter() - started)
    print(f"wrote {out / 'forecast_origins.csv'}")
    return 0


def print_summary(rows: list[dict], horizon: int, seconds: float) -> None:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    persistence = {(r["nta"], r["origin"]): r for r in rows if r["method"] == "persistence"}
    origins = len(persistence)
    mean_wis_persistence = np.mean([w for r in persistence.values() for w in r["wis_by_horizon"]])
    print(f"\n{origins} origins x {horizon} horizons, {seconds / 60:.1f} min")
    header = (f"{'method':<30}{'ND<pers.':>9}{'mean ND':>9}{'mean WIS':>10}{'rel WIS':>9}{'cov50':>7}{'cov90':>7}"
              + "".join(f"{f'WIS h{h + 1}':>9}" for h in range(horizon)))
    print(header)
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        beats = np.mean([r["nd"] < persistence[(r["nta"], r["origin"])]["nd"] for r in mine])
        wis = np.array([r["wis_by_horizon"] for r in mine])
        cover = ["-".rjust(7) if "covered_50" not in mine[0] else
                 f"{np.mean([r[k] for r in mine]):>7.0%}" for k in ("covered_50", "covered_90")]
        print(f"{method:<30}{beats:>9.0%}{np.mean([r['nd'] for r in mine]):>9.3f}{wis.mean():>10.2f}"
              f"{wis.mean() / mean_wis_persistence:>9.2f}{''.join(cover)}"
              + "".join(f"{v:>9.2f}" for v in wis.mean(axis=0)))


if __name__ == "__main__":
    sys.exit(main())
