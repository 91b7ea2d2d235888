#!/usr/bin/env python
"""Policy counterfactuals for a NYC neighbourhood: what if isolation, closures, vaccination
or testing had been different, and what do the next weeks look like under each?

    python scenarios/counterfactual_isolation.py [--population DIR | --ntas QN0103 | --agents N]
        [--members 32] [--out DIR] [--start-week 202047] [--observed-weeks 6]
        [--weeks-ahead 4] [--calibration PATH/calibration.json | --no-fit] [--fit-steps 60]
        [--seed 0] [--design] [--design-steps 20]

With no arguments: a synthetic Astoria (NTA QN0103, 47,303 people), its weekly R(t)
fitted to the 6 observed weeks from epiweek 202047, then the scenarios over those weeks
and 4 weeks beyond them, 32 members per scenario.

Methods
-------
Model. The SEIRM model with isolation behaviour of :mod:`jaxsim.models.covid` (household
and community contacts, age-specific susceptibility and fatality, isolation probability
set weekly from the simulated case trend), with its intervention kinds
(:mod:`jaxsim.models.covid.interventions`, on the open protocol of
:mod:`jaxsim.interventions`). Day 0 is the first day (Sunday) of the start week; initial
exposed and infected shares and the isolation heuristic's prior case signal come from the
reported cases of the start week and the 4 weeks before it, divided by the ascertainment
(0.25) and the neighbourhoods' census people (:func:`jaxsim.nyc.setup.covid_setup`); a
population directory with a ``disease_stages.csv`` uses those stages instead.

Parameters. By default the weekly transmission rate R(t) is fitted first to the observed
weeks (``--observed-weeks``) of the population's case data: :func:`jaxsim.calibration.fit`,
``--fit-steps`` Adam steps (60) of 4 runs each on the Poisson deviance of the weekly
reported cases (simulated onsets x ascertainment), straight-through gradients, starting
from ``--transmission-rate``; the weeks after the observed ones repeat the last fitted
week's rate. The other parameters are the defaults of :mod:`jaxsim.models.covid`. The
fit takes about 70 s on 2 CPU cores for the default population, twice the ensemble.
With ``--calibration`` (the ``calibration.json`` that ``scenarios/calibrate_covid.py``
writes) nothing is fitted here and its fitted parameters are used: the weekly
transmission rate by epiweek (weeks after the calibration window repeat its last week; a
run starting before the window is refused), and any other fitted parameter as fitted
(the file is read by :mod:`jaxsim.nyc.calibration`). With ``--no-fit``, or where no case
data covers the population (a note says so), the uncalibrated defaults of
:mod:`jaxsim.models.covid` (``--transmission-rate`` for every week). ``summary.json``
records which (``parameter_source``) and the fit (``fit``: weekly rates, loss curve,
seconds).

Scenarios. All share one set of interventions, switched off in the baseline (a compliance
multiplier of 1, a contact multiplier of 1, no doses, no tests: a set at zero effect runs
exactly like no set, tested), so all run as one compiled ensemble:

- ``baseline``: the model as it is.
- ``isolation_plus_20pct``: every agent's daily isolation probability x1.2 from the third
  week (day 14) on.
- ``community_closure_2_weeks``: the ``community`` layer (or ``school`` where the
  population has one) closed on days 14-27.
- ``vaccination``: from day 14, 0.5% of the population a day vaccinated, oldest age
  bands first (65A, 50t64, 40t49, 30t39, 20t29, U19), efficacy 0.9 as a reduction of
  susceptibility, protection 14 days after the dose.
- ``testing``: from day 14, symptomatic agents tested with probability 0.3 a day and any
  agent with probability 0.01 a day; sensitivity 0.85, result after 2 days, positives
  isolate 10 days.
- ``triggered_distancing``: community contacts halved while the simulated onsets of the
  last 7 days exceed twice those expected in the start week, until they fall below it
  (a condition with hysteresis, evaluated daily).

Common random numbers. Member ``k`` of every scenario uses the same key, so its random
numbers (who isolates, who is exposed, who dies, drawn per agent from the key, the
substep's name and the agent's index) are the same in every scenario: the paired
difference of member ``k`` is the policy's effect on one realisation of the epidemic.

Devices. The members run on every local device (:func:`jaxsim.ensemble.run_ensemble`); on
a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N python
scenarios/counterfactual_isolation.py`` runs them on N cores at once, with the same
results (members equal their single runs on any number of devices).

Analysis modes. Retrospective: the baseline over the observed weeks against the observed
weekly cases (reported = simulated onsets x ascertainment; the coverage of the 90% band
and the error of the median), printed at the end as "k of n observed weeks inside the
baseline's 90% band" and the median's normalised deviation (ND: sum of absolute errors /
sum of observed cases) next to that of one-week-ahead persistence on the same weeks
(each observed week predicted by the observed week before it; the first by the week
before the run where the data has it). With R(t) fitted here this check is in-sample (the
fit saw these weeks). Coverage under 50%, or a median worse than persistence, adds a line
starting ``note:`` with the numbers. Counterfactual: every alternative over the same weeks,
paired with the baseline. Prospective: all scenarios over the ``--weeks-ahead`` weeks
after the observed ones (the last observed week's transmission rate carried forward).
Intervals: the central 90% of the members' values or paired differences, and a 90%
confidence interval of the mean difference (normal approximation).

Policy design (``--design``): a weekly isolation-compliance schedule (multipliers in
[1, 3], starting from 1.2) over the whole horizon optimised by gradient through the
simulator (Adam, straight-through estimator) to minimise infections + 0.01 x isolation-days with the
isolation-days held to 110% of the baseline's, compared with the best constant multiplier
of a grid on the same budget and the same evaluation seeds
(:mod:`jaxsim.models.covid.policy_design`).

Outputs (in ``--out``, default ``out/counterfactual_isolation``; all written or none):
``scenarios.csv`` and the same table as ``scenarios.parquet`` (per scenario, period, day,
date and metric: mean and 5/25/50/75/95% quantiles over members; weekly reported cases
with the observed ones), ``report.html`` (one page: the plot, the key numbers of
``summary.json``, links to the files; :mod:`jaxsim.report`),
``summary.json`` (settings, parameters and their source, the fit of R(t) when one ran
here, interventions with units, retrospective check with persistence, per-scenario
quantiles of totals and paired differences for the counterfactual and prospective
periods, timings) and ``counterfactual.png`` (weekly
reported cases per scenario by date with bands and the observed cases; paired infections
averted).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsim import calibration, cli, ensemble, interventions, memory, outputs, parameters
from jaxsim.errors import InputError
from jaxsim.models import covid
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc import cli as nyc_cli
from jaxsim.nyc.calibration import calibrated_values, read_calibration
from jaxsim.nyc.setup import case_window, covid_setup
from jaxsim.report import REPORT_FILE, write_report
from jaxsim import caches, progress
from jaxsim.scenarios import arguments, command

DEFAULT_START_WEEK = arguments.COUNTERFACTUAL_DEFAULT_START_WEEK
SCENARIOS = (
    "baseline", "isolation_plus_20pct", "community_closure_2_weeks", "vaccination", "testing",
    "triggered_distancing",
)
#: Day the alternatives start (the third week) and the closure's length.
POLICY_START_DAY = 14
CLOSURE_DAYS = 14
VACCINATION_PRIORITY = ("65A", "50t64", "40t49", "30t39", "20t29", "U19")
#: Metrics kept per member (the rest of the model's metrics are not needed here).
METRICS = ("new_infections", "new_cases", "new_deaths", "isolating", "vaccinations", "tests",
           "positive_tests", "intervention_active")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def parse_args(argv=None):
    """The options of this scenario (:mod:`jaxsim.scenarios.arguments`)."""
    return arguments.parse("counterfactual_isolation", argv)


def check_settings(args) -> None:
    """One-line :class:`InputError` naming the flag and value for settings out of range."""
    for flag, value, low in (("--members", args.members, 1), ("--observed-weeks", args.observed_weeks, 1),
                             ("--weeks-ahead", args.weeks_ahead, 0), ("--design-steps", args.design_steps, 1),
                             ("--design-seeds", args.design_seeds, 1), ("--fit-steps", args.fit_steps, 1)):
        if value < low:
            raise InputError(f"{flag} must be >= {low}, got {value}")
    if args.no_fit and args.calibration:
        raise InputError(f"--no-fit and --calibration {args.calibration} exclude each other: --calibration uses "
                         "a calibration's fitted parameters, --no-fit the model's defaults")
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 < args.ascertainment <= 1:
        raise InputError(f"--ascertainment must lie in (0, 1], got {args.ascertainment}")
    if not (math.isfinite(args.transmission_rate) and args.transmission_rate >= 0):
        raise InputError(f"--transmission-rate must be a finite number >= 0, got {args.transmission_rate}")


# --------------------------------------------------------------------------- scenarios
def scenario_interventions(world, *, level: dict, closure_layer: str, trigger_on: float,
                           weeks: int) -> interventions.Interventions:
    """The shared set of interventions at the levels ``level`` (the baseline's are all at
    zero effect)."""
    return interventions.combine(
        covid.isolation_compliance(
            np.full(weeks, level["compliance"], np.float32), start=POLICY_START_DAY, name="isolation_compliance"),
        covid.scale_contacts(
            closure_layer, level["closure"], start=POLICY_START_DAY, end=POLICY_START_DAY + CLOSURE_DAYS,
            name="closure"),
        covid.scale_contacts(
            "community", level["distancing"], name="triggered_distancing",
            schedule=covid.when_cases(on_above=trigger_on, off_below=trigger_on / 2)),
        covid.vaccination(
            world, level["doses"], priority=[b for b in VACCINATION_PRIORITY if b in world.category_labels("age")],
            efficacy=0.9, protection_delay_days=14, start=POLICY_START_DAY, seed=1),
        covid.testing(
            random_share=level["random_tests"], symptomatic_share=level["symptomatic_tests"],
            sensitivity=0.85, delay_days=2, isolation_days=10, start=POLICY_START_DAY),
    )


def scenario_levels(population) -> dict[str, dict]:
    off = {"compliance": 1.0, "closure": 1.0, "distancing": 1.0, "doses": 0.0, "random_tests": 0.0,
           "symptomatic_tests": 0.0}
    return {
        "baseline": off,
        "isolation_plus_20pct": off | {"compliance": 1.2},
        "community_closure_2_weeks": off | {"closure": 0.0},
        "vaccination": off | {"doses": float(math.floor(0.005 * population.size))},
        "testing": off | {"random_tests": 0.01, "symptomatic_tests": 0.3},
        "triggered_distancing": off | {"distancing": 0.5},
    }


# ------------------------------------------------------------------------------ outputs
def weekly(values: np.ndarray, weeks: int) -> np.ndarray:
    """``[M, days] -> [M, weeks]`` sums over whole weeks."""
    return values[:, : weeks * 7].reshape(values.shape[0], weeks, 7).sum(axis=2)


def band(values: np.ndarray) -> dict[str, list[float]]:
    out = {"mean": values.mean(axis=0).tolist()}
    for q, row in zip(QUANTILES, np.quantile(values, QUANTILES, axis=0)):
        out[ensemble.quantile_name(q)] = row.tolist()
    return out


def scenario_table(results: dict, *, observed_days: int, start_date, ascertainment: float,
                   observed_weekly: np.ndarray, weeks: int) -> pd.DataFrame:
    """Daily quantile bands per scenario and metric, plus weekly reported cases."""
    frames = []
    for name, result in results.items():
        daily = result.quantiles([m for m in METRICS if m in result.metrics and m != "intervention_active"],
                                 q=QUANTILES)
        daily.insert(0, "scenario", name)
        frames.append(daily)
        reported = weekly(result.metrics["new_cases"].astype(np.float64), weeks) * ascertainment
        frame = pd.DataFrame({"scenario": name, "day": np.arange(weeks) * 7, "metric": "reported_cases_per_week",
                              "mean": reported.mean(axis=0)})
        for q, row in zip(QUANTILES, np.quantile(reported, QUANTILES, axis=0)):
            frame[ensemble.quantile_name(q)] = row
        frame["observed"] = np.pad(observed_weekly, (0, max(0, weeks - len(observed_weekly))),
                                   constant_values=np.nan)[:weeks]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if "observed" not in table:
        table["observed"] = np.nan
    table.insert(1, "period", np.where(table["day"] < observed_days, "retrospective", "prospective"))
    dates = (pd.Timestamp(start_date) + pd.to_timedelta(table["day"], unit="D")).dt.strftime("%Y-%m-%d") \
        if start_date is not None else ""
    table.insert(3, "date", dates)
    return table


def plot(path: Path, results: dict, *, weeks: int, observed_weeks: int, ascertainment: float,
         observed_used: np.ndarray, observed_later: np.ndarray, differences: dict, title: str,
         start_date=None):
    """Weekly reported cases per scenario (median and 5-95% of members at each week's
    middle), the observed weeks (a missing week is a gap, not a zero), and the paired
    infections averted. Calendar dates on the x axis when the run has a ``start_date``;
    legends to the right of the panels. Returns the figure (saved and closed)."""
    plt = outputs.pyplot()
    fig, (ax, ax_diff) = plt.subplots(2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [3, 2]})

    def at(week):  # weeks from the run's first day to x positions (dates when the run has a start date)
        week = np.asarray(week, np.float64)
        if start_date is None:
            return week
        return np.datetime64(pd.Timestamp(start_date), "h") + np.rint(week * 7 * 24).astype("timedelta64[h]")

    x = at(np.arange(weeks) + 0.5)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, result) in enumerate(results.items()):
        reported = weekly(result.metrics["new_cases"].astype(np.float64), weeks) * ascertainment
        lo, mid, hi = np.quantile(reported, [0.05, 0.5, 0.95], axis=0)
        colour = colours[i % len(colours)]
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, mid, color=colour, marker="o", markersize=3, label=f"{name} (median, 5-95%)",
                linewidth=2.2 if name == "baseline" else 1.4)
    if observed_used.size:
        ax.plot(at(np.arange(len(observed_used)) + 0.5), observed_used, color="black", marker="s", linewidth=2,
                label="observed cases (used)")
    if observed_later.size:
        later_x = at(observed_weeks + np.arange(len(observed_later)) + 0.5)
        ax.plot(later_x, observed_later, color="grey", marker="s", linestyle=":", linewidth=1.5,
                label="observed cases (later, not used)")
    ax.axvline(at(observed_weeks), color="grey", linestyle="--", linewidth=1)
    ax.text(ax.convert_xunits(at(observed_weeks)), 1.0, "  prospective ->", transform=ax.get_xaxis_transform(),
            va="top", fontsize=8, color="grey")
    ax.axvline(at(POLICY_START_DAY / 7), color="tab:red", linestyle=":", linewidth=1,
               label=f"alternatives start (day {POLICY_START_DAY})")
    ax.set_xlim(at(0), at(weeks))  # the run's whole weeks
    if start_date is None:
        ax.set_xlabel("week of the run")
    else:
        outputs.format_date_axis(ax, weeks=weeks)
        ax.set_xlabel("date (ticks on Sundays, the first days of epiweeks; points at each week's middle)")
    ax.set_ylabel("reported cases per week")
    ax.set_ylim(bottom=0)
    outputs.legend_outside(ax, fontsize=7)
    ax.set_title(title)

    names = list(differences)
    means = [differences[n]["infections_averted"]["mean"] for n in names]
    lows = [differences[n]["infections_averted"]["low"] for n in names]
    highs = [differences[n]["infections_averted"]["high"] for n in names]
    y = np.arange(len(names))
    ax_diff.barh(y, means, color="tab:blue", alpha=0.6, label="mean")
    ax_diff.errorbar(means, y, xerr=[np.subtract(means, lows), np.subtract(highs, means)], fmt="none",
                     ecolor="black", capsize=3, label="central 90% of members")
    ax_diff.axvline(0, color="black", linewidth=0.8)
    ax_diff.set_yticks(y)
    ax_diff.set_yticklabels(names, fontsize=8)
    ax_diff.set_xlabel("infections averted vs baseline (infections over the whole horizon, paired by member)")
    outputs.legend_outside(ax_diff, fontsize=7)
    fig.tight_layout()
    outputs.save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------------- the fit
#: Runs averaged per Adam step of the fit.
FIT_SEEDS = 4


def fit_parameters(args, world, params, observed: np.ndarray, weeks: int, epiweeks) -> tuple:
    """Fit the per-period parameters (the weekly R(t)) to the observed weeks; returns the
    parameters for all ``weeks`` (weeks after the observed ones repeat the last fitted week)
    and the fit's record."""
    observed_weeks = args.observed_weeks
    per_week = [name for name, spec in parameters.specs(params).items() if spec.per == "week"]
    window_params = params.replace(**{name: getattr(params, name)[:observed_weeks] for name in per_week})
    model = covid.covid_model()
    memory.check_fits(memory.run_bytes(model, window_params, world, 7 * observed_weeks, differentiable=True),
                      f"fitting R(t) on {world.num_agents:,} agents (--no-fit skips the fit)")
    problem = calibration.CalibrationProblem(
        model=model, world=world, params=window_params, observed=observed, train_periods=observed_weeks,
        observation=calibration.Observation("new_cases", 7, scale=args.ascertainment),
        estimator="straight_through",
    )
    span = (f"epiweeks {epiweeks[0]}..{epiweeks[observed_weeks - 1]}" if epiweeks[0] is not None
            else "the observed weeks")
    print(f"fitting the weekly R(t) to {span} ({observed_weeks} weeks): {args.fit_steps} Adam steps x {FIT_SEEDS} "
          f"seeds (--calibration FILE uses a saved fit, --no-fit the defaults)")
    on_step = cli.fit_progress(args.fit_steps)

    result = calibration.fit(problem, steps=args.fit_steps, seeds_per_step=FIT_SEEDS, seed=args.seed,
                             on_step=on_step)
    if result.stopped != "completed":
        print(f"warning: the fit {result.stopped}", file=sys.stderr)
    # Back to the run's weeks: the observed ones fitted, the later ones repeating the last.
    full = params.replace(**{
        name: jnp.asarray(getattr(params, name)).at[:observed_weeks].set(getattr(result.params, name))
        for name in per_week
    })
    full = full.replace(**{name: getattr(result.params, name) for name in result.names if name not in per_week})
    full = calibration.extend_last_week(full, observed_weeks)
    curve = result.loss_curve
    record = {
        "method": f"Adam on the Poisson deviance of the weekly reported cases, {FIT_SEEDS} runs per step, "
                  "straight-through gradients (jaxsim.calibration.fit)",
        "fitted": list(result.names),
        "epiweeks": list(epiweeks[:observed_weeks]),
        "steps": args.fit_steps,
        "seeds_per_step": FIT_SEEDS,
        "loss_first": curve[0] if curve else None,
        "loss_last": curve[-1] if curve else None,
        "loss_curve": curve,
        "stopped": result.stopped,
        "seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "simulator_runs": result.simulator_runs,
        "fitted_weekly": {name: np.asarray(getattr(result.params, name), np.float64).tolist() for name in per_week
                          if name in result.names},
        "run_weekly": {name: np.asarray(getattr(full, name), np.float64).tolist() for name in per_week
                       if name in result.names},
        "later_weeks": "repeat the last fitted week",
    }
    loss = f"loss {curve[0]:.4f} -> {curve[-1]:.4f}" if curve else "no finite loss"
    record["source"] = (f"fitted here: {', '.join(result.names)} of the {observed_weeks} observed weeks, "
                        f"{len(curve)} of {args.fit_steps} Adam steps x {FIT_SEEDS} seeds, {loss}, "
                        f"{result.seconds:.1f} s")
    return full, record


