#!/usr/bin/env python
"""COVID-19 and the labour market of New York City's five boroughs, month by month.

    python scenarios/nyc_economy.py [--population DIR | --ntas ... | --agents N]
                                    [--months 12] [--start-month 2020-08] [--seed 0] [--out DIR]
                                    [--calibrate [--train-months 9]]
                                    [--stimulus USD --stimulus-months 1,2 [--members 8]]
                                    [--behavior heuristic|llm|llm-local]

With no population arguments: 20,000 synthetic agents over the five boroughs in proportion
to their census population (``--borough-agents``), for 12 months from August 2020.

Methods
-------
Population. One neighbourhood per borough (the five with observed weekly cases), each
synthesized from census household counts and scaled to the borough's share of agents
(:func:`jaxsim.boroughs.five_borough_population`); or any population directory or
synthetic NYC population whose agents carry a borough (``county`` or NTA ``area``).

Disease and isolation. The COVID-19 model of ``scenarios/covid_nyc.py`` (SEIRM over
household and community contacts, isolation from the case trend), seeded from the
neighbourhoods' reported cases in the first week of the start month, with
``--imported-infections`` a day brought in from outside the simulated agents.

Labour. Agents join the labour force by age (CPS participation rates) in an occupation
group (from ``soc_code`` when the population has it, else sampled from New York's
occupation shares) with a wage. Each month each member of the labour force is willing to
work or not (a heuristic of last month's cases in its borough, prices and its savings, or
an LLM asked once per archetype per month: ``--behavior llm|llm-local``); each working
day it works if employed, willing, not sick (stage I), not dead and not isolating. At the
month's end: earnings, UI benefits for the unemployed, a progressive tax redistributed to
living adults (money conserved), pensions, consumption and savings, the price index, and
the borough labour markets' job flows (layoffs rising with cases, hiring falling with the
UI claims rate, quits of the unwilling). See :mod:`jaxsim.economy`.

Data. Observed monthly unemployment per borough (the calibration target, and each
borough's starting rate) and UI claims per borough (an input signal), from
``jaxsim/data/nyc``.

Calibration (``--calibrate``). The labour-market parameters (``--fit``) are fitted by
gradient (Adam on the expected job flows, :mod:`jaxsim.economy_calibration`) to the
observed rates of the first ``--train-months`` months, with the willingness and case
signals of a first forward run held fixed; the model is then run again with the fitted
values, and the held-out months' error (MAE in percentage points, normalised deviation)
is reported next to last-value persistence.

Counterfactual (``--stimulus USD --stimulus-months 1,2``). A stimulus payment to living
adults (optionally only those earning at most ``--stimulus-max-earnings`` USD a month, or
only the unemployed) in the given run months. The main run includes it; ``--members``
paired runs with and without it on the same random keys (common random numbers, through
:mod:`jaxsim.ensemble`) give the differences in unemployment and consumption with
intervals. With an LLM, the paired runs hold the main run's answers fixed.

Outputs (in ``--out``, default ``out/nyc_economy``): ``metrics.csv`` (one row per day:
the epidemic daily; the economy per borough on each month's last day, empty on other
days), ``run.json`` (parameters, population and labour force, observed vs simulated
unemployment, calibration, counterfactual, timing) and ``economy.png`` (simulated vs
observed unemployment per borough). Bad input prints one line naming the file, field or
value and exits with status 2; no output is half-written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsim import (
    archetype_cli, archetypes, boroughs, cli, covid, economy, economy_calibration, engine, ensemble,
    interventions, memory, nyc_cases, outputs,
)
from jaxsim import nyc_economy_data as data
from jaxsim.covid_setup import covid_setup_from_cases
from jaxsim.nyc_data import load_households

DEFAULT_BOROUGH_AGENTS = 20_000
DEFAULT_START = "2020-08"
#: Infections imported per day: the simulated agents are a sample of boroughs whose other
#: residents (and visitors) keep bringing the virus in. One a day among 20,000 agents is
#: about NYC's estimated true incidence in August 2020 (some 250 reported cases a day
#: among 8.4 million people, over an ascertainment of 0.25, i.e. 12 per 100,000 a day);
#: with the default transmission it keeps a low epidemic going all year.
DEFAULT_IMPORTS = 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_population_arguments(parser)
    parser.add_argument(
        "--borough-agents", type=int, default=DEFAULT_BOROUGH_AGENTS, metavar="N",
        help=f"agents of the default five-borough population (default {DEFAULT_BOROUGH_AGENTS:,})",
    )
    parser.add_argument("--months", type=int, default=12, help="calendar months to simulate (default 12)")
    parser.add_argument("--start-month", default=DEFAULT_START, help=f"first month, YYYY-MM (default {DEFAULT_START})")
    parser.add_argument("--seed", type=int, default=0, help="random seed for population and run")
    parser.add_argument("--out", default="out/nyc_economy", help="output directory")
    parser.add_argument(
        "--transmission-rate", type=float, default=covid.DEFAULT_TRANSMISSION_RATE,
        help=f"R(t) for every week (default {covid.DEFAULT_TRANSMISSION_RATE})",
    )
    parser.add_argument(
        "--imported-infections", type=int, default=DEFAULT_IMPORTS, metavar="N",
        help=f"infections brought in from outside the simulated population each day (default "
             f"{DEFAULT_IMPORTS}; 0 for none)",
    )
    parser.add_argument(
        "--ascertainment", type=float, default=nyc_cases.DEFAULT_ASCERTAINMENT,
        help="share of infections reported as cases (default 0.25)",
    )
    group = parser.add_argument_group("calibration")
    group.add_argument("--calibrate", action="store_true", help="fit the labour market to observed unemployment")
    group.add_argument("--train-months", type=int, help="months fitted (default: three quarters of --months)")
    group.add_argument(
        "--fit", default=",".join(economy_calibration.DEFAULT_FIT),
        help=f"parameters to fit (default {','.join(economy_calibration.DEFAULT_FIT)}; "
             f"fittable: {','.join(economy_calibration.LABOUR_FITTABLE)})",
    )
    group.add_argument("--fit-steps", type=int, default=1000, help="Adam steps (default 1000)")
    group = parser.add_argument_group("counterfactual: stimulus payment")
    group.add_argument("--stimulus", type=float, metavar="USD", help="payment per eligible adult per paid month")
    group.add_argument("--stimulus-months", help="run months it is paid in, e.g. 1,2 (0 = the first month)")
    group.add_argument("--stimulus-max-earnings", type=float, metavar="USD",
                       help="only adults earning at most this per month are eligible (default: all)")
    group.add_argument("--stimulus-unemployed-only", action="store_true", help="pay only the unemployed")
    group.add_argument("--members", type=int, default=8, help="paired runs for the comparison (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    archetype_cli.add_llm_arguments(parser)
    for action in parser._actions:  # the shared options, in this scenario's words
        if action.dest == "behavior":
            action.help = ("willingness to work: the heuristic (cases, prices, savings), an OpenAI-compatible "
                           "LLM server (--llm-url, --llm-model) or the bundled local model; isolation stays "
                           "the case-trend heuristic")
        elif action.dest == "ntas":
            action.help = ("synthesize these NYC neighbourhoods (comma-separated NTA codes, or 'all'); "
                           "default: the five-borough population of --borough-agents agents")
        elif action.dest == "archetypes":
            action.help = ("attributes whose joint values define the work archetypes asked each month "
                           "(default age,gender; add county for each borough's own signals)")
    return parser.parse_args(argv)


def check_args(args) -> tuple[pd.Period, list[int]]:
    """Raise ``ValueError`` naming the option when arguments do not fit together."""
    archetype_cli.check_llm_arguments(args)
    if args.months < 1:
        raise ValueError(f"--months must be >= 1, got {args.months}")
    if args.borough_agents < len(boroughs.BOROUGHS):
        raise ValueError(f"--borough-agents must be >= {len(boroughs.BOROUGHS)}, got {args.borough_agents}")
    start = data.parse_month(args.start_month)
    if args.imported_infections < 0:
        raise ValueError(f"--imported-infections must be >= 0, got {args.imported_infections}")
    if not 0 < args.ascertainment <= 1:
        raise ValueError(f"--ascertainment must lie in (0, 1], got {args.ascertainment}")
    if args.calibrate:
        train = args.train_months if args.train_months is not None else max(2, round(0.75 * args.months))
        if not 2 <= train <= args.months:
            raise ValueError(f"--train-months must be in 2..{args.months} (--months), got {train}")
        args.train_months = train
        economy_calibration.check_labour_fit_names([n.strip() for n in args.fit.split(",") if n.strip()])
        if args.fit_steps < 1:
            raise ValueError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    elif args.train_months is not None:
        raise ValueError("--train-months applies with --calibrate only")
    months: list[int] = []
    if args.stimulus is not None:
        if not args.stimulus_months:
            raise ValueError("--stimulus needs --stimulus-months, the run months it is paid in (e.g. 1,2)")
        try:
            months = [int(m) for m in args.stimulus_months.split(",") if m.strip()]
        except ValueError:
            raise ValueError(f"--stimulus-months: not a list of whole months: {args.stimulus_months!r}") from None
        if args.members < 1:
            raise ValueError(f"--members must be >= 1, got {args.members}")
    elif args.stimulus_months or args.stimulus_max_earnings is not None or args.stimulus_unemployed_only:
        raise ValueError("--stimulus-months, --stimulus-max-earnings and --stimulus-unemployed-only need --stimulus USD")
    return start, months


def load_population(args):
    if args.population or args.ntas or args.agents is not None:
        return cli.population_from_args(args, seed=args.seed)
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(args.compile_cache)
    return boroughs.five_borough_population(args.borough_agents, seed=args.seed)


def case_seeding(population, borough_of_agent, start_date: dt.date, ascertainment: float):
    """Observed cases covering the population's neighbourhoods: ``(observed, start_index,
    census people, prior case signal [5])``; the signal is each borough's reported cases
    per 1,000 residents over a month, from its neighbourhoods' first week on or after the
    start (the city's mean for boroughs without data; 0 without any data)."""
    areas = list(population.labels.get("area", [])) if "area" in population.attributes else []
    observed = nyc_cases.observed_cases(areas) if areas else None
    if observed is None:
        return None, 0, 0.0, np.zeros(len(boroughs.BOROUGHS), np.float32)
    week_end = observed.week_end
    after = np.flatnonzero(np.asarray(week_end.date) >= start_date)
    if after.size == 0:
        raise ValueError(
            f"--start-month {start_date:%Y-%m}: the case data for {list(observed.ntas)} ends with the "
            f"week of {week_end[-1]:%Y-%m-%d}"
        )
    start_index = int(after[0])
    households = load_households()
    census = float(households.loc[list(observed.ntas), "people"].sum())
    signal = np.full(len(boroughs.BOROUGHS), np.nan, np.float32)
    for b, name in enumerate(boroughs.BOROUGHS):
        ntas = [n for n in observed.ntas if boroughs.NTA_PREFIX_TO_BOROUGH.get(n[:2]) == name]
        if not ntas:
            continue
        one = nyc_cases.observed_cases(ntas)
        cases = one.cases[min(start_index, len(one.cases) - 1)]
        people = float(households.loc[ntas, "people"].sum())
        if np.isfinite(cases) and people > 0:
            signal[b] = cases * (30.4 / 7.0) / people * 1000.0
    fill = float(np.nanmean(signal)) if np.isfinite(signal).any() else 0.0
    return observed, start_index, census, np.where(np.isfinite(signal), signal, fill).astype(np.float32)


def monthly_frame(metrics, start: pd.Period, num_months: int) -> dict[str, np.ndarray]:
    """Month-end rows of the metrics: ``{name: [months, ...]}``."""
    rows = economy.monthly_rows(metrics)
    if len(rows) != num_months:
        raise AssertionError(f"expected {num_months} month ends, found {len(rows)}")
    return {k: np.asarray(metrics[k])[rows] for k in economy.BOROUGH_METRICS + economy.CITY_METRICS}


def comparison(simulated: np.ndarray, observed: np.ndarray, has_force: np.ndarray) -> dict | None:
    """Fit of simulated to observed rates over months 1.. (month 0 starts at the data)."""
    keep = np.isfinite(observed[1:]) & has_force[None, :]
    if not keep.any():
        return None
    from jaxsim.calibration import heldout_metrics

    return heldout_metrics(100 * simulated[1:][keep], 100 * observed[1:][keep]) | {
        "units": "percentage points", "points": int(keep.sum()),
    }


def plot_unemployment(path, months, simulated, observed, has_force, *, title, train_months=None, expected=None):
    """One panel per borough (and the city): simulated vs observed unemployment (%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    x = np.arange(len(months))
    labels = [str(m) for m in months]
    for b, name in enumerate(boroughs.BOROUGHS):
        ax = axes.flat[b]
        if has_force[b]:
            ax.plot(x, 100 * simulated[:, b], marker="o", label="simulated (agents)")
            if expected is not None:
                ax.plot(x, 100 * expected[:, b], linestyle=":", label="expected flows (fit)")
        else:
            ax.text(0.5, 0.5, "no agents", transform=ax.transAxes, ha="center", color="grey")
        ax.plot(x, 100 * observed[:, b], color="black", marker="s", markersize=3, label="observed")
        if train_months is not None and train_months < len(months):
            ax.axvline(train_months - 0.5, color="grey", linestyle="--", linewidth=1, label="train | held out")
        ax.set_title(boroughs.BOROUGH_NAMES[name])
        ax.set_ylabel("unemployment (%)")
    ax = axes.flat[5]
    ax.axis("off")
    handles, names = axes.flat[int(np.argmax(has_force))].get_legend_handles_labels()
    ax.legend(handles, names, loc="center")
    ax.set_title(title, fontsize=9)
    step = max(1, len(months) // 6)
    for a in axes.flat[:5]:
        a.set_xticks(x[::step])
        a.set_xticklabels(labels[::step], rotation=45, fontsize=8)
    fig.tight_layout()
    outputs.save_figure(fig, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    start, stimulus_months = check_args(args)
    out = Path(args.out)
    start_date = dt.date(start.year, start.month, 1)
    num_months = int(args.months)
    days = economy.days_in_months(start_date, num_months)
    weeks = math.ceil(days / 7)

    # Data: observed unemployment (target, starting rates) and UI claims (input).
    unemployment = data.load_unemployment()
    claims = data.load_ui_claims()
    observed_rate = unemployment.window(start, num_months)
    if not np.all(np.isfinite(observed_rate[0])):
        raise ValueError(
            f"--start-month {start}: the unemployment data covers {unemployment.months[0]} to "
            f"{unemployment.months[-1]}; the first month's rate starts each borough"
        )
    claims_rate = claims.claims_rate(unemployment, start, num_months)

    # Population, labour force and occupations.
    build_start = time.perf_counter()
    population = load_population(args)
    build_seconds = time.perf_counter() - build_start
    n = population.size
    borough_of_agent = boroughs.borough_codes(population)
    memory.check_fits(memory.run_bytes(population, days), f"a run of {n:,} agents")
    attributes = economy.labour_attributes(population, seed=args.seed)
    has_force = np.bincount(borough_of_agent[attributes.labour_force], minlength=5) > 0
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts; labour force "
          f"{int(attributes.labour_force.sum()):,} ({attributes.source} occupations)")

    # Epidemic setup and the economy's world.
    observed, start_index, census, prior_signal = case_seeding(population, borough_of_agent, start_date, args.ascertainment)
    setup = covid_setup_from_cases(
        population, observed, start_index, census, weeks,
        ascertainment=args.ascertainment, transmission_rate=args.transmission_rate,
    )
    covid_params = setup.params
    if args.imported_infections > 0:
        covid_params = covid_params.replace(interventions=interventions.combine(
            interventions.seeding(args.imported_infections, start=0, name="imported_infections")
        ))
    layer, work_groups, num_groups, willingness_table = None, None, None, None
    if args.behavior != "heuristic":
        from jaxsim.llm.backends import SamplingSettings
        from jaxsim.work_archetypes import WorkLayer

        attrs = [a.strip() for a in args.archetypes.split(",") if a.strip()]
        grouping = archetypes.group_agents(population, attrs)
        layer = WorkLayer(
            grouping=grouping, backend=archetype_cli.backend_from_args(args),
            settings=SamplingSettings(temperature=args.llm_temperature, max_tokens=args.llm_max_tokens, seed=args.seed),
            samples=args.llm_samples,
        )
        work_groups, num_groups = grouping.codes, grouping.num_groups
        willingness_table = np.zeros((num_months, num_groups), np.float32)
    world = economy.build_economy_world(
        setup.world, population, attributes, start=start_date, claims_rate=claims_rate,
        work_groups=work_groups, num_work_groups=num_groups, willingness=willingness_table,
    )
    # Without --stimulus, a payment of nothing: runs with and without one share a program.
    stimulus = economy.no_stimulus(num_months)
    if args.stimulus is not None:
        stimulus = economy.stimulus_payment(
            args.stimulus, stimulus_months, num_months=num_months, max_earnings=args.stimulus_max_earnings,
            unemployed_only=args.stimulus_unemployed_only,
        )
    economy_params = economy.default_economy_params(population, ascertainment=args.ascertainment, stimulus=stimulus)
    params = economy.CoupledParams(covid_params, economy_params)
    init_args = {
        "stages": setup.stages, "prior_daily_cases": setup.prior_daily_cases,
        "initial_unemployment": observed_rate[0].astype(np.float32), "prior_case_signal": prior_signal,
    }
    init_key, run_key = jax.random.split(jax.random.key(args.seed))
    policy = "heuristic" if layer is None else "inputs"
    model = economy.coupled_model(willingness_policy=policy)

    def forward(params, world):
        state = economy.coupled_initial_state(params, init_key, world, init_args)
        return engine.run(model, state, params, world, run_key, days, chunk_days=days,
                          progress=False if args.no_progress else "auto", description="nyc_economy")

    # The run (with the LLM: month by month, asking at each month's start).
    refresh_seconds = 0.0
    if layer is None:
        result = forward(params, world)
    else:
        from jaxsim.work_archetypes import run_with_work_layer

        state = economy.coupled_initial_state(params, init_key, world, init_args)
        work_run = run_with_work_layer(model, state, params, world, run_key, start_date, num_months, layer)
        result, refresh_seconds = work_run.result, work_run.refresh_seconds
        world = world.replace(inputs={**world.inputs, "willingness": jax.numpy.asarray(work_run.willingness)})
        report = layer.report()
        print(f"work archetypes: {layer.grouping.num_groups} ({', '.join(layer.grouping.attributes)}); "
              f"{report['llm_calls']} model calls, {report['cache_hits']} cache hits, "
              f"{layer.parse_failures} parse failures")
    compile_seconds, run_seconds = result.compile_seconds, result.run_seconds
    monthly = monthly_frame(result.metrics, start, num_months)

    # Calibration: fit the labour market on the training months, run again, score held-out months.
    calibration = None
    expected = None
    if args.calibrate:
        fit_names = [name.strip() for name in args.fit.split(",") if name.strip()]
        problem = economy_calibration.LabourCalibrationProblem(
            params=economy_params, observed=observed_rate, willingness=monthly["willingness"],
            case_signal=monthly["case_signal"], claims_rate=monthly["claims_rate"],
            initial_unemployment=monthly["unemployment_rate"][0], train_months=args.train_months,
            boroughs=has_force,
        )
        fit = economy_calibration.fit_labour_market(problem, fit_names, steps=args.fit_steps)
        expected = np.asarray(economy_calibration.expected_unemployment(fit.params, problem))
        economy_params = fit.params
        params = economy.CoupledParams(covid_params, economy_params)
        refit = forward(params, world)  # same keys; with an LLM its answers held fixed
        result = refit
        compile_seconds += refit.compile_seconds
        run_seconds += refit.run_seconds
        monthly = monthly_frame(result.metrics, start, num_months)
        calibration = {
            "method": "Adam on the expected job flows (jaxsim.economy_calibration); willingness and case "
                      "signals of a first forward run held fixed; UI claims observed",
            "fitted": fit.fitted_values(),
            "steps": len(fit.loss_curve),
            "loss_curve": [round(v, 6) for v in fit.loss_curve],
            "loss_units": "mean squared error, percentage points squared",
            "fit_seconds": fit.seconds,
            "stopped": fit.stopped,
            "agents": economy_calibration.evaluate(monthly["unemployment_rate"], observed_rate, args.train_months, has_force),
            "expected_flows": economy_calibration.evaluate(expected, observed_rate, args.train_months, has_force),
        }
        test = calibration["agents"]["test"]
        persistence = calibration["agents"]["persistence_test"]
        if test and persistence:
            print(f"calibration: {len(fit.loss_curve)} steps in {fit.seconds:.1f} s; held-out months "
                  f"MAE {test['mae']:.2f} pp (ND {test['nd']:.3f}) vs persistence {persistence['mae']:.2f} pp "
                  f"(ND {persistence['nd']:.3f})")

    # Counterfactual: paired runs with and without the stimulus on the same keys.
    counterfactual = None
    if args.stimulus is not None:
        counterfactual = stimulus_comparison(
            model, params, world, init_args, days, num_months, args.members, args.seed,
        )
        city = counterfactual["differences"]["stimulus"]
        print(f"stimulus: extra consumption {city['extra_consumption_usd']['mean']:,.0f} USD, extra "
              f"unemployed person-months {city['extra_unemployed_person_months']['mean']:+.1f} "
              f"({args.members} paired runs)")

    # Outputs: staged, so that a failure leaves no half-written set of files.
    vector_labels = {name: list(boroughs.BOROUGHS) for name in economy.BOROUGH_METRICS}
    vector_labels |= {"new_infections_by_age": population.category_labels("age"),
                      "isolation_prob": population.category_labels("age")}
    table = outputs.metrics_table(result.metrics, start_date=pd.Timestamp(start_date), vector_labels=vector_labels)
    monthly_columns = [c for c in table.columns if any(
        c == name or c.startswith(name + "_") for name in economy.BOROUGH_METRICS + economy.CITY_METRICS
    )]
    month_end = table["month_end"].to_numpy() > 0.5
    table[monthly_columns] = table[monthly_columns].astype(float)
    table.loc[~month_end, monthly_columns] = np.nan  # the economy settles on each month's last day
    months_index = pd.period_range(start, periods=num_months, freq="M")
    simulated = monthly["unemployment_rate"]
    run_info = {
        "scenario": "nyc_economy",
        "arguments": vars(args),
        "seed": args.seed,
        "start_month": str(start),
        "months": num_months,
        "days": days,
        "model": model.name,
        "substeps": [s.name for s in model.substeps],
        "behavior": args.behavior,
        "parameters": {
            "covid": covid.params_report(params.covid, population),
            "economy": economy.economy_params_report(economy_params, population) | (
                {} if args.stimulus is not None else {"stimulus": None}
            ),
        },
        "population": population.summary() | {"build_seconds": build_seconds},
        "labour": attributes.summary(),
        "initial_conditions": {
            "epidemic": setup.initial_source,
            "unemployment": dict(zip(boroughs.BOROUGHS, observed_rate[0].tolist())),
            "prior_case_signal_per_1000": dict(zip(boroughs.BOROUGHS, prior_signal.tolist())),
        },
        "unemployment": {
            "months": [str(m) for m in months_index],
            "boroughs": list(boroughs.BOROUGHS),
            "boroughs_with_labour_force": [b for b, has in zip(boroughs.BOROUGHS, has_force) if has],
            "simulated": simulated.tolist(),
            "observed": [[None if not np.isfinite(v) else float(v) for v in row] for row in observed_rate],
            "fit_to_observed": comparison(simulated, observed_rate, has_force),
        },
        "economy_totals": {
            "consumption_usd": float(monthly["city_consumption"].sum()),
            "tax_usd": float(monthly["city_tax"].sum()),
            "transfers_usd": float(monthly["city_transfers"].sum()),
            "price_level": monthly["price_level"].tolist(),
        },
        "calibration": calibration,
        "counterfactual": counterfactual,
        "llm": None if layer is None else layer.report() | {
            "refresh_seconds": refresh_seconds, "calls_per_simulated_month": layer.report()["llm_calls"] / num_months,
        },
        "versions": outputs.package_versions(),
        "timing": {
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "ms_per_day": 1e3 * result.run_seconds / days,
            "agent_steps_per_second": n * days / result.run_seconds if result.run_seconds else None,
            "calibration_seconds": None if calibration is None else calibration["fit_seconds"],
            "counterfactual_seconds": None if counterfactual is None else counterfactual["seconds"],
        },
    }
    with outputs.StagedOutputs(out) as stage:
        outputs.write_metrics_csv(table, stage.path / "metrics.csv")
        outputs.write_json(run_info, stage.path / "run.json")
        plot_unemployment(
            stage.path / "economy.png", months_index, simulated, observed_rate, has_force,
            title=f"Unemployment, {n:,} agents ({args.behavior}"
                  + (", calibrated" if calibration else "") + ")",
            train_months=args.train_months if calibration else None, expected=expected,
        )
    print(f"simulated {num_months} months ({days} days) in {result.run_seconds:.2f} s "
          f"(compile {compile_seconds:.1f} s)")
    fit = run_info["unemployment"]["fit_to_observed"]
    if fit:
        print(f"unemployment vs observed: MAE {fit['mae']:.2f} pp, ND {fit['nd']:.3f}")
    print(f"wrote {out / 'metrics.csv'}, {out / 'run.json'}, {out / 'economy.png'}")
    return 0


def stimulus_comparison(model, params, world, init_args, days: int, num_months: int, members: int, seed: int) -> dict:
    """Paired runs without (amount 0) and with the stimulus on the same member keys
    (:func:`jaxsim.ensemble.cross`), compared with :func:`jaxsim.ensemble.compare` and,
    month by month, with :func:`jaxsim.ensemble.paired_difference`."""
    begin = time.perf_counter()
    stimulus = params.economy.stimulus
    baseline = params.replace(economy=params.economy.replace(stimulus=economy.no_stimulus(num_months)))
    keys = ensemble.member_keys(seed + 1, members)
    batch, all_keys, labels = ensemble.cross([baseline, params], keys, set_labels=["baseline", "stimulus"])
    names = ["month_end", "city_unemployed", "city_labour_force", "city_consumption", "stimulus_paid"]
    result = ensemble.run_ensemble(
        model, batch, world, all_keys, days, init=economy.coupled_initial_state, init_args=init_args,
        metric_names=names, members=labels,
    )
    parts = result.split("set")
    compared = ensemble.compare(
        parts["baseline"], {"stimulus": parts["stimulus"]},
        outcomes={
            "extra_consumption_usd": ("city_consumption", -1),
            "extra_unemployed_person_months": ("city_unemployed", -1),
        },
    )
    rows = economy.monthly_rows({"month_end": parts["baseline"].metrics["month_end"][0]})
    monthly = []
    for m, row in enumerate(rows):
        def rate(part):
            return part.metrics["city_unemployed"][:, row] / np.maximum(part.metrics["city_labour_force"][:, row], 1.0)

        monthly.append({
            "run_month": m,
            "extra_unemployment_rate_pp": ensemble.paired_difference(
                100 * rate(parts["stimulus"]), 100 * rate(parts["baseline"])
            ),
            "extra_consumption_usd": ensemble.paired_difference(
                parts["stimulus"].metrics["city_consumption"][:, row], parts["baseline"].metrics["city_consumption"][:, row]
            ),
        })
    paid = parts["stimulus"].metrics["stimulus_paid"].sum(axis=(1, 2))
    return {
        "stimulus": economy.describe_stimulus(stimulus),
        "members": members,
        "method": "paired runs on the same member keys (common random numbers), jaxsim.ensemble.cross/compare; "
                  "differences are stimulus minus baseline",
        "stimulus_paid_usd_mean": float(paid.mean()),
        "differences": compared["differences"],
        "totals": compared["totals"],
        "by_month": monthly,
        "interval": compared["interval"],
        "compile_seconds": result.compile_seconds,
        "seconds": time.perf_counter() - begin,
    }


if __name__ == "__main__":
    sys.exit(cli.run_cli(main))
