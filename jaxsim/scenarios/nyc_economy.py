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
(:func:`jaxsim.nyc.boroughs.five_borough_population`); or any population directory or
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
UI claims rate, quits of the unwilling). See :mod:`jaxsim.models.labour`; the two models
are composed through declared bridges (:func:`jaxsim.coupling.compose`), and the setup on
NYC data is :func:`jaxsim.nyc.economy.economy_setup`.

Data. Observed monthly unemployment per borough (the calibration target, and each
borough's starting rate) and UI claims per borough (an input signal), from
``jaxsim/data/nyc``.

Calibration (``--calibrate``). The labour-market parameters (``--fit``) are fitted by
gradient (Adam on the expected job flows, :mod:`jaxsim.models.labour.calibration`) to the
observed rates of the first ``--train-months`` months, with the willingness and case
signals of a first forward run held fixed; the model is then run again with the fitted
values, and the held-out months' error (MAE in percentage points, normalised deviation)
is reported next to last-value persistence. That is a retrospective check, not a forecast:
the held-out months run with their observed UI claims (data not known at the split) and
the whole path from month 0. ``benchmarks/bench_forecast_unemployment.py`` scores real
forecasts (rolling origins, only data known at each origin, ensembles scored by WIS and
coverage; :mod:`jaxsim.models.labour.forecast`).

Counterfactual (``--stimulus USD --stimulus-months 1,2``). A stimulus payment to living
adults (optionally only those earning at most ``--stimulus-max-earnings`` USD a month, or
only the unemployed) in the given run months. The main run includes it; ``--members``
paired runs with and without it on the same random keys (common random numbers, through
:mod:`jaxsim.ensemble`) give the differences in unemployment and consumption with
intervals. With an LLM, the paired runs hold the main run's answers fixed.

Outputs (in ``--out``, default ``out/nyc_economy``): ``metrics.csv`` and the same table
as ``metrics.parquet`` (one row per day: the epidemic daily; the economy per borough on
each month's last day, empty on other days), ``run.json`` (parameters, population and
labour force, observed vs simulated unemployment, calibration, counterfactual, timing),
``economy.png`` (simulated vs observed unemployment per borough, by month) and
``report.html`` (one page: the plot, the key numbers, links to the files;
:mod:`jaxsim.report`). Bad input prints one line naming the file, field or value and
exits with status 2; no output is half-written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsim import behaviour, cli, engine, memory, outputs, sampling
from jaxsim.report import REPORT_FILE, write_report
from jaxsim.llm import options as llm_options
from jaxsim.models import covid, labour
from jaxsim.models.labour import calibration as labour_calibration
from jaxsim.nyc import boroughs
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc import cli as nyc_cli
from jaxsim.nyc import economy as nyc_economy
from jaxsim.nyc import economy_data as data
from jaxsim.errors import InputError
from jaxsim.world import to_device
from jaxsim import caches
from jaxsim.scenarios import arguments, command

DEFAULT_BOROUGH_AGENTS = arguments.ECONOMY_DEFAULT_BOROUGH_AGENTS
DEFAULT_START = arguments.ECONOMY_DEFAULT_START
#: Infections imported per day: the simulated agents are a sample of boroughs whose other
#: residents (and visitors) keep bringing the virus in. One a day among 20,000 agents is
#: about NYC's estimated true incidence in August 2020 (some 250 reported cases a day
#: among 8.4 million people, over an ascertainment of 0.25, i.e. 12 per 100,000 a day);
#: with the default transmission it keeps a low epidemic going all year.
DEFAULT_IMPORTS = arguments.ECONOMY_DEFAULT_IMPORTS

#: What the held-out score of ``--calibrate`` is and is not.
HELDOUT_CAVEAT = ("a retrospective check, not a forecast: the held-out months run with their observed UI claims "
                  "and from month 0; benchmarks/bench_forecast_unemployment.py scores forecasts made with only the "
                  "data known at each origin")


def parse_args(argv=None):
    """The options of this scenario (:mod:`jaxsim.scenarios.arguments`)."""
    return arguments.parse("nyc_economy", argv)


def check_args(args) -> tuple[pd.Period, list[int]]:
    """Raise :class:`jaxsim.errors.InputError` naming the option when arguments do not fit together."""
    llm_options.check_llm_arguments(args)
    if args.months < 1:
        raise InputError(f"--months must be >= 1, got {args.months}")
    if args.borough_agents < len(boroughs.BOROUGHS):
        raise InputError(f"--borough-agents must be >= {len(boroughs.BOROUGHS)}, got {args.borough_agents}")
    start = data.parse_month(args.start_month)
    if args.imported_infections < 0:
        raise InputError(f"--imported-infections must be >= 0, got {args.imported_infections}")
    if not 0 < args.ascertainment <= 1:
        raise InputError(f"--ascertainment must lie in (0, 1], got {args.ascertainment}")
    if args.calibrate:
        train = args.train_months if args.train_months is not None else max(2, round(0.75 * args.months))
        if not 2 <= train <= args.months:
            raise InputError(f"--train-months must be in 2..{args.months} (--months), got {train}")
        args.train_months = train
        labour_calibration.check_labour_fit_names([n.strip() for n in args.fit.split(",") if n.strip()])
        if args.fit_steps < 1:
            raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    elif args.train_months is not None:
        raise InputError("--train-months applies with --calibrate only")
    months: list[int] = []
    if args.stimulus is not None:
        if not args.stimulus_months:
            raise InputError("--stimulus needs --stimulus-months, the run months it is paid in (e.g. 1,2)")
        try:
            months = [int(m) for m in args.stimulus_months.split(",") if m.strip()]
        except ValueError:
            raise InputError(f"--stimulus-months: not a list of whole months: {args.stimulus_months!r}") from None
        if args.members < 1:
            raise InputError(f"--members must be >= 1, got {args.members}")
    elif args.stimulus_months or args.stimulus_max_earnings is not None or args.stimulus_unemployed_only:
        raise InputError("--stimulus-months, --stimulus-max-earnings and --stimulus-unemployed-only need --stimulus USD")
    return start, months


def load_population(args):
    if args.population or args.ntas or args.agents is not None:
        return nyc_cli.population_from_args(args, seed=args.seed)
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(args.compile_cache)
    return boroughs.five_borough_population(args.borough_agents, seed=args.seed)


def willingness_layer(args, model, grouping):
    """The behaviour layer asking a language model each archetype's willingness to work
    (the composed model's ``willingness`` input)."""
    return behaviour.BehaviourLayer(
        policy=behaviour.policy_of(model, "willingness"), grouping=grouping,
        backend=llm_options.backend_from_args(args), options=dict(nyc_economy.WILLINGNESS_OPTIONS),
        settings=llm_options.sampling_from_args(args), samples=args.llm_samples,
    )


def run(args) -> int:
    """The run the parsed options ask for; 0 on success."""
    start, stimulus_months = check_args(args)
    out = Path(args.out)
    num_months = int(args.months)

    # Population; behaviour (the heuristic, or a language model asked once per archetype a month).
    build_start = time.perf_counter()
    population = load_population(args)
    build_seconds = time.perf_counter() - build_start
    n = population.size
    grouping = None
    if args.behavior != "heuristic":
        grouping = behaviour.group_agents(population, llm_options.archetype_attributes(args))

    # The composed COVID + labour model on the boroughs' data (a payment of nothing without
    # --stimulus: runs with and without one share a program).
    stimulus = None
    if args.stimulus is not None:
        stimulus = labour.stimulus_payment(
            args.stimulus, stimulus_months, num_months=num_months, max_earnings=args.stimulus_max_earnings,
            unemployed_only=args.stimulus_unemployed_only,
        )
    setup = nyc_economy.economy_setup(
        population, start, num_months, seed=args.seed, ascertainment=args.ascertainment,
        transmission_rate=args.transmission_rate, imported_infections=args.imported_infections,
        stimulus=stimulus, grouping=grouping, on_device=False,
    )
    model, params, days = setup.model, setup.params, setup.days
    layer = None if grouping is None else willingness_layer(args, model, grouping)
    memory.check_fits(memory.run_bytes(model, params, setup.world, days), f"a run of {n:,} agents")
    world = setup.world = to_device(setup.world)
    attributes, has_force, observed_rate = setup.attributes, setup.has_force, setup.observed_rate
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts; labour force "
          f"{int(attributes.labour_force.sum()):,} ({attributes.source} occupations)")
    init_key, run_key = sampling.keys_from_seed(args.seed)

    def forward(params, world):
        state = engine.initial_state(model, init_key, params, world)
        return engine.run(model, run_key, state, params, world, days, chunk_days=days, donate=True,
                          progress=False if args.no_progress else "auto", description="nyc_economy")

    # The run (with the LLM: asking at each month's start).
    refresh_seconds = 0.0
    groups = None  # with the LLM: each archetype's monthly answers [months, G] and the boroughs' shares [R, G]
    if layer is None:
        result = forward(params, world)
    else:
        state = engine.initial_state(model, init_key, params, world)
        answered = behaviour.run_with_behaviour(model, run_key, state, params, world, days, [layer])
        result, refresh_seconds = answered.result, answered.refresh_seconds
        world = setup.world = world.with_inputs(willingness=jax.numpy.asarray(answered.tables["willingness"]))
        groups = (np.asarray(answered.tables["willingness"], np.float32)[:num_months], labour.work_group_share(world))
        report = layer.report()
        print(f"work archetypes: {layer.grouping.num_groups} ({', '.join(layer.grouping.attributes)}); "
              f"{report['llm_calls']} model calls, {report['cache_hits']} cache hits, "
              f"{layer.parse_failures} parse failures")
    compile_seconds, run_seconds = result.compile_seconds, result.run_seconds
    monthly = nyc_economy.monthly(result.metrics, num_months)

    # Calibration: fit the labour market on the training months, run again, score held-out months.
    calibration = None
    expected = None
    economy_params = params.economy
    if args.calibrate:
        fit_names = [name.strip() for name in args.fit.split(",") if name.strip()]
        problem = labour_calibration.LabourCalibrationProblem(
            params=economy_params, observed=observed_rate, willingness=monthly["willingness"],
            case_signal=monthly["case_signal"], claims_rate=monthly["claims_rate"],
            initial_unemployment=monthly["unemployment_rate"][0], train_months=args.train_months,
            regions=has_force, willingness_groups=None if groups is None else groups[0],
            group_share=None if groups is None else groups[1],
        )
        fit = labour_calibration.fit_labour_market(problem, fit_names, steps=args.fit_steps)
        expected = np.asarray(labour_calibration.expected_unemployment(fit.params, problem))
        economy_params = fit.params
        params = setup.params = params.replace(economy=economy_params)
        refit = forward(params, world)  # same keys; with an LLM its answers held fixed
        result = refit
        compile_seconds += refit.compile_seconds
        run_seconds += refit.run_seconds
        monthly = nyc_economy.monthly(result.metrics, num_months)
        calibration = {
            "method": "Adam on the expected job flows (jaxsim.models.labour.calibration); willingness and case "
                      "signals of a first forward run held fixed; UI claims observed",
            "fitted": fit.fitted_values(),
            "willingness_groups": None if groups is None else int(groups[1].shape[1]),
            "steps": len(fit.loss_curve),
            "loss_curve": [round(v, 6) for v in fit.loss_curve],
            "loss_units": "mean squared error, percentage points squared",
            "fit_seconds": fit.seconds,
            "stopped": fit.stopped,
            "agents": labour_calibration.evaluate(monthly["unemployment_rate"], observed_rate, args.train_months, has_force),
            "expected_flows": labour_calibration.evaluate(expected, observed_rate, args.train_months, has_force),
            "heldout_note": HELDOUT_CAVEAT,
        }
        test = calibration["agents"]["test"]
        persistence = calibration["agents"]["persistence_test"]
        if test and persistence:
            print(f"calibration: {len(fit.loss_curve)} steps in {fit.seconds:.1f} s; held-out months "
                  f"MAE {test['mae']:.2f} pp (ND {test['nd']:.3f}) vs persistence {persistence['mae']:.2f} pp "
                  f"(ND {persistence['nd']:.3f})")
            print(f"  ({HELDOUT_CAVEAT})")
            if test["mae"] > persistence["mae"]:
                print("note: the calibrated model forecasts the held-out months worse than persistence")

    # Counterfactual: paired runs with and without the stimulus on the same keys.
    counterfactual = None
    if args.stimulus is not None:
        counterfactual = nyc_economy.stimulus_comparison(setup, args.members, args.seed)
        city = counterfactual["differences"]["stimulus"]
        print(f"stimulus: extra consumption {city['extra_consumption_usd']['mean']:,.0f} USD, extra "
              f"unemployed person-months {city['extra_unemployed_person_months']['mean']:+.1f} "
              f"({args.members} paired runs)")

    # Outputs: staged, so that a failure leaves no half-written set of files.
    table = outputs.metrics_table(result.metrics, start_date=pd.Timestamp(setup.start_date), declared=model.metrics,
                                  world=world, first_columns=covid.STAGE_NAMES + ("new_infections", "isolating"))
    monthly_columns = [c for c in table.columns if any(
        c == name or c.startswith(name + "_") for name in labour.REGION_METRICS + labour.CITY_METRICS
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
            "covid": covid.params_report(params.covid, world),
            "economy": labour.params_report(economy_params, world) | (
                {} if args.stimulus is not None else {"stimulus": None}
            ),
        },
        "population": population.summary() | {"build_seconds": build_seconds},
        "labour": {("labour_force_by_borough" if k == "labour_force_by_region" else k): v
                   for k, v in attributes.summary(boroughs.BOROUGHS).items()},
        "initial_conditions": {
            "epidemic": setup.epidemic_source,
            "unemployment": dict(zip(boroughs.BOROUGHS, observed_rate[0].tolist())),
            "prior_case_signal_per_1000": dict(zip(boroughs.BOROUGHS, setup.prior_signal.tolist())),
        },
        "unemployment": {
            "months": [str(m) for m in months_index],
            "boroughs": list(boroughs.BOROUGHS),
            "boroughs_with_labour_force": [b for b, has in zip(boroughs.BOROUGHS, has_force) if has],
            "simulated": simulated.tolist(),
            "observed": [[None if not np.isfinite(v) else float(v) for v in row] for row in observed_rate],
            "fit_to_observed": nyc_economy.fit_to_observed(simulated, observed_rate, has_force),
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
        "caches": caches.describe(),
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
        nyc_economy.plot_unemployment(
            stage.path / "economy.png", months_index, simulated, observed_rate, has_force,
            title=f"Unemployment, {n:,} agents ({args.behavior}"
                  + (", calibrated" if calibration else "") + ")",
            train_months=args.train_months if calibration else None, expected=expected,
        )
        write_report(stage.path, title=f"nyc_economy: COVID-19 and unemployment, {n:,} agents", info=run_info)
    print(f"simulated {num_months} months ({days} days) in {result.run_seconds:.2f} s "
          f"(compile {compile_seconds:.1f} s)")
    fit = run_info["unemployment"]["fit_to_observed"]
    if fit:
        print(f"unemployment vs observed: MAE {fit['mae']:.2f} pp, ND {fit['nd']:.3f}")
    print(f"wrote {out / 'metrics.csv'} (and .parquet), {out / 'run.json'}, {out / 'economy.png'}, "
          f"{out / REPORT_FILE}")
    return 0


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim nyc_economy`` and
    ``scenarios/nyc_economy.py`` report them in one line)."""
    return command.execute("nyc_economy", argv)