def retrospective_check(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray, observed: np.ndarray,
                        previous: float | None) -> dict:
    """The baseline's retrospective scores against the observed weeks, with one-week-ahead
    persistence (each observed week predicted by the one before it; the first week by the
    week before the run where the data has it) on the same weeks."""
    inside = (observed >= lo) & (observed <= hi)
    median = calibration.heldout_metrics(mid, observed)
    out = {
        "coverage_90": float(np.mean(inside)),
        "coverage_90_weeks": int(inside.sum()),
        "median_mae": median["mae"],
        "median_nd": median["nd"],
        "persistence": None,
    }
    first = 0 if previous is not None else 1
    if observed.size > first:
        truth = observed[first:]
        predicted = np.concatenate([[previous] if previous is not None else [], observed[:-1]])[-truth.size:]
        out["persistence"] = {
            "method": "one-week-ahead persistence: each observed week predicted by the observed week before it"
                      + (" (the first by the week before the run)" if previous is not None else ""),
            "weeks": int(truth.size),
            "nd": calibration.heldout_metrics(predicted, truth)["nd"],
            "median_nd_same_weeks": calibration.heldout_metrics(mid[first:], truth)["nd"],
        }
    return out


def retrospective_lines(retro: dict, *, source: str) -> list[str]:
    """One or two lines of the retrospective check, and a ``note:`` line when the baseline
    covers under half the observed weeks or its median is worse than persistence."""
    n = len(retro["observed_cases_per_week"])
    k = retro["coverage_90_weeks"]
    epiweeks = retro["epiweeks"]
    span = f"epiweeks {epiweeks[0]}..{epiweeks[-1]}" if epiweeks and epiweeks[0] is not None else "observed weeks"
    lines = [f"retrospective check ({span}; {source}): {k} of {n} observed weeks inside the baseline's 90% band"]
    persistence = retro["persistence"]
    problems = []
    if k / n < 0.5:
        problems.append(f"only {k} of {n} observed weeks ({k / n:.0%}) lie inside the baseline's 90% band")
    if persistence is None:
        lines.append(f"  baseline median's ND (sum |error| / sum observed) {retro['median_nd']:.3f} "
                     "(no persistence comparison: one observed week and none before it)")
    else:
        same = persistence["median_nd_same_weeks"]
        weeks_note = ("" if persistence["weeks"] == n
                      else f" (weeks 2..{n}; median's ND over all {n}: {retro['median_nd']:.3f})")
        lines.append(f"  baseline median's ND (sum |error| / sum observed) {same:.3f} vs {persistence['nd']:.3f} "
                     f"for one-week-ahead persistence (each week predicted by the observed week before it) on the "
                     f"same {persistence['weeks']} weeks{weeks_note}")
        if same > persistence["nd"]:
            problems.append(f"the baseline's median (ND {same:.3f}) is worse than one-week-ahead persistence "
                            f"(ND {persistence['nd']:.3f})")
    if problems:
        lines.append("note: " + "; ".join(problems) + ": read the scenarios' levels with caution")
    return lines


