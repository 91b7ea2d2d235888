"""The COVID model, its interventions, its inputs policy, a gradient, an ensemble and the
COVID + labour composition give the metrics they gave before the framework move, bit for
bit (gradients too). The golden files were written by ``tests/golden/make_golden_pre_move.py``
with the code of commit 003df73, before anything moved (see its git history)."""

import datetime as dt
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import engine, ensemble
from jaxsim import interventions as iv
from jaxsim.coupling import Parts, compose
from jaxsim.models import covid, labour
from jaxsim.nyc import boroughs

from conftest import random_population

GOLDEN = Path(__file__).resolve().parent / "golden"


def check(name, metrics, **extra):
    stored = np.load(GOLDEN / f"{name}.npz")
    names = sorted(k[len("metric:"):] for k in stored if k.startswith("metric:"))
    assert sorted(metrics) == names, name
    for metric in names:
        np.testing.assert_array_equal(np.asarray(metrics[metric]), stored[f"metric:{metric}"], err_msg=f"{name}: {metric}")
    for key, value in extra.items():
        np.testing.assert_array_equal(np.asarray(value), stored[f"extra:{key}"], err_msg=f"{name}: {key}")


@pytest.fixture(scope="module")
def population():
    return random_population(3000, seed=0)


def setup(population, weeks, **world):
    w = covid.build_world(population, **world)
    return w, covid.default_params(w, weeks, initial_exposed_share=0.01, initial_infected_share=0.01,
                                   transmission_rate=3.0)


def test_plain_model(population):
    world, params = setup(population, 5)
    model = covid.covid_model()
    state = model.init(jax.random.key(7), params, world)
    check("covid_heuristic", engine.run(model, jax.random.key(0), state, params, world, 30, progress=False).metrics)


def test_every_intervention_kind(population):
    world, params = setup(population, 5)
    params = params.replace(interventions=iv.combine(
        covid.isolation_compliance(np.asarray([1.0, 1.3, 1.5, 1.2, 1.0], np.float32), 0.02, start=3),
        covid.scale_contacts("community", 0.5, name="community_scale", schedule=covid.when_cases(40.0, 20.0)),
        covid.isolate_age_bands(population, ["65A"], 0.4, name="shield_65A", start=5, end=25),
        covid.testing(random_share=0.02, symptomatic_share=0.3, sensitivity=0.85, delay_days=2,
                      isolation_days=10, start=2),
        covid.vaccination(world, 40.0, priority=("65A", "50t64"), efficacy=0.8, protection_delay_days=5, start=1),
        covid.seeding(5, day=4, capacity=10),
    ))
    model = covid.covid_model()
    state = model.init(jax.random.key(8), params, world)
    check("covid_interventions", engine.run(model, jax.random.key(1), state, params, world, 35, progress=False).metrics)


def test_inputs_policy(population):
    table = np.linspace(0.05, 0.4, 3 * 6, dtype=np.float32).reshape(3, 6)
    world, params = setup(population, 3, isolation_prob=table)
    model = covid.covid_model(policy="inputs")
    state = model.init(jax.random.key(9), params, world)
    check("covid_inputs", engine.run(model, jax.random.key(2), state, params, world, 21, progress=False).metrics)


def test_gradient(population):
    world, params = setup(population, 4)
    model = covid.covid_model()

    def loss(rate, susceptibility):
        p = params.replace(transmission_rate=rate, susceptibility=susceptibility)
        s = engine.initial_state(model, jax.random.key(10), p, world, estimator="straight_through")
        _, m = engine.simulate(model, jax.random.key(3), s, p, world, 28, checkpoint_days=7,
                               estimator="straight_through")
        return jnp.sum(m["new_cases"]), m

    (value, metrics), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        params.transmission_rate, params.susceptibility)
    check("covid_gradient", metrics, loss=value, grad_rate=grads[0], grad_susceptibility=grads[1])


def test_ensemble(population):
    world, params = setup(population, 3)
    sets = [params, params.replace(transmission_rate=params.transmission_rate * 0.7)]
    batch, keys, _ = ensemble.cross(sets, ensemble.member_keys(4, 3))
    check("covid_ensemble", ensemble.run_ensemble(covid.covid_model(), keys, batch, world, 21, batch_size=3).metrics)


