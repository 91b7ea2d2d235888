#!/usr/bin/env python
"""COVID-19 in New York City neighbourhoods, with isolation behaviour.

    python scenarios/covid_nyc.py [--population DIR | --ntas QN0103,BK1001 | --agents N]
                                  [--days 21] [--seed 0] [--out DIR]

With no arguments: a synthetic Astoria (NTA QN0103, 47,303 people) for 21 days from the
first week with observed cases.

Methods
-------
Population. Agents are a population directory's rows, or a synthetic population of the
chosen NYC neighbourhoods (census household composition per NTA, age and gender from
citywide marginals; see :mod:`jaxsim.synthetic`), with a household contact layer and a
community layer (negative-binomial degree per age band).

Disease. SEIRM: a susceptible agent is exposed on day t with probability
1 - exp(-lambda), lambda = R(t) sigma[age] sum_j alpha[stage_j] g(t - t_inf_j) w_ij / c,
over its household and community contacts (:mod:`jaxsim.kernels.contact_infection`);
exposed agents become infected after 5 days, and recover or die (age-dependent
infection fatality) 5 days later.

Behaviour. Each day an agent isolates with its age band's probability, set weekly from how
this week's simulated cases compare with the 4-week average (:mod:`jaxsim.kernels.isolation`).
Isolating agents neither infect nor get infected.

Initial conditions. From ``disease_stages.csv`` when the population has one; otherwise the
start week's reported cases in the neighbourhoods (divided by an ascertainment of 0.25)
set the shares of exposed and infected agents.

Outputs (in ``--out``, default ``out/covid_nyc``): ``metrics.csv`` (one row per day),
``run.json`` (parameters, seed, population summary, versions, timing) and
``epidemic.png`` (curves, with observed weekly cases where the data covers the NTAs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsim import archetype_cli, archetypes, cli, covid, engine, memory, nyc_cases, outputs, sharding
from jaxsim.covid_setup import covid_setup_from_cases
from jaxsim.nyc_data import load_households


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_population_arguments(parser)
    cli.add_device_arguments(parser)
    parser.add_argument("--days", type=int, default=21, help="days to simulate (default 21)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for population and run")
    parser.add_argument("--out", default="out/covid_nyc", help="output directory")
    parser.add_argument(
        "--start-week", type=int, help="epiweek of day 0, e.g. 202047 (default: first week with data)"
    )
    parser.add_argument(
        "--transmission-rate", type=float, default=covid.DEFAULT_TRANSMISSION_RATE,
        help=f"R(t) for every week (default {covid.DEFAULT_TRANSMISSION_RATE})",
    )
    parser.add_argument(
        "--ascertainment", type=float, default=nyc_cases.DEFAULT_ASCERTAINMENT,
        help="share of infections reported as cases (default 0.25)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    archetype_cli.add_llm_arguments(parser)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error(f"--days must be >= 1, got {args.days}")
    return args


def neighbourhoods_of(population) -> list[str]:
    """NTA codes of the population's areas (labels of its ``area`` attribute)."""
    if "area" not in population.attributes or "area" not in population.labels:
        return []
    return list(population.labels["area"])