# --------------------------------------------------------------------------------- main
def run(args) -> int:
    """The run the parsed options ask for; 0 on success."""
    check_settings(args)
    wall = time.perf_counter()
    out = Path(args.out)
    calibration_info = read_calibration(args.calibration) if args.calibration else None
    start_week = args.start_week or (calibration_info["epiweeks"][0] if calibration_info else DEFAULT_START_WEEK)

    population = nyc_cli.population_from_args(args, seed=args.seed)
    n = population.size
    weeks = args.observed_weeks + args.weeks_ahead
    days = 7 * weeks
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts "
          f"({', '.join(f'{k}: {v.num_edges:,}' for k, v in population.networks.items())})")

    # Observed cases where the data covers the population's neighbourhoods.
    window = case_window(population)
    if window.observed is None and args.start_week:
        raise InputError(
            f"--start-week {args.start_week}: no case data covers this population's areas "
            f"(data covers {nyc_cases.available_ntas()})"
        )
    if window.observed is not None:
        try:
            window = case_window(population, start_week)
        except nyc_cases.CaseDataError as err:
            raise InputError(f"--start-week {start_week}: {err}") from None
    run_epiweeks: list[int | None] = [None] * weeks
    observed_used = observed_later = np.zeros(0)
    start_date, case_scale = window.start_date, window.agent_share
    if window.observed is not None:
        available = len(window.observed.epiweeks) - window.start_index
        if available < args.observed_weeks:
            raise InputError(
                f"--observed-weeks {args.observed_weeks} from epiweek {window.start_epiweek}: the data has only "
                f"{available} weeks from there (to {int(window.observed.epiweeks[-1])})"
            )
        known = window.epiweeks(weeks)
        run_epiweeks = known + [None] * (weeks - len(known))
        cases = window.weekly_cases(weeks)
        observed_used = cases[: args.observed_weeks]
        observed_later = cases[args.observed_weeks:]
        if not np.all(np.isfinite(observed_used)):
            missing = [run_epiweeks[w] for w in range(args.observed_weeks) if not np.isfinite(observed_used[w])]
            raise InputError(f"no case count for epiweek(s) {missing} in the observed weeks")

    # Parameters: a calibration file's where one is given, else R(t) fitted here to the
    # observed weeks, else (--no-fit, or no case data) the model's defaults.
    setup = covid_setup(population, window, weeks, ascertainment=args.ascertainment,
                        transmission_rate=args.transmission_rate)
    world = setup.world
    calibrated = calibrated_values(calibration_info, args.calibration, world, run_epiweeks) if calibration_info else {}
    base_params = setup.params.replace(**{k: jnp.asarray(v) for k, v in calibrated.items()})
    fit_record = None
    if calibration_info:
        parameter_source = (f"calibration: {args.calibration} "
                            f"(fitted {sorted(calibration_info['fitted_parameters'])})")
    elif args.no_fit:
        parameter_source = "defaults of jaxsim.models.covid (--no-fit)"
        print(f"parameters: the model's defaults, uncalibrated (--no-fit; R(t) {args.transmission_rate:g} every week)")
    elif observed_used.size:
        base_params, fit_record = fit_parameters(args, world, base_params, observed_used, weeks, run_epiweeks)
        parameter_source = fit_record["source"]
        rates = fit_record["run_weekly"].get("transmission_rate")
        print(f"{parameter_source}" + (f"; weekly R(t) {', '.join(f'{r:.2f}' for r in rates)}" if rates else ""))
    else:
        parameter_source = "defaults of jaxsim.models.covid (no case data covers the population: nothing to fit)"
        print(f"note: no case data covers this population, so nothing to fit: the parameters are the model's "
              f"uncalibrated defaults (R(t) {args.transmission_rate:g} every week)")
    covid.validate_params(base_params, world.num_categories("age"), world.num_categories("isolation_group"))
    stages = population.initial_states.get("disease_stage")
    if stages is not None and any(k.startswith("initial_") for k in calibrated):
        print("note: the population's disease_stages.csv sets day 0; calibrated initial shares are not used",
              file=sys.stderr)

    # Scenarios: one intervention structure, levels per scenario.
    layers = sorted(world.graph)
    closure_layer = "school" if "school" in layers else "community"
    if "community" not in layers:
        raise InputError(f"the population has no 'community' contact layer (layers: {layers}); name one with "
                         "--layer-roles, e.g. --layer-roles 0=community")
    start_onsets_week = float(base_params.initial_infected_share) * n / covid.DEFAULT_INFECTED_DAYS * 7
    if stages is not None:
        start_onsets_week = float(np.sum(stages == covid.INFECTED)) / covid.DEFAULT_INFECTED_DAYS * 7
    trigger_on = max(2.0 * start_onsets_week, 1.0)
    levels = scenario_levels(population)
    scenario_params = {
        name: base_params.replace(interventions=scenario_interventions(
            world, level=level, closure_layer=closure_layer, trigger_on=trigger_on, weeks=weeks))
        for name, level in levels.items()
    }

    keys = ensemble.member_keys(args.seed, args.members)
    batch, all_keys, members = ensemble.cross(list(scenario_params.values()), keys, list(scenario_params))
    model = covid.covid_model()
    total_members = len(scenario_params) * args.members
    print(f"running {len(scenario_params)} scenarios x {args.members} members = {total_members} runs of {days} days "
          f"(epiweeks {run_epiweeks[0] or '?'}.., {args.observed_weeks} observed + {args.weeks_ahead} ahead)")
    progress.stage(f"compiling the ensemble program ({n:,} agents, {days} days)")
    with progress.Progress("ensemble", total=total_members, unit="runs") as shown:
        result = ensemble.run_ensemble(
            model, all_keys, batch, world, days, batch_size=args.batch_size,
            metric_names=METRICS, members=members,
            vector_labels={"intervention_active": list(scenario_params["baseline"].interventions.names)},
            on_batch=lambda done, total: shown.update(done),
        )
    print(f"ensemble: compile {result.compile_seconds:.1f} s, run {result.run_seconds:.1f} s "
          f"({total_members / max(result.run_seconds, 1e-9):.1f} members/s, batches of {result.batch_size}"
          f"{f' on each of {result.devices} devices' if result.devices > 1 else ''})")
    by_scenario = result.split("set")
    baseline = by_scenario["baseline"]
    alternatives = {k: v for k, v in by_scenario.items() if k != "baseline"}

    # Analyses.
    observed_days = 7 * args.observed_weeks
    retro = slice(0, observed_days)
    prospective = slice(observed_days, days)
    counterfactual = ensemble.compare(baseline, alternatives, days=retro)
    ahead = ensemble.compare(baseline, alternatives, days=prospective) if args.weeks_ahead else None
    whole = ensemble.compare(baseline, alternatives)
    reported = weekly(baseline.metrics["new_cases"].astype(np.float64), weeks) * args.ascertainment
    retrospective = {
        "days": [0, observed_days - 1],
        "epiweeks": run_epiweeks[: args.observed_weeks],
        "baseline_reported_cases_per_week": band(reported[:, : args.observed_weeks]),
    }
    if observed_used.size:
        lo, mid, hi = np.quantile(reported[:, : args.observed_weeks], [0.05, 0.5, 0.95], axis=0)
        before = window.weekly_cases(1, offset=-1)
        previous = float(before[0]) if before.size and np.isfinite(before[0]) else None
        retrospective |= {
            "observed_cases_per_week": observed_used.tolist(),
            "case_scale": case_scale,
            "in_sample": fit_record is not None,
        } | retrospective_check(mid, lo, hi, observed_used, previous)

    design = None
    if args.design:
        design = run_design(args, base_params, world, days, baseline)

    # Outputs: staged, so that a failure leaves no half-written set of files.
    table = scenario_table(by_scenario, observed_days=observed_days, start_date=start_date,
                           ascertainment=args.ascertainment, observed_weekly=observed_used, weeks=weeks)
    summary = {
        "scenario": "counterfactual_isolation",
        "arguments": vars(args),
        "seed": args.seed,
        "members_per_scenario": args.members,
        "days": days,
        "start_epiweek": run_epiweeks[0],
        "start_date": start_date,
        "observed_weeks": args.observed_weeks,
        "weeks_ahead": args.weeks_ahead,
        "ascertainment": args.ascertainment,
        "parameter_source": parameter_source,
        "parameters": covid.params_report(base_params, world),
        "fit": fit_record,
        "initial_conditions": {"source": setup.initial_source},
        "scenarios": {name: p.interventions.describe() for name, p in scenario_params.items()},
        "common_random_numbers": "member k of every scenario uses key k; differences are paired member by member",
        "retrospective": retrospective,
        "counterfactual": counterfactual | {"days": [0, observed_days - 1]},
        "prospective": None if ahead is None else ahead | {"days": [observed_days, days - 1]},
        "whole_horizon": whole | {"days": [0, days - 1]},
        "policy_design": design,
        "population": population.summary(),
        "versions": outputs.package_versions(),
        "caches": caches.describe(),
        "timing": {
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            "members_per_second": total_members / max(result.run_seconds, 1e-9),
            "batch_size": result.batch_size,
            "devices": result.devices,
            "fit_seconds": None if fit_record is None else fit_record["seconds"],
            "total_seconds": time.perf_counter() - wall,
        },
    }
    title = (f"{', '.join(window.observed.ntas) if window.observed is not None else 'population'}, {n:,} agents, "
             f"{args.members} members per scenario")
    with outputs.StagedOutputs(out) as stage:
        outputs.write_table(table, stage.path, "scenarios")
        outputs.write_json(summary, stage.path / "summary.json")
        plot(stage.path / "counterfactual.png", by_scenario, weeks=weeks, observed_weeks=args.observed_weeks,
             ascertainment=args.ascertainment, observed_used=observed_used, observed_later=observed_later,
             differences=whole["differences"], title=title, start_date=start_date)
        write_report(stage.path, title=f"counterfactual_isolation: {title}", info=summary, source="summary.json")

    print(f"\n{'scenario':<28}{'infections averted (90%)':>32}{'deaths averted':>22}{'extra isolation-days':>24}")
    for name, diff in whole["differences"].items():
        inf, dead, iso = diff["infections_averted"], diff["deaths_averted"], diff["extra_isolation_days"]
        print(f"{name:<28}{inf['mean']:>12.0f} [{inf['low']:>7.0f}, {inf['high']:>7.0f}]"
              f"{dead['mean']:>14.1f} [{dead['low']:>3.0f},{dead['high']:>3.0f}]{iso['mean']:>24.0f}")
    print()
    if observed_used.size:
        source = ("in-sample: R(t) fitted to these weeks here" if fit_record is not None
                  else f"parameters from {args.calibration}" if calibration_info
                  else "the model's uncalibrated defaults (--no-fit)")
        for line in retrospective_lines(retrospective, source=source):
            print(line)
    else:
        print("retrospective check: none (no observed cases cover this population); the parameters are the "
              "model's uncalibrated defaults")
    print(f"wrote {out / 'scenarios.csv'} (and .parquet), {out / 'summary.json'}, {out / 'counterfactual.png'}, "
          f"{out / REPORT_FILE} ({time.perf_counter() - wall:.0f} s)")
    return 0


