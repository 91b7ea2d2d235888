#!/usr/bin/env python
"""Rolling-origin forecasts of monthly unemployment in New York City's five boroughs:
the gradient-fitted labour market against last-value persistence and a log-linear trend.

    python benchmarks/bench_forecast_unemployment.py [--first-origin 2020-10] [--last-origin 2022-06]
        [--horizon 4] [--train-months 9] [--members 400] [--trend-months 4]
        [--borough-agents 20000] [--fit-steps 1000] [--refits 0] [--seed 0] [--out DIR]

An origin every month from ``--first-origin`` to ``--last-origin`` (21 by default). At each
origin ``O`` the observed unemployment and UI claims of months up to ``O`` are known and
nothing later: the labour market is fitted (Adam on the expected job flows,
:func:`jaxsim.models.labour.calibration.fit_labour_market`) to the last ``--train-months``
observed months up to ``O`` (fewer where the data, from August 2020, starts later), with
the willingness and case signals of ONE forward run of the COVID + economy model over the
whole span (default five-borough synthetic population) held fixed; that run holds its UI
claims input at the first month's rate, so no later observation enters it. The forecast
of months ``O + 1 .. O + horizon`` is an ensemble: each member restarts from the observed
rate of month ``O``, steps the fitted flows with the claims rate on a random walk from
month ``O``'s (never the observed later claims) and adds the fit's resampled one-step
residuals (:mod:`jaxsim.models.labour.forecast` documents and justifies the choices).

Compared: the model's ensemble; the fitted trajectory run on from the window's start
without the restart ("model free-run", a point forecast); last-value persistence (a point
forecast: its WIS is its absolute error); and the log-linear trend of the last
``--trend-months`` months per borough (:func:`jaxsim.forecasting.log_linear_forecast`).
Scores per origin pooled over boroughs and horizons: ND (of the median), MAE (percentage
points), WIS (percentage points), coverage of the 50% and 90% intervals. Printed: the
per-origin table, a summary per method (share of origins where ND is below persistence's,
means, coverage), mean WIS per horizon, and the issue's targets, met or not, with numbers.

Writes ``per_origin.csv`` (one row per origin and method), ``forecasts.csv`` (one row per
origin, method, borough and horizon: observed, median, 5/25/75/95% quantiles, percent)
and ``summary.csv`` to ``--out`` (default ``out/bench_forecast_unemployment``). Bad
input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from jaxsim import cli, outputs
from jaxsim.errors import InputError
from jaxsim.models.labour import calibration as labour_calibration
from jaxsim.models.labour import forecast as lf
from jaxsim.nyc import boroughs
from jaxsim.nyc import economy as nyc_economy
from jaxsim.nyc import economy_data as data

DEFAULT_FIRST_ORIGIN = "2020-10"
DEFAULT_LAST_ORIGIN = "2022-06"
DEFAULT_BOROUGH_AGENTS = 20_000


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-origin", default=DEFAULT_FIRST_ORIGIN,
                        help=f"first forecast origin, YYYY-MM: the last month observed "
                             f"(default {DEFAULT_FIRST_ORIGIN})")
    parser.add_argument("--last-origin", default=DEFAULT_LAST_ORIGIN,
                        help=f"last forecast origin, YYYY-MM (default {DEFAULT_LAST_ORIGIN}); one origin every month")
    parser.add_argument("--horizon", type=int, default=lf.DEFAULT_HORIZON,
                        help=f"months ahead forecast from each origin (default {lf.DEFAULT_HORIZON})")
    parser.add_argument("--train-months", type=int, default=lf.DEFAULT_TRAIN_MONTHS,
                        help=f"months up to the origin fitted (default {lf.DEFAULT_TRAIN_MONTHS}; fewer where the "
                             "data starts later)")
    parser.add_argument("--members", type=int, default=lf.DEFAULT_MEMBERS,
                        help=f"ensemble members of the model and the log-linear baseline "
                             f"(default {lf.DEFAULT_MEMBERS})")
    parser.add_argument("--trend-months", type=int, default=lf.DEFAULT_TREND_MONTHS,
                        help=f"months of the log-linear trend (default {lf.DEFAULT_TREND_MONTHS})")
    parser.add_argument("--borough-agents", type=int, default=DEFAULT_BOROUGH_AGENTS, metavar="N",
                        help=f"agents of the five-borough population of the forward run "
                             f"(default {DEFAULT_BOROUGH_AGENTS:,})")
    parser.add_argument("--fit-steps", type=int, default=1000, help="Adam steps per fit (default 1000)")
    parser.add_argument("--refits", type=int, default=lf.DEFAULT_REFITS,
                        help=f"bootstrap refits per origin for parameter uncertainty "
                             f"(default {lf.DEFAULT_REFITS}: none)")
    parser.add_argument("--refit-steps", type=int, default=lf.DEFAULT_REFIT_STEPS,
                        help=f"Adam steps of each refit, from the fit (default {lf.DEFAULT_REFIT_STEPS})")
    parser.add_argument(
        "--fit", default=",".join(labour_calibration.DEFAULT_FIT),
        help=f"labour-market parameters fitted (default {','.join(labour_calibration.DEFAULT_FIT)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the population, the run and the ensembles")
    parser.add_argument("--out", default="out/bench_forecast_unemployment", help="output directory")
    cli.add_compile_cache_argument(parser)
    return parser.parse_args(argv)


def check_args(args, months):
    """The origins' indices in the data's ``months``; InputError (one line) on bad input."""
    if args.members < 1:
        raise InputError(f"--members must be >= 1, got {args.members}")
    if args.trend_months < 2:
        raise InputError(f"--trend-months must be >= 2 (a line needs two points), got {args.trend_months}")
    if args.fit_steps < 1:
        raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    if args.refits < 0:
        raise InputError(f"--refits must be >= 0, got {args.refits}")
    if args.refit_steps < 1:
        raise InputError(f"--refit-steps must be >= 1, got {args.refit_steps}")
    if args.borough_agents < len(boroughs.BOROUGHS):
        raise InputError(f"--borough-agents must be >= {len(boroughs.BOROUGHS)}, got {args.borough_agents}")
    names = tuple(n.strip() for n in args.fit.split(",") if n.strip())
    try:
        labour_calibration.check_labour_fit_names(names)
    except labour_calibration.CalibrationError as err:
        raise InputError(f"--fit: {err}") from None
    first = _month("--first-origin", args.first_origin)
    last = _month("--last-origin", args.last_origin)
    return names, lf.origin_indices(months, first, last, horizon=args.horizon, train_months=args.train_months)


def _month(flag, text):
    try:
        return data.parse_month(text)
    except InputError as err:
        raise InputError(f"{flag}: {err}") from None


def _fmt(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _pct(value):
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def main(argv=None) -> int:
    wall = time.perf_counter()
    args = parse_args(argv)
    unemployment = data.load_unemployment()
    fit_names, data_origins = check_args(args, unemployment.months)
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(args.compile_cache)

    # The span: from the first training window's first month to the last scored month.
    first_data = data_origins[0] - (args.train_months - 1)
    span_start = unemployment.months[max(0, first_data)]
    span_end = unemployment.months[data_origins[-1] + args.horizon]
    span = span_end.ordinal - span_start.ordinal + 1
    offset = span_start.ordinal - unemployment.months[0].ordinal
    origins = [o - offset for o in data_origins]
    months = unemployment.months[offset: offset + span]
    observed = unemployment.window(span_start, span)
    claims = data.load_ui_claims().claims_rate(unemployment, span_start, span)

    # One forward run of the COVID + economy model over the span.
    start = time.perf_counter()
    population = boroughs.five_borough_population(args.borough_agents, seed=args.seed)
    setup = nyc_economy.economy_setup(population, span_start, span, seed=args.seed)
    signals = lf.simulate_signals(setup, seed=args.seed)
    forward_seconds = time.perf_counter() - start
    print(f"forward run: {population.size:,} agents, {span} months ({months[0]}..{months[-1]}, {setup.days} days), "
          f"UI claims input held at {months[0]}; {forward_seconds:.1f} s (compile {signals.compile_seconds:.1f} s, "
          f"run {signals.run_seconds:.1f} s)")
    print(f"origins: every month {months[origins[0]]}..{months[origins[-1]]} ({len(origins)}); fit on up to "
          f"{args.train_months} months up to the origin, forecast {args.horizon} months; {args.members} members")
    print()
    header = (f"{'origin':>8} {'train':>5} | {'ND model':>8} {'persist':>8} {'log-lin':>8} {'free':>8} | "
              f"{'WIS model':>9} {'persist':>8} {'log-lin':>8} | {'cov90':>5} | shocks")
    print(header)
    print("-" * len(header))

    def progress(i, origin, scores, forecast, fit_seconds):
        first, n = forecast.window
        print(f"{str(months[origin]):>8} {n:>5} | {scores['model']['nd']:8.3f} {scores['persistence']['nd']:8.3f} "
              f"{scores['log-linear']['nd']:8.3f} {scores['model free-run']['nd']:8.3f} | "
              f"{scores['model']['wis']:9.3f} {scores['persistence']['wis']:8.3f} {scores['log-linear']['wis']:8.3f} | "
              f"{_pct(scores['model']['coverage_90']):>5} | {forecast.shocks}", flush=True)

    result = lf.rolling_origin(
        setup.params.economy, months, observed, claims, signals, origins, region_names=boroughs.BOROUGHS,
        train_months=args.train_months, horizon=args.horizon, members=args.members, trend_months=args.trend_months,
        fit_names=fit_names, steps=args.fit_steps, refits=args.refits,
        refit_steps=args.refit_steps, seed=args.seed, regions=setup.has_force, progress=progress,
    )
    summary = lf.summarise(result.per_origin, result.forecasts)

    print()
    print("Summary over origins (ND, MAE: means of the per-origin values; WIS: mean, percentage points; "
          "coverage over all points)")
    horizon_columns = [f"wis_h{h + 1}" for h in range(args.horizon)]
    header = (f"{'method':<15} {'ND<persist':>10} {'ND':>6} {'MAE pp':>6} {'WIS pp':>6} {'cov50':>5} {'cov90':>5} | "
              + " ".join(f"{'WIS h' + str(h + 1):>6}" for h in range(args.horizon)))
    print(header)
    print("-" * len(header))
    for row in summary.to_dict("records"):
        beats = row["beats_persistence_nd"]
        print(f"{row['method']:<15} {'-' if not np.isfinite(beats) else f'{100 * beats:.0f}%':>10} {row['nd']:6.3f} "
              f"{row['mae']:6.3f} {row['wis']:6.3f} {_pct(row['coverage_50']):>5} {_pct(row['coverage_90']):>5} | "
              + " ".join(f"{row[c]:6.3f}" for c in horizon_columns))
    print()
    print("Targets (the model's ensemble):")
    for name, met, measured in lf.targets(summary):
        print(f"  [{'met' if met else 'MISSED'}] {name}: {measured}")
    baseline = lf.targets(summary, "log-linear")
    print("  (log-linear baseline against the same targets: "
          + "; ".join(f"{'met' if met else 'missed'} {measured}" for _, met, measured in baseline) + ")")

    out = Path(args.out)
    with outputs.StagedOutputs(out) as stage:
        result.per_origin.to_csv(stage.path / "per_origin.csv", index=False, float_format="%.6g")
        result.forecasts.to_csv(stage.path / "forecasts.csv", index=False, float_format="%.6g")
        summary.to_csv(stage.path / "summary.csv", index=False, float_format="%.6g")
    fits = result.per_origin.loc[result.per_origin["method"] == "model", "fit_seconds"]
    print()
    print(f"fits and forecasts: {result.seconds:.1f} s ({fits.mean():.2f} s per origin); "
          f"wall {time.perf_counter() - wall:.1f} s")
    print(f"wrote {out / 'per_origin.csv'}, {out / 'forecasts.csv'}, {out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_cli(main))
