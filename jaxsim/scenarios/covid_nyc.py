#!/usr/bin/env python
"""COVID-19 in New York City neighbourhoods, with isolation behaviour.

    python scenarios/covid_nyc.py [--population DIR | --ntas QN0103,BK1001 | --agents N]
                                  [--days 21] [--seed 0] [--out DIR] [--start-week 202047]

With no arguments: a synthetic Astoria (NTA QN0103, 47,303 people) for 21 days from the
first week with observed cases.

Methods
-------
Population. Agents are a population directory's rows, or a synthetic population of the
chosen NYC neighbourhoods (census household composition per NTA, age and gender from
citywide marginals; :mod:`jaxsim.nyc.synthesis`), with a household contact layer and a
community layer (negative-binomial degree per age band).

Disease. The SEIRM model of :mod:`jaxsim.models.covid`: a susceptible agent is exposed on
day t with probability 1 - exp(-lambda), lambda = R(t) sigma[age] sum_j alpha[stage_j]
g(t - t_inf_j) w_ij / c, over its household and community contacts; exposed agents
become infected after 5 days, and recover or die (age-dependent infection fatality) 5
days later.

Behaviour. Each day an agent isolates with its group's probability, set weekly from how
this week's simulated cases compare with the 4-week average (the heuristic), or asked of
a language model once per archetype per week (``--behavior llm|llm-local``, the behaviour
layer of :mod:`jaxsim.behaviour`). Isolating agents neither infect nor get infected.

Initial conditions. From ``disease_stages.csv`` when the population has one; otherwise the
start week's reported cases in the neighbourhoods (divided by an ascertainment of 0.25)
set the shares of exposed and infected agents (:func:`jaxsim.nyc.setup.covid_setup`).

Outputs (in ``--out``, default ``out/covid_nyc``): ``metrics.csv`` and the same table as
``metrics.parquet`` (one row per day; with ``reported_cases`` = ``new_cases`` x the
ascertainment, and on each epiweek's last day (Saturday) ``reported_cases_week`` and the
neighbourhoods' ``observed_cases_week``, NaN on other days and where unknown:
:func:`jaxsim.models.covid.report.case_columns`), ``run.json`` (parameters, seed,
population summary, versions, timing), ``epidemic.png`` (curves by date, with observed
weekly cases where the data covers the NTAs) and ``report.html`` (one page: the plots, the
key numbers, links to the files; :mod:`jaxsim.report`).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsim import behaviour, checkpoint, cli, engine, memory, outputs, plot_worker, report, sampling, sharding
from jaxsim.llm import options as llm_options
from jaxsim.models import covid
from jaxsim.models.covid.report import case_columns
from jaxsim.nyc import cases as nyc_cases
from jaxsim.errors import InputError
from jaxsim.nyc import calibration as nyc_calibration
from jaxsim.nyc import cli as nyc_cli
from jaxsim.nyc import setup as nyc_setup
from jaxsim.transfer import to_device_array
from jaxsim.world import to_device
from jaxsim import caches
from jaxsim.progress import now as stage_now
from jaxsim.scenarios import arguments, command


def parse_args(argv=None):
    """The options of this scenario (:mod:`jaxsim.scenarios.arguments`)."""
    return arguments.parse("covid_nyc", argv)


def isolation_layer(args, population, window):
    """The behaviour layer asking a language model each archetype's isolation this week,
    and the population with its ``archetype`` attribute."""
    grouping = behaviour.group_agents(population, llm_options.archetype_attributes(args))
    areas = nyc_setup.neighbourhoods_of(population)
    area_names = nyc_cases.neighbourhood_names(areas) if areas else {}
    layer = behaviour.BehaviourLayer(
        policy=behaviour.policy_of(covid.covid_model(policy="inputs"), "isolation_prob"), grouping=grouping,
        backend=llm_options.backend_from_args(args),
        options={"neighbourhood": " and ".join(area_names.values()) or "New York City", "area_names": area_names,
                 "ascertainment": args.ascertainment},
        settings=llm_options.sampling_from_args(args), samples=args.llm_samples,
    )
    return layer, behaviour.with_group_attribute(population, grouping)


#: Options that do not change a run's numbers: a resumed run may differ from the
#: checkpointed one in these (in any other it is refused).
RUN_ONLY_OPTIONS = ("out", "resume", "checkpoint_every", "no_progress", "compile_cache", "no_cache")


def checkpoints_from_args(args, out: Path) -> checkpoint.Checkpoints | None:
    """``--checkpoint-every N`` (into ``OUT/checkpoints``; an earlier run's there are
    replaced) and ``--resume DIR`` (from and into ``DIR`` or ``DIR/checkpoints``), or
    ``None`` without them."""
    if args.checkpoint_every is None and args.resume is None:
        return None
    config = {k: v for k, v in sorted(vars(args).items()) if k not in RUN_ONLY_OPTIONS}
    if args.resume is not None:
        checkpoints = checkpoint.Checkpoints(checkpoint.resolve(args.resume), every=args.checkpoint_every,
                                             config=config)
        checkpoints.check_config()  # refuse other options before any work
        return checkpoints
    return checkpoint.Checkpoints(out / checkpoint.FOLDER_NAME, every=args.checkpoint_every, config=config,
                                  overwrite=True)


def run_calibration(args, population) -> tuple[dict | None, str]:
    """The calibration this run uses (its record, with ``path``), or ``None``, and a line
    saying where the parameters come from: ``--transmission-rate`` when given; else
    ``--calibration FILE`` (``none``: the defaults); else, for Astoria, the shipped fit of
    its second wave's rise (:data:`jaxsim.nyc.calibration.DEFAULT_FIT_FILE`)."""
    if args.transmission_rate is not None:
        if args.calibration not in (None, "none"):
            raise InputError(f"--transmission-rate {args.transmission_rate:g} and --calibration {args.calibration} "
                             "exclude each other: each sets the weekly R(t)")
        return None, f"R(t) {args.transmission_rate:g} every week (--transmission-rate), uncalibrated"
    if args.calibration == "none":
        return None, f"the model's defaults (R(t) {covid.DEFAULT_TRANSMISSION_RATE:g} every week), uncalibrated"
    if args.calibration is not None:
        info = nyc_calibration.read_calibration(args.calibration)
        return info | {"path": args.calibration}, f"calibration {args.calibration}"
    fit = nyc_calibration.default_calibration()
    if nyc_setup.neighbourhoods_of(population) == [fit["nta"]] and args.start_week in (None, fit["epiweeks"][0]):
        how = fit.get("how_fitted", {})
        return (fit | {"path": str(nyc_calibration.DEFAULT_FIT_FILE)},
                f"the shipped fit of {fit['nta']}'s epiweeks {fit['epiweeks'][0]}-{fit['epiweeks'][-2]} "
                f"({how.get('command', 'jaxsim calibrate_covid')}; --calibration none for the defaults)")
    return None, (f"the model's defaults (R(t) {covid.DEFAULT_TRANSMISSION_RATE:g} every week), uncalibrated: "
                  f"the shipped fit is {fit['nta']}'s from epiweek {fit['epiweeks'][0]} "
                  "(give --calibration FILE for a fit of this population)")