def run_design(args, base_params, world, days, baseline) -> dict:
    """Gradient design of a weekly compliance schedule vs the best constant of a grid."""
    from jaxsim.models.covid import policy_design

    weeks = -(-days // 7)
    params = base_params.replace(interventions=interventions.combine(
        covid.isolation_compliance(np.full(weeks, 1.2, np.float32), name="isolation_compliance")))
    budget = 1.1 * float(baseline.totals("isolating").mean())
    problem = policy_design.PolicyProblem(
        covid.covid_model(), params, world, days, budget=budget, cost_per_isolation_day=0.01, penalty=1.0,
        max_scale=3.0, estimator="straight_through",
    )
    print(f"policy design: {args.design_steps} Adam steps x {args.design_seeds} runs, budget {budget:,.0f} isolation-days")
    designed = policy_design.optimise(problem, steps=args.design_steps, seeds_per_step=args.design_seeds,
                                      seed=args.seed + 7)
    eval_keys = ensemble.member_keys(args.seed + 99, args.members)
    forward = covid.covid_model()
    levels = np.linspace(1.0, 3.0, 9)
    grid, best = policy_design.grid_search(problem, levels, eval_keys, model=forward)
    scored = policy_design.evaluate(problem, designed.scale[None, :], eval_keys, model=forward)
    return {
        "decision": "weekly multiplier of every agent's daily isolation probability, in [1, 3]",
        "objective": "infections + 0.01 x isolation-days + 1 x isolation-days over the budget",
        "budget_isolation_days": budget,
        "gradient": {
            "schedule": designed.scale.tolist(), "loss_curve": designed.loss_curve, "seconds": designed.seconds,
            "simulator_runs": designed.simulator_runs, "stopped": designed.stopped,
            "objective": float(scored.objective[0]), "infections": float(scored.infections[0].mean()),
            "isolation_days": float(scored.isolation_days[0].mean()), "within_budget": bool(scored.feasible[0]),
        },
        "grid": {
            "levels": levels.tolist(), "objective": grid.objective.tolist(),
            "infections": grid.infections.mean(axis=1).tolist(),
            "isolation_days": grid.isolation_days.mean(axis=1).tolist(),
            "best_level": None if best is None else float(levels[best]),
            "best_objective": None if best is None else float(grid.objective[best]),
            "simulator_runs": int(grid.infections.size),
        },
        "evaluation_members": int(eval_keys.shape[0]),
    }


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim counterfactual_isolation`` and
    ``scenarios/counterfactual_isolation.py`` report them in one line)."""
    return command.execute("counterfactual_isolation", argv)
