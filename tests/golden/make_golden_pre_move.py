"""Golden outputs of the COVID model and the economy, written with the code *before* the
framework move (commit 003df73). tests/test_golden.py checks that the moved models give the
same metrics, bit for bit. Run once from the repository root:

    python tests/golden/make_golden_pre_move.py
"""

import datetime as dt
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import random_population  # noqa: E402

from jaxsim import boroughs, covid, economy, engine, ensemble  # noqa: E402
from jaxsim import interventions as iv  # noqa: E402

OUT = Path(__file__).resolve().parent


def save(name, metrics, **extra):
    arrays = {f"metric:{k}": np.asarray(v) for k, v in metrics.items()}
    arrays.update({f"extra:{k}": np.asarray(v) for k, v in extra.items()})
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    print(name, sorted(metrics))


def covid_setup(population, weeks, **overrides):
    world = covid.build_world(population, **overrides.pop("world", {}))
    kwargs = dict(initial_exposed_share=0.01, initial_infected_share=0.01, transmission_rate=3.0,
                  contact_normaliser=covid.default_contact_normaliser(world))
    kwargs.update(overrides)
    return world, covid.default_params(population, weeks, **kwargs)


def main():
    population = random_population(3000, seed=0)

    # 1. The plain heuristic model, 30 days.
    world, params = covid_setup(population, 5)
    state = covid.initial_state(params, jax.random.key(7), world)
    result = engine.run(covid.covid_model(), state, params, world, jax.random.key(0), 30, progress=False)
    save("covid_heuristic", result.metrics)

    # 2. Every intervention kind, one of them case-triggered.
    world, params = covid_setup(population, 5)
    interventions = iv.combine(
        iv.isolation_compliance(np.asarray([1.0, 1.3, 1.5, 1.2, 1.0], np.float32), 0.02, start=3),
        iv.scale_contacts("community", 0.5, name="community_scale", schedule=iv.when_cases(40.0, 20.0)),
        iv.isolate_age_bands(population, ["65A"], 0.4, name="shield_65A", start=5, end=25),
        iv.testing(random_share=0.02, symptomatic_share=0.3, sensitivity=0.85, delay_days=2,
                   isolation_days=10, start=2),
        iv.vaccination(population, world, 40.0, priority=("65A", "50t64"), efficacy=0.8,
                       protection_delay_days=5, start=1),
        iv.seeding(5, day=4, capacity=10),
    )
    params = params.replace(interventions=interventions)
    state = covid.initial_state(params, jax.random.key(8), world)
    result = engine.run(covid.covid_model(), state, params, world, jax.random.key(1), 35, progress=False)
    save("covid_interventions", result.metrics)

    # 3. Isolation probabilities supplied from outside (the archetype layer's input).
    table = np.linspace(0.05, 0.4, 3 * 6, dtype=np.float32).reshape(3, 6)
    world, params = covid_setup(population, 3, world={"isolation_prob": table})
    state = covid.initial_state(params, jax.random.key(9), world)
    result = engine.run(covid.covid_model(policy="inputs"), state, params, world, jax.random.key(2), 21,
                        progress=False)
    save("covid_inputs", result.metrics)

    # 4. A differentiable run: its metrics and a gradient (straight-through).
    world, params = covid_setup(population, 4)
    model = covid.covid_model(estimator="straight_through")

    def loss(rate, susceptibility):
        p = params.replace(transmission_rate=rate, susceptibility=susceptibility)
        s = covid.initial_state(p, jax.random.key(10), world, estimator="straight_through")
        _, m = engine.simulate(model, s, p, world, jax.random.key(3), 28, checkpoint_days=7)
        return jnp.sum(m["new_cases"]), m

    (value, metrics), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        params.transmission_rate, params.susceptibility)
    save("covid_gradient", metrics, loss=value, grad_rate=grads[0], grad_susceptibility=grads[1])

    # 5. An ensemble of 5 members over two parameter sets.
    world, params = covid_setup(population, 3)
    sets = [params, params.replace(transmission_rate=params.transmission_rate * 0.7)]
    batch, keys, _ = ensemble.cross(sets, ensemble.member_keys(4, 3))
    result = ensemble.run_ensemble(covid.covid_model(), batch, world, keys, 21, batch_size=3)
    save("covid_ensemble", result.metrics)

    # 6. The coupled COVID + economy model, 3 months, with a stimulus.
    start = dt.date(2020, 8, 1)
    months = 3
    days = economy.days_in_months(start, months)
    pop5 = boroughs.five_borough_population(2500, seed=3, cached=False)
    world = covid.build_world(pop5)
    covid_params = covid.default_params(
        pop5, 14, contact_normaliser=covid.default_contact_normaliser(world), transmission_rate=4.0,
        initial_exposed_share=0.03, initial_infected_share=0.03,
    )
    attributes = economy.labour_attributes(pop5, seed=3)
    claims = np.tile(np.asarray([[0.19, 0.16, 0.11, 0.17, 0.12]], np.float32), (months, 1))
    world = economy.build_economy_world(world, pop5, attributes, start=start, claims_rate=claims)
    params = economy.CoupledParams(
        covid_params, economy.default_economy_params(pop5, stimulus=economy.stimulus_payment(800.0, [1], num_months=months)))
    init_args = {"initial_unemployment": np.asarray([0.2, 0.15, 0.12, 0.15, 0.12], np.float32),
                 "prior_case_signal": np.full(5, 1.0, np.float32)}
    state = economy.coupled_initial_state(params, jax.random.key(11), world, init_args)
    result = engine.run(economy.coupled_model(), state, params, world, jax.random.key(4), days, progress=False)
    save("coupled_economy", result.metrics)


if __name__ == "__main__":
    main()
