#!/usr/bin/env python
"""Cost of the LLM archetype layer: model calls per simulated week and the step-time
overhead over the heuristic isolation policy with a warm cache.

    python benchmarks/bench_archetypes.py [--agents 47303] [--weeks 8] [--archetypes age,gender]
                                          [--llm-url URL --llm-model NAME] [--repeats 3]

Population: a synthetic Astoria (NTA QN0103, 47,303 agents) by default, or a synthetic NYC
population of exactly ``--agents`` agents; the epidemic starts with 0.2% exposed and 0.2%
infected agents. The model is the bundled SmolLM2-135M-Instruct in process (the
``llm-local`` extra), or an OpenAI-compatible server with ``--llm-url``/``--llm-model``.

Runs, all ``--weeks`` weeks long with the same seed:

1. cold: an empty response cache; counts model calls per simulated week (archetypes x
   samples + retries, whatever the number of agents) and the seconds spent asking;
2. warm: the same run again, every answer from the cache (replay-only: a miss would fail),
   the cache file opened anew for each run;
3. heuristic: the case-trend policy inside the simulation, no host round trip;
4. same answers, no layer: the warm run's weekly answers given up front as the input
   table of the same compiled model (no host refresh; same 7-day chunks). Its metrics
   must equal the warm run's bit for bit (checked), so the two simulate the same epidemic.

Runs 2-4 alternate, ``--repeats`` times after a first compiling run each (best and median wall time,
the whole ``jaxsim.behaviour.run_with_behaviour`` / ``engine.run`` call: simulation, the weekly
host loop, prompt rendering and cache look-ups). Every run donates its freshly built initial
state (``donate=True``: no copy of the state). Overhead over the heuristic policy = warm /
heuristic - 1 (the target: under 10%); it mixes the layer's cost with the different
epidemic that the model's answers produce (how many isolate changes how many are
infectious, hence the contact sums' cost). The layer's own cost = warm / same answers - 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, help="a synthetic NYC population of N agents (default: Astoria)")
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--archetypes", default="age,gender")
    parser.add_argument("--llm-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import jax
    import numpy as np

    from jaxsim import behaviour, engine
    from jaxsim.llm import CachedBackend, LlamaCppBackend, OpenAIChatBackend, ResponseCache, SamplingSettings
    from jaxsim.models import covid
    from jaxsim.nyc import synthesis

    population = (
        synthesis.synthesize_nyc_population(["QN0103"], seed=0) if args.agents is None
        else synthesis.synthesize_population_of_size(args.agents, seed=0)
    )
    grouping = behaviour.group_agents(population, args.archetypes.split(","))
    arch_pop = behaviour.with_group_attribute(population, grouping)
    days = 7 * args.weeks
    inner = (
        OpenAIChatBackend(args.llm_url, args.llm_model) if args.llm_url
        else LlamaCppBackend()
    )

    def setup(pop, groups, table):
        # 20 cases a day over the 28 days before the run: the case signal the policies start from.
        world = covid.build_world(pop, isolation_groups=groups, isolation_prob=table, prior_daily_cases=20.0)
        params = covid.default_params(
            world, args.weeks, contact_normaliser=covid.default_contact_normaliser(world),
            initial_exposed_share=0.002, initial_infected_share=0.002,
        )
        return world, params

    table = np.zeros((args.weeks, grouping.num_groups), np.float32)
    world_a, params_a = setup(arch_pop, behaviour.ARCHETYPE_ATTRIBUTE, table)
    world_h, params_h = setup(population, "age", None)
    model_a = covid.covid_model(policy="inputs")
    model_h = covid.covid_model(policy="heuristic")

    def archetype_run(cache):
        layer = behaviour.BehaviourLayer(
            policy=behaviour.policy_of(model_a, "isolation_prob"), grouping=grouping,
            backend=CachedBackend(inner, cache),
            template=covid.isolation_template(grouping.attributes),
            options={"neighbourhood": "Astoria, Queens", "ascertainment": 0.25,
                     "baseline_by_age": covid.DEFAULT_ISOLATION_BASELINE, "response": 1.0},
            settings=SamplingSettings(),
        )
        state = model_a.init(jax.random.key(1), params_a, world_a)
        start = time.perf_counter()
        run = behaviour.run_with_behaviour(model_a, jax.random.key(0), state, params_a, world_a, days, [layer],
                                           donate=True)
        return time.perf_counter() - start, run, layer

    def fixed_table_run(answers):
        world = world_a.with_inputs(isolation_prob=jax.numpy.asarray(answers))
        state = model_a.init(jax.random.key(1), params_a, world)
        start = time.perf_counter()
        result = engine.run(model_a, jax.random.key(0), state, params_a, world, days, progress=False, donate=True)
        return time.perf_counter() - start, result

    def heuristic_run():
        state = model_h.init(jax.random.key(1), params_h, world_h)
        start = time.perf_counter()
        engine.run(model_h, jax.random.key(0), state, params_h, world_h, days, progress=False, donate=True)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.sqlite"
        with ResponseCache(path) as cache:
            cold_seconds, cold, layer = archetype_run(cache)
        calls = layer.backend.llm_calls
        heuristic_run()  # compile
        answers = cold.tables["isolation_prob"]
        _, same = fixed_table_run(answers)
        for name, values in cold.result.metrics.items():
            if not np.array_equal(values, same.metrics[name]):
                raise SystemExit(f"the fixed-table run differs from the archetype run in metric {name!r}")
        warm, heuristic, fixed = [], [], []
        for _ in range(args.repeats):
            with ResponseCache(path, mode="replay") as cache:  # opened anew: each warm run reads the file
                seconds, run, warm_layer = archetype_run(cache)
            assert warm_layer.backend.llm_calls == 0
            warm.append((seconds, run.refresh_seconds))
            heuristic.append(heuristic_run())
            fixed.append(fixed_table_run(answers)[0])
    best_warm = min(warm)
    best_heuristic = min(heuristic)
    best_fixed = min(fixed)
    median_warm = float(np.median([w[0] for w in warm]))
    median_heuristic = float(np.median(heuristic))
    median_fixed = float(np.median(fixed))
    rows = [
        ("agents", f"{population.size:,}"),
        ("archetypes", f"{grouping.num_groups} ({args.archetypes})"),
        ("weeks", str(args.weeks)),
        ("model", f"{inner.name}: {inner.model}"),
        ("cold: model calls per simulated week", f"{calls / args.weeks:.1f}"),
        ("cold: parse failures / retries", f"{layer.parse_failures} / {layer.retries}"),
        ("cold: seconds asking the model", f"{cold.refresh_seconds:.1f}"),
        ("warm: model calls per simulated week", "0.0"),
        ("warm: ms per simulated day (best)", f"{1e3 * best_warm[0] / days:.3f}"),
        ("warm: of which refresh ms per week", f"{1e3 * best_warm[1] / args.weeks:.3f}"),
        ("heuristic: ms per simulated day (best)", f"{1e3 * best_heuristic / days:.3f}"),
        ("same answers, no layer: ms per simulated day (best)", f"{1e3 * best_fixed / days:.3f}"),
        ("overhead over the heuristic policy, warm cache (best / median)",
         f"{100 * (best_warm[0] / best_heuristic - 1):+.1f}% / {100 * (median_warm / median_heuristic - 1):+.1f}%"),
        ("the layer's own cost, warm / same answers (best / median)",
         f"{100 * (best_warm[0] / best_fixed - 1):+.1f}% / {100 * (median_warm / median_fixed - 1):+.1f}%"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