def main(argv=None) -> int:
    args = parse_args(argv)
    archetype_cli.check_llm_arguments(args)
    out = Path(args.out)

    # Population.
    build_start = time.perf_counter()
    population = cli.population_from_args(args, seed=args.seed)
    build_seconds = time.perf_counter() - build_start
    n = population.size
    mesh = cli.mesh_from_args(args, n)  # None: one device, nothing split
    # Devices with memory of their own (GPUs, TPUs) each hold about 1/D of the agents;
    # CPU "devices" share the host's memory.
    split = mesh.size if mesh is not None and mesh.devices.flat[0].platform != "cpu" else 1
    memory.check_fits(
        memory.run_bytes(population, args.days) // split,
        f"a run of {n:,} agents" + (f" on each of {split} devices" if split > 1 else ""),
    )
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts "
          f"({', '.join(f'{k}: {v.num_edges:,}' for k, v in population.networks.items())})")

    # Observed cases where the data covers the population's neighbourhoods.
    # Reported cases are per neighbourhood: shares use the census people of those
    # neighbourhoods; the plot scales cases to the agents that represent them.
    observed = nyc_cases.observed_cases(neighbourhoods_of(population))
    start_index, start_date, agents_observed, census_observed = 0, None, 0.0, 0.0
    if observed is not None:
        start_index = observed.week_index(args.start_week) if args.start_week else 0
        start_date = observed.week_end[start_index] - pd.Timedelta(days=6)
        area = population.attributes["area"]
        codes = [population.code("area", nta) for nta in observed.ntas]
        agents_observed = float(np.isin(area, codes).sum())
        census_observed = float(load_households().loc[list(observed.ntas), "people"].sum())
    elif args.start_week:
        raise ValueError(
            f"--start-week {args.start_week}: no case data covers this population's areas "
            f"(data covers {nyc_cases.available_ntas()})"
        )

    # Contacts, parameters and initial conditions.
    weeks = math.ceil(args.days / 7)
    layer, isolation_groups, isolation_table = None, "age", None
    if args.behavior != "heuristic":
        # One question per archetype per week; the answers fill world.inputs["isolation_prob"].
        areas = neighbourhoods_of(population)
        area_names = nyc_cases.neighbourhood_names(areas) if areas else {}
        layer, population = archetype_cli.archetype_layer_from_args(
            args, population,
            area_names=area_names,
            neighbourhood=" and ".join(area_names.values()) or "New York City",
            ascertainment=args.ascertainment,
            baseline_by_age=covid.DEFAULT_ISOLATION_BASELINE,
            response=covid.DEFAULT_ISOLATION_RESPONSE,
        )
        isolation_groups = archetypes.ARCHETYPE_ATTRIBUTE
        isolation_table = archetype_cli.empty_isolation_table(weeks, layer)
    setup = covid_setup_from_cases(
        population, observed, start_index, census_observed, weeks,
        ascertainment=args.ascertainment, transmission_rate=args.transmission_rate,
        isolation_groups=isolation_groups, isolation_prob=isolation_table,
    )
    world, params = setup.world, setup.params
    init_key, run_key = jax.random.split(jax.random.key(args.seed))
    if mesh is not None:  # split before building the state: it may add padding slots
        world = sharding.shard_world(world, mesh)
    state = covid.initial_state(
        params, init_key, world, stages=setup.stages, prior_daily_cases=setup.prior_daily_cases
    )
    if mesh is not None:
        state = sharding.shard_state(state, mesh, world)
        params, run_key = sharding.replicate((params, run_key), mesh)
    initial_counts = np.bincount(np.asarray(state.stage)[:n], minlength=5)

    # Run.
    progress = False if args.no_progress else "auto"
    if layer is None:
        model = covid.covid_model(policy="heuristic")
        result = engine.run(
            model, state, params, world, run_key, args.days, progress=progress, description="covid_nyc",
        )
    else:
        model = covid.covid_model(policy="inputs")
        archetype_run = archetypes.run_with_archetypes(
            model, state, params, world, run_key, args.days, layer, progress=progress,
        )
        result = archetype_run.result
        print(f"archetypes: {layer.grouping.num_groups} ({', '.join(layer.grouping.attributes)}); "
              f"{layer.report()['llm_calls']} model calls, {layer.report()['cache_hits']} cache hits, "
              f"{layer.parse_failures} parse failures")

    # Outputs: staged, so that a failure leaves no half-written set of files.
    age_labels = population.category_labels("age")
    table = outputs.metrics_table(
        result.metrics, start_date=start_date,
        vector_labels={
            "new_infections_by_age": age_labels,
            "isolation_prob": population.category_labels(isolation_groups),
        },
    )
    observed_weekly = None
    if observed is not None:
        # Scale the neighbourhoods' reported cases to the agents that represent them
        # (1 for a synthetic population of whole NTAs).
        weeks_shown = observed.cases[start_index : start_index + weeks] * (agents_observed / census_observed)
        observed_weekly = pd.DataFrame({
            "week_start_day": np.arange(len(weeks_shown)) * 7,
            "cases": weeks_shown,
            "epiweek": observed.epiweeks[start_index : start_index + len(weeks_shown)],
        })
    agent_steps = n * args.days
    run_info = {
        "scenario": "covid_nyc",
        "arguments": vars(args),
        "seed": args.seed,
        "days": args.days,
        "start_date": start_date,
        "start_epiweek": int(observed.epiweeks[start_index]) if observed is not None else None,
        "model": model.name,
        "substeps": [s.name for s in model.substeps],
        "behavior": args.behavior,
        "parameters": covid.params_report(params, population, isolation_groups),
        "initial_conditions": {
            "source": setup.initial_source,
            "counts": {name: int(c) for name, c in zip(outputs.STAGE_NAMES, initial_counts)},
        },
        "population": population.summary() | {"build_seconds": build_seconds},
        "observed_cases": None if observed_weekly is None else {
            "ntas": list(observed.ntas),
            "epiweek": observed_weekly["epiweek"].tolist(),
            "cases_week": observed_weekly["cases"].tolist(),
        },
        "llm": None if layer is None else layer.report() | {
            "refresh_seconds": archetype_run.refresh_seconds,
            "calls_per_simulated_week": layer.report()["llm_calls"] / weeks,
        },
        "versions": outputs.package_versions(),
        "devices": {"count": 1 if mesh is None else mesh.size,
                    "halo": None if mesh is None else sharding.halo_stats(world).as_dict()},
        "timing": {
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            "ms_per_day": 1e3 * result.run_seconds / args.days,
            "agent_steps_per_second": agent_steps / result.run_seconds if result.run_seconds else None,
        },
        "totals": {
            "infections": int(table["new_infections"].sum()),
            "cases": int(table["new_cases"].sum()),
            "deaths": int(table["new_deaths"].sum()),
        },
    }
    with outputs.StagedOutputs(out) as stage:
        outputs.write_metrics_csv(table, stage.path / "metrics.csv")
        outputs.write_json(run_info, stage.path / "run.json")
        outputs.plot_epidemic(
            table, stage.path / "epidemic.png",
            title=f"COVID-19, {n:,} agents" + (f", {', '.join(observed.ntas)}" if observed else ""),
            observed_weekly=observed_weekly, ascertainment=args.ascertainment if observed else None,
        )
        if layer is not None:
            outputs.plot_archetype_probabilities(
                archetype_run.isolation_prob, layer.grouping.names, stage.path / "archetypes.png",
                title=f"Isolation probability by archetype ({args.behavior}: {layer.report()['model']})",
            )

    last = table.iloc[-1]
    print(f"simulated {args.days} days in {result.run_seconds:.3f} s "
          f"(compile {result.compile_seconds:.2f} s, {agent_steps / max(result.run_seconds, 1e-9):,.0f} agent-steps/s)")
    counts = {k: int(last[k]) for k in outputs.STAGE_NAMES}
    print(f"day {int(last['day'])}: S {counts['susceptible']:,} E {counts['exposed']:,} "
          f"I {counts['infected']:,} R {counts['recovered']:,} M {counts['dead']:,}; "
          f"{int(table['new_infections'].sum()):,} new infections in total")
    print(f"wrote {out / 'metrics.csv'}, {out / 'run.json'}, {out / 'epidemic.png'}"
          + (f", {out / 'archetypes.png'}" if layer is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_cli(main))