def run(args) -> int:
    """The run the parsed options ask for; 0 on success."""
    llm_options.check_llm_arguments(args)
    out = Path(args.out)
    checkpoints = checkpoints_from_args(args, out)  # None without the options (refused with --behavior llm*)
    weeks = math.ceil(args.days / 7)

    # Population, and the observed cases of its neighbourhoods from the start week.
    stage_now("building the population")
    build_start = time.perf_counter()
    population = nyc_cli.population_from_args(args, seed=args.seed)
    build_seconds = time.perf_counter() - build_start
    n = population.size
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts "
          f"({', '.join(f'{k}: {v.num_edges:,}' for k, v in population.networks.items())})")
    calibration_info, parameter_source = run_calibration(args, population)
    start_week = args.start_week or (calibration_info["epiweeks"][0] if calibration_info else None)
    window = nyc_setup.case_window(population, start_week)

    # Behaviour: the case-trend heuristic, or a language model asked once per archetype a week.
    layer, groups, table = None, "age", None
    if args.behavior != "heuristic":
        layer, population = isolation_layer(args, population, window)
        groups, table = behaviour.ARCHETYPE_ATTRIBUTE, np.zeros((weeks, layer.grouping.num_groups), np.float32)
    model = covid.covid_model(policy="heuristic" if layer is None else "inputs")

    # World, parameters and initial conditions from the case data; devices.
    setup = nyc_setup.covid_setup(population, window, weeks, ascertainment=args.ascertainment,
                                  transmission_rate=(covid.DEFAULT_TRANSMISSION_RATE if args.transmission_rate is None
                                                     else args.transmission_rate), isolation_groups=groups,
                                  isolation_prob=table, on_device=False)
    world, params = setup.world, setup.params
    if calibration_info:  # the calibration's weekly R(t) for this run's epiweeks (later weeks: its last)
        run_weeks = window.epiweeks(weeks) if window.observed is not None else []
        run_weeks = list(run_weeks) + [None] * (weeks - len(run_weeks))
        fitted = nyc_calibration.calibrated_values(calibration_info, calibration_info["path"], world, run_weeks)
        params = params.replace(**{k: to_device_array(v) for k, v in fitted.items()})
        rates = np.asarray(params.transmission_rate).ravel()
        print(f"parameters: {parameter_source}; weekly R(t) {', '.join(f'{r:.2f}' for r in rates)}")
    else:
        print(f"parameters: {parameter_source}")
    mesh = cli.mesh_from_args(args, n)  # None: one device, nothing split
    # Refuse before allocating: devices with memory of their own each hold about 1/D of it.
    split = mesh.size if mesh is not None and mesh.devices.flat[0].platform != "cpu" else 1
    memory.check_fits(
        memory.run_bytes(model, params, world, args.days) // split,
        f"a run of {n:,} agents" + (f" on each of {split} devices" if split > 1 else ""),
    )
    world = to_device(world)
    init_key, run_key = sampling.keys_from_seed(args.seed)
    if mesh is not None:  # split before building the state: it may add padding slots
        world = sharding.shard_world(world, mesh)
    state = engine.initial_state(model, init_key, params, world)  # one compiled program
    if mesh is not None:
        state = sharding.shard_state(state, mesh, world)
        params, run_key = sharding.replicate((params, run_key), mesh)
    initial_counts = np.bincount(np.asarray(state.stage)[:n], minlength=5)

    # Run.
    progress = False if args.no_progress else "auto"
    stage_now(f"compiling and running {args.days} days")
    if layer is None:
        result = engine.run(model, run_key, state, params, world, args.days, progress=progress,
                            description="covid_nyc", donate=True, checkpoints=checkpoints,
                            resume=args.resume is not None)
        if result.resumed_from is not None:
            print(f"resumed from day {result.resumed_from} of {checkpoints.directory}")
    else:
        answered = behaviour.run_with_behaviour(model, run_key, state, params, world, args.days, [layer],
                                                progress=progress)
        result = answered.result
        print(f"archetypes: {layer.grouping.num_groups} ({', '.join(layer.grouping.attributes)}); "
              f"{layer.report()['llm_calls']} model calls, {layer.report()['cache_hits']} cache hits, "
              f"{layer.parse_failures} parse failures")

    # Outputs: staged, so that a failure leaves no half-written set of files.
    table = outputs.metrics_table(result.metrics, start_date=window.start_date, declared=model.metrics,
                                  world=world, first_columns=covid.STAGE_NAMES + ("new_infections", "isolating"))
    observed_weekly = None
    if window.observed is not None:
        shown = window.weekly_cases(weeks)
        observed_weekly = pd.DataFrame({"week_start_day": np.arange(len(shown)) * 7, "cases": shown,
                                        "epiweek": window.epiweeks(len(shown))})
    table = case_columns(table, ascertainment=args.ascertainment, observed_weekly=observed_weekly)
    simulated_days = args.days - (result.resumed_from or 0)  # by this process
    agent_steps = n * simulated_days
    run_info = {
        "scenario": "covid_nyc",
        "arguments": vars(args),
        "seed": args.seed,
        "days": args.days,
        "start_date": window.start_date,
        "start_epiweek": window.start_epiweek,
        "model": model.name,
        "substeps": [s.name for s in model.substeps],
        "behavior": args.behavior,
        "parameters": covid.params_report(params, world),
        "parameter_source": parameter_source,
        "calibration": None if not calibration_info else {
            "file": calibration_info["path"], "epiweeks": calibration_info["epiweeks"],
            "how_fitted": calibration_info.get("how_fitted"),
        },
        "initial_conditions": {
            "source": setup.initial_source,
            "counts": {name: int(c) for name, c in zip(covid.STAGE_NAMES, initial_counts)},
        },
        "population": population.summary() | {"build_seconds": build_seconds},
        "observed_cases": window.summary(weeks),
        "llm": None if layer is None else layer.report() | {
            "refresh_seconds": answered.refresh_seconds,
            "calls_per_simulated_week": layer.report()["llm_calls"] / weeks,
        },
        "versions": outputs.package_versions(),
        "caches": caches.describe(),
        "checkpoints": None if checkpoints is None else checkpoints.report() | {
            "resumed_from_day": result.resumed_from, "seconds": result.checkpoint_seconds},
        "devices": {"count": 1 if mesh is None else mesh.size,
                    "halo": None if mesh is None else sharding.halo_stats(world).as_dict()},
        "timing": {
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            "ms_per_day": 1e3 * result.run_seconds / max(simulated_days, 1),
            "agent_steps_per_second": agent_steps / result.run_seconds if result.run_seconds else None,
        },
        "totals": {
            "infections": int(table["new_infections"].sum()),
            "cases": int(table["new_cases"].sum()),
            "reported_cases": float(table["reported_cases"].sum()),
            "deaths": int(table["new_deaths"].sum()),
        },
    }
    stage_now("writing the outputs")
    with outputs.StagedOutputs(out) as stage:
        outputs.write_metrics_csv(table, stage.path / "metrics.csv")
        outputs.write_json(run_info, stage.path / "run.json")
        plot_worker.draw(  # covid.plot_epidemic, drawn by the plot worker when one waits
            "jaxsim.models.covid.plots:plot_epidemic", table, stage.path / "epidemic.png",
            title=f"COVID-19, {n:,} agents" + (f", {', '.join(window.observed.ntas)}" if window.observed else ""),
            observed_weekly=observed_weekly, ascertainment=args.ascertainment if window.observed else None,
            stages=covid.STAGE_NAMES,
        )
        if layer is not None:
            outputs.plot_group_probabilities(
                answered.tables["isolation_prob"], layer.grouping.names, stage.path / "archetypes.png",
                title=f"Isolation probability by archetype ({args.behavior}: {layer.report()['model']})",
            )
        report.write_report(stage.path, title=f"covid_nyc: COVID-19, {n:,} agents"
                            + (f", {', '.join(window.observed.ntas)}" if window.observed else ""), info=run_info)

    last = table.iloc[-1]
    print(f"simulated {simulated_days} days in {result.run_seconds:.3f} s "
          f"(compile {result.compile_seconds:.2f} s, {agent_steps / max(result.run_seconds, 1e-9):,.0f} agent-steps/s)")
    counts = {k: int(last[k]) for k in covid.STAGE_NAMES}
    print(f"day {int(last['day'])}: S {counts['susceptible']:,} E {counts['exposed']:,} "
          f"I {counts['infected']:,} R {counts['recovered']:,} M {counts['dead']:,}; "
          f"{int(table['new_infections'].sum()):,} new infections in total")
    print(f"wrote {out / 'metrics.csv'} (and .parquet), {out / 'run.json'}, {out / 'epidemic.png'}"
          + (f", {out / 'archetypes.png'}" if layer is not None else "") + f", {out / report.REPORT_FILE}")
    return 0


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim covid_nyc`` and
    ``scenarios/covid_nyc.py`` report them in one line)."""
    return command.execute("covid_nyc", argv)
