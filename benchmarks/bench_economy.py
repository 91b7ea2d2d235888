#!/usr/bin/env python
"""Cost of the economy: the coupled COVID + labour step against the COVID step alone, the
labour-market calibration, and a paired stimulus comparison.

    python benchmarks/bench_economy.py [--agents 20000,100000] [--months 12] [--repeats 3]
                                       [--members 8]

Populations: :func:`jaxsim.nyc.boroughs.five_borough_population` (the five boroughs in
proportion to their census population), 0.1% exposed and 0.1% infected agents on day 0,
one imported infection a day. For each size, ``--months`` calendar months from August 2020
run as one compiled ``lax.scan`` (one chunk), with the COVID model alone and with the
coupled model (``jaxsim.coupling.compose({"covid": covid.covid_model(), "economy":
labour.labour_model()})``); after a compiling run of each, the
two are timed ``--repeats`` times, interleaved (best run time of each). Then, at the
first size: the labour-market fit (1,000 Adam steps on the expected flows, compilation
included) and a paired stimulus comparison of ``--members`` members x 2 scenarios through
:func:`jaxsim.ensemble.run_ensemble` (compile and run seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="20000,100000")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=8)
    args = parser.parse_args(argv)

    import jax
    import numpy as np

    from jaxsim import coupling, engine, ensemble, interventions
    from jaxsim.models import covid, labour
    from jaxsim.models.labour import calibration as ec
    from jaxsim.nyc import boroughs
    from jaxsim.nyc import economy_data as data

    start = dt.date(2020, 8, 1)
    period = data.parse_month("2020-08")
    days = labour.days_in_months(start, args.months)
    unemployment, claims = data.load_unemployment(), data.load_ui_claims()
    observed = unemployment.window(period, args.months)
    claims_rate = claims.claims_rate(unemployment, period, args.months)
    print(f"{args.months} months ({days} days) from {start}; best of {args.repeats} runs after a compiling run")
    print("| agents | COVID ms/day | coupled ms/day | economy overhead | COVID compile s | coupled compile s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    first = None
    for n in [int(a) for a in args.agents.split(",")]:
        population = boroughs.five_borough_population(n, seed=0, cached=False)
        world = covid.build_world(population)
        covid_params = covid.default_params(
            world, -(-days // 7), contact_normaliser=covid.default_contact_normaliser(world),
            initial_exposed_share=0.001, initial_infected_share=0.001,
        ).replace(interventions=interventions.combine(covid.seeding(1, start=0, name="imported_infections")))
        attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=0)
        # The economy's initial conditions (each borough's observed rate of the first month, a
        # prior case signal of 1 per 1,000) live in the world.
        world = labour.build_world(
            world, population, attributes, regions=boroughs.BOROUGHS, start=start, claims_rate=claims_rate,
            initial_unemployment=observed[0].astype(np.float32), prior_case_signal=np.ones(5, np.float32),
        )
        params = coupling.Parts(
            covid=covid_params, economy=labour.default_params(world, stimulus=labour.no_stimulus(args.months))
        )

        covid_model = covid.covid_model()
        coupled = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model()})
        runs = {"covid": (covid_model, covid_params), "coupled": (coupled, params)}

        def once(name):
            model, p = runs[name]
            state = model.init(jax.random.key(0), p, world)
            return engine.run(model, jax.random.key(1), state, p, world, days, chunk_days=days, progress=False,
                              donate=True)

        compile_s = {name: once(name).compile_seconds for name in runs}
        best = {name: float("inf") for name in runs}
        for _ in range(args.repeats):  # interleaved, so that the machine's load hits both alike
            for name in runs:
                best[name] = min(best[name], once(name).run_seconds)
        covid_s, coupled_s = best["covid"], best["coupled"]
        covid_c, coupled_c = compile_s["covid"], compile_s["coupled"]
        print(f"| {n:,} | {1e3 * covid_s / days:.2f} | {1e3 * coupled_s / days:.2f} | "
              f"{coupled_s / covid_s - 1:+.0%} | {covid_c:.1f} | {coupled_c:.1f} |")
        if first is None:
            first = (population, world, params, coupled)

    population, world, params, coupled = first
    state = coupled.init(jax.random.key(0), params, world)
    result = engine.run(coupled, jax.random.key(1), state, params, world, days, chunk_days=days,
                        progress=False, donate=True)
    rows = labour.monthly_rows(result.metrics)
    problem = ec.LabourCalibrationProblem(
        params=params.economy, observed=observed, willingness=result.metrics["willingness"][rows],
        case_signal=result.metrics["case_signal"][rows], claims_rate=result.metrics["claims_rate"][rows],
        initial_unemployment=result.metrics["unemployment_rate"][rows][0], train_months=max(2, round(0.75 * args.months)),
    )
    fit = ec.fit_labour_market(problem, steps=1000)
    print(f"\nlabour-market fit: 1,000 Adam steps in {fit.seconds:.2f} s (compilation included), "
          f"loss {fit.loss_curve[0]:.2f} -> {fit.loss_curve[-1]:.3f} pp^2")

    paid = params.replace(economy=params.economy.replace(
        stimulus=labour.stimulus_payment(1200.0, [1], num_months=args.months)))
    keys = ensemble.member_keys(7, args.members)
    batch, all_keys, labels = ensemble.cross([params, paid], keys, set_labels=["baseline", "stimulus"])
    begin = time.perf_counter()
    out = ensemble.run_ensemble(
        coupled, all_keys, batch, world, days,
        metric_names=["month_end", "city_unemployed", "city_consumption"], members=labels,
    )
    total = time.perf_counter() - begin
    parts = out.split("set")
    compared = ensemble.compare(parts["baseline"], {"stimulus": parts["stimulus"]}, outcomes={
        "extra_consumption_usd": ("city_consumption", -1), "extra_unemployed_person_months": ("city_unemployed", -1)})
    extra = compared["differences"]["stimulus"]["extra_consumption_usd"]
    print(f"paired stimulus comparison ({population.size:,} agents, {args.members} members x 2, batch "
          f"{out.batch_size}): compile {out.compile_seconds:.1f} s, run {out.run_seconds:.1f} s, total {total:.1f} s; "
          f"extra consumption {extra['mean']:,.0f} USD (90% of members {extra['low']:,.0f} .. {extra['high']:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