def test_covid_and_labour_composed():
    start, months = dt.date(2020, 8, 1), 3
    population = boroughs.five_borough_population(2500, seed=3, cached=False)
    world = covid.build_world(population)
    covid_params = covid.default_params(world, 14, transmission_rate=4.0, initial_exposed_share=0.03,
                                        initial_infected_share=0.03)
    attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=3)
    world = labour.build_world(
        world, population, attributes, regions=boroughs.BOROUGHS, start=start,
        claims_rate=np.tile(np.asarray([[0.19, 0.16, 0.11, 0.17, 0.12]], np.float32), (months, 1)),
        initial_unemployment=np.asarray([0.2, 0.15, 0.12, 0.15, 0.12], np.float32),
        prior_case_signal=np.full(5, 1.0, np.float32),
    )
    params = Parts(covid=covid_params, economy=labour.default_params(
        world, stimulus=labour.stimulus_payment(800.0, [1], num_months=months)))
    model = compose({"covid": covid.covid_model(), "economy": labour.labour_model()})
    state = model.init(jax.random.key(11), params, world)
    days = labour.days_in_months(start, months)
    check("coupled_economy", engine.run(model, jax.random.key(4), state, params, world, days, progress=False).metrics)


def _compare_tables(new, old):
    """Every column of the old table, equal in the new one. The old tables rounded a whole
    column of floats that looked whole (``np.allclose(values, rint(values))``: 1173756.875
    was written 1173757); the new ones round declared counts only. Where the old column is
    such a rounded one, the new values round to it; everything else is equal exactly."""
    import pandas as pd

    assert set(old.columns) <= set(new.columns)
    for column in old.columns:
        a, b = new[column], old[column]
        if a.dtype.kind == "f" and b.dtype.kind in "iuf":
            values, known = a.to_numpy(), a.notna().to_numpy()
            np.testing.assert_array_equal(known, b.notna().to_numpy(), err_msg=column)
            old_values = b.to_numpy(np.float64)[known]
            rounded = np.allclose(values[known], np.rint(values[known])) and np.all(old_values == np.rint(old_values))
            expected = np.rint(values[known]) if rounded else values[known]
            np.testing.assert_array_equal(expected, old_values, err_msg=column)
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=column)


def test_covid_scenario_writes_the_same_metrics(tmp_path):
    import pandas as pd
    from conftest import load_script

    script = load_script(Path(__file__).resolve().parents[1] / "scenarios" / "covid_nyc.py")
    # The golden run is the uncalibrated model (R(t) 2.5); the default now uses the shipped fit.
    assert script.main(["--start-week", "202047", "--calibration", "none", "--out", str(tmp_path / "c"),
                        "--no-progress"]) == 0
    new = pd.read_csv(tmp_path / "c" / "metrics.csv")
    old = pd.read_csv(GOLDEN / "scenario_covid_nyc_202047_metrics.csv")
    # metrics.csv has since gained the reported and observed case columns (issue 16) right
    # after new_cases; every column of the golden file is there, in its order, unchanged.
    added = ["reported_cases", "reported_cases_week", "observed_cases_week"]
    at = list(old.columns).index("new_cases") + 1
    assert list(new.columns) == list(old.columns[:at]) + added + list(old.columns[at:])
    pd.testing.assert_frame_equal(new[list(old.columns)], old, check_exact=True)


def test_economy_scenario_writes_the_same_metrics(tmp_path):
    import pandas as pd
    from conftest import load_script

    script = load_script(Path(__file__).resolve().parents[1] / "scenarios" / "nyc_economy.py")
    assert script.main(["--borough-agents", "5000", "--months", "4", "--out", str(tmp_path / "e"),
                        "--no-progress"]) == 0
    _compare_tables(pd.read_csv(tmp_path / "e" / "metrics.csv"),
                    pd.read_csv(GOLDEN / "scenario_nyc_economy_5000x4_metrics.csv"))
