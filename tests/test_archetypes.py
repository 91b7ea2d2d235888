"""The archetype layer: grouping, prompts, signals, the weekly refresh loop and alignment.

Model-independent behaviour is tested here with the plain-function backend (the issue's
"plain-function backend for unit tests"); the real model runs end to end in
tests/test_scenario_covid_llm.py.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import behaviour as arch
from jaxsim import calibration as cal
from jaxsim import engine
from jaxsim.models import covid
from jaxsim.models.covid import behaviour as covid_behaviour
from jaxsim.llm import CachedBackend, FunctionBackend, ResponseCache, SamplingSettings
from conftest import random_population


# ----------------------------------------------------------------------------- grouping
def test_grouping_matches_brute_force(small_population):
    grouping = arch.group_agents(small_population, ["age", "gender"])
    age, gender = small_population.attributes["age"], small_population.attributes["gender"]
    combos = sorted({(int(a), int(g)) for a, g in zip(age, gender)})
    assert grouping.num_groups == len(combos) == 12
    for i in range(0, small_population.size, 97):
        g = grouping.codes[i]
        assert grouping.labels[g] == {
            "age": small_population.labels["age"][age[i]],
            "gender": small_population.labels["gender"][gender[i]],
        }
    assert grouping.sizes.sum() == small_population.size
    np.testing.assert_array_equal(np.bincount(grouping.codes), grouping.sizes)
    assert grouping.name(0) == "age=20t29|gender=male"


def test_grouping_keeps_only_combinations_present(small_population):
    pop = small_population
    only_two = arch.group_agents(
        type(pop)(attributes={"age": np.array([0, 0, 5, 5], np.int32), "gender": np.array([1, 1, 0, 1], np.int32)},
                  labels=pop.labels),
        ["age", "gender"],
    )
    assert only_two.names == ["age=20t29|gender=female", "age=U19|gender=male", "age=U19|gender=female"]
    np.testing.assert_array_equal(only_two.codes, [0, 0, 1, 2])


@pytest.mark.parametrize("attributes, message", [
    ([], "at least one"),
    (["age", "age"], "more than once"),
    (["age", "income"], r"\['income'\] are not attributes.*it has"),
])
def test_grouping_errors(small_population, attributes, message):
    with pytest.raises(arch.ArchetypeError, match=message):
        arch.group_agents(small_population, attributes)


def test_archetype_attribute_added_with_labels(small_population):
    grouping = arch.group_agents(small_population, ["gender"])
    pop = arch.with_group_attribute(small_population, grouping)
    assert pop.category_labels("archetype") == ["gender=male", "gender=female"]
    np.testing.assert_array_equal(pop.attributes["archetype"], small_population.attributes["gender"])
    assert "archetype" not in small_population.attributes  # a copy


# ----------------------------------------------------------------------------- prompts
def test_template_checks_placeholders_and_literal_numbers():
    signals = covid_behaviour.SIGNAL_FIELDS
    covid_behaviour.ISOLATION_TEMPLATE.check(["age", "gender"], signals)
    with pytest.raises(arch.ArchetypeError, match=r"unknown placeholders \['income'\]"):
        arch.PromptTemplate("sys", "You earn {income}.").check(["age"], signals)
    with pytest.raises(arch.ArchetypeError, match="literal number near.*placeholders"):
        arch.PromptTemplate("sys", "For example answer 0.3 if unsure ({age}).").check(["age"], signals)
    with pytest.raises(arch.ArchetypeError, match="gender"):
        covid_behaviour.ISOLATION_TEMPLATE.check(["age"], signals)  # {gender_phrase} needs a gender attribute
    assert "You are {gender_phrase}, living in" in covid.isolation_template(["gender"]).user
    assert "You are {age_phrase}, living in" in covid.isolation_template(["area", "age"]).user
    assert covid.isolation_template(["area"]).user.startswith("You live in {neighbourhood}.")


def test_signals_and_change_phrases():
    ring = np.zeros(28, np.float32)
    ring[(np.arange(-28, 0)) % 28] = np.r_[np.full(21, 10.0), np.full(7, 20.0)]  # day 0 view
    s = covid.WeeklySignals.from_case_ring(ring, 0, ascertainment=0.5)
    assert s.onsets_this_week == 140 and s.onsets_four_week_average == pytest.approx(87.5)
    assert s.cases_this_week == 70 and s.change_phrase() == "up 60% on"
    assert covid.WeeklySignals(1, 50, 100).change_phrase() == "down 50% from"
    assert covid.WeeklySignals(1, 101, 100).change_phrase() == "about the same as"
    assert covid.WeeklySignals(1, 0, 0).change_phrase() == "about the same as"


def _layer(pop, attributes, fn, *, samples=1, cache=None, cadence_weeks=1, **options):
    grouping = arch.group_agents(pop, attributes)
    backend = CachedBackend(FunctionBackend(fn), cache if cache is not None else ResponseCache(":memory:", mode="off"))
    layer = arch.BehaviourLayer(
        policy=covid.ISOLATION_POLICY, grouping=grouping, backend=backend,
        template=covid.isolation_template(attributes),
        options={
            "neighbourhood": "Astoria, Queens",
            "baseline_by_age": covid.DEFAULT_ISOLATION_BASELINE,
            "response": covid.DEFAULT_ISOLATION_RESPONSE,
            **options,
        },
        samples=samples, every=cadence_weeks,
    )
    return layer, arch.with_group_attribute(pop, grouping)


def _signals(layer, *args, **kw):
    """A week's signals naming places as the layer's options do (for prompt-only checks)."""
    naming = {k: layer.options[k] for k in ("neighbourhood", "area_names") if k in layer.options}
    return covid.WeeklySignals(*args, **kw, **naming)


def test_prompts_fill_labels_phrases_and_signals(small_population):
    layer, _ = _layer(small_population, ["age", "gender"], lambda r: "0.5")
    prompts = layer.prompts(_signals(layer, 3, 40.0, 20.0, ascertainment=0.25))
    assert len(prompts) == 12
    user = prompts[layer.grouping.names.index("age=65A|gender=female")][1]["content"]
    assert "sixty-five or older, a woman, living in Astoria, Queens" in user
    assert "This week 10 people" in user and "up 100% on the average" in user
    assert "week 3" in user
    assert "{" not in user


def test_area_names_per_archetype(small_population):
    pop = small_population
    pop = type(pop)(attributes={**pop.attributes, "area": (np.arange(pop.size) % 2).astype(np.int32)},
                    labels={**pop.labels, "area": ["QN0103", "BK1001"]}, networks=pop.networks)
    layer, _ = _layer(pop, ["age", "area"], lambda r: "0.5",
                      area_names={"QN0103": "Astoria, Queens", "BK1001": "Bay Ridge, Brooklyn"})
    prompts = layer.prompts(_signals(layer, 0, 0, 0))
    for name, prompt in zip(layer.grouping.names, prompts):
        place = "Bay Ridge, Brooklyn" if "area=BK1001" in name else "Astoria, Queens"
        assert f"living in {place}" in prompt[1]["content"]


# ----------------------------------------------------------------------------- the run
def _setup(pop, layer, days, *, estimator="none", **param_kw):
    weeks = -(-days // 7)
    world = covid.build_world(pop, isolation_groups="archetype",
                              isolation_prob=np.zeros((weeks, layer.grouping.num_groups), np.float32),
                              prior_daily_cases=3.0)
    params = covid.default_params(
        world, weeks, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.01, initial_infected_share=0.01,
        **param_kw,
    )
    state = engine.initial_state(covid.covid_model(policy="inputs"), jax.random.key(1), params, world,
                                 estimator=estimator)
    return world, params, state


def _by_age(request):
    """A deterministic 'model': older archetypes isolate more."""
    text = request.messages[-1]["content"]
    return '{"probability": 0.6}' if "sixty-five" in text else "I would say 10% of days."


def test_weekly_refresh_sets_group_probabilities_and_counts_calls(small_population):
    days = 17
    layer, pop = _layer(small_population, ["age", "gender"], _by_age, samples=2)
    world, params, state = _setup(pop, layer, days)
    run = arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(2), state, params, world,
                                  days, [layer])
    weeks = 3
    assert layer.backend.llm_calls == 12 * 2 * weeks  # archetypes x samples x weeks
    assert layer.parse_failures == 0 and layer.fallbacks == 0
    old = np.array(["65A" in n for n in layer.grouping.names])
    expected = np.where(old, 0.6, 0.1).astype(np.float32)
    np.testing.assert_allclose(run.tables["isolation_prob"], np.tile(expected, (weeks, 1)))
    # Inside jit each agent reads its own archetype's probability.
    np.testing.assert_allclose(run.result.metrics["isolation_prob"], np.tile(expected, (days, 1)))
    assert run.result.metrics["new_infections"].shape == (days,)
    # Agents isolate at their archetype's rate.
    isolating = np.asarray(run.result.state.isolating)[: pop.size]
    codes = layer.grouping.codes
    share_old = isolating[old[codes]].mean()
    share_young = isolating[~old[codes]].mean()
    assert share_old == pytest.approx(0.6, abs=0.06) and share_young == pytest.approx(0.1, abs=0.03)
    report = layer.report()
    assert list(report)[:3] == ["llm_calls", "cache_hits", "parse_failures"]
    assert len(report["weeks"]) == weeks and report["weeks"][0]["probabilities"]["age=65A|gender=male"] == 0.6


def test_cache_makes_a_second_run_free(small_population, tmp_path):
    days = 14
    cache_file = tmp_path / "answers.sqlite"
    metrics = []
    for attempt in range(2):
        with ResponseCache(cache_file) as cache:
            layer, pop = _layer(small_population, ["age"], _by_age, cache=cache)
            world, params, state = _setup(pop, layer, days)
            run = arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(3), state, params, world,
                                          days, [layer])
            metrics.append(run.result.metrics)
            assert (layer.backend.llm_calls, layer.backend.cache_hits) == ((12, 0) if attempt == 0 else (0, 12))
    for name in metrics[0]:
        np.testing.assert_array_equal(metrics[0][name], metrics[1][name])


def test_unreadable_replies_fall_back_to_the_heuristic(small_population):
    """A model that never answers with a number: every archetype falls back to its prior,
    which is what the heuristic policy sets inside the simulation, so the run equals a
    heuristic run exactly (isolation groups = age bands in both)."""
    days = 21
    layer, pop = _layer(small_population, ["age"], lambda r: "I cannot answer that.")
    world, params, state = _setup(pop, layer, days)
    run = arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(4), state, params, world,
                                  days, [layer])
    assert layer.parse_failures == 6 * 3 and layer.fallbacks == 6 * 3
    assert layer.retries == 6 * 3  # one retry per unreadable reply
    assert layer.backend.llm_calls == 2 * 6 * 3

    world_h = covid.build_world(small_population, prior_daily_cases=3.0)
    params_h = covid.default_params(world_h, 3, contact_normaliser=covid.default_contact_normaliser(world_h),
                                    initial_exposed_share=0.01, initial_infected_share=0.01)
    state_h = covid.initial_state(jax.random.key(1), params_h, world_h)
    heuristic = engine.run(covid.covid_model(policy="heuristic"), jax.random.key(4), state_h, params_h, world_h,
                           days)
    # Same groups in the same order (age codes), same probabilities to float precision.
    assert layer.grouping.names == [f"age={a}" for a in small_population.labels["age"]]
    np.testing.assert_allclose(run.result.metrics["isolation_prob"], heuristic.metrics["isolation_prob"], rtol=1e-6)
    np.testing.assert_array_equal(run.result.metrics["new_infections"], heuristic.metrics["new_infections"])


def test_split_run_equals_one_run_with_the_same_table(small_population):
    """The weekly host loop changes nothing but the table: the same table in one go gives
    the same metrics (start_day keeps days, weeks and keys aligned)."""
    days = 16
    layer, pop = _layer(small_population, ["age"], _by_age)
    world, params, state = _setup(pop, layer, days)
    run = arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(5), state, params, world,
                                  days, [layer])
    world2, params2, state2 = _setup(pop, layer, days)
    world2 = world2.replace(inputs={**world2.inputs, "isolation_prob": jnp.asarray(run.tables["isolation_prob"])})
    whole = engine.run(covid.covid_model(policy="inputs"), jax.random.key(5), state2, params2, world2, days)
    for name in whole.metrics:
        np.testing.assert_array_equal(run.result.metrics[name], whole.metrics[name], err_msg=name)


def test_layer_and_run_errors(small_population):
    with pytest.raises(arch.ArchetypeError, match="samples"):
        _layer(small_population, ["age"], _by_age, samples=0)
    with pytest.raises(arch.ArchetypeError, match="every"):
        _layer(small_population, ["age"], _by_age, cadence_weeks=0)
    layer, pop = _layer(small_population, ["age"], _by_age)
    world = covid.build_world(pop, isolation_groups="archetype")
    params = covid.default_params(world, 1, contact_normaliser=5.0)
    state = covid.initial_state(jax.random.key(0), params, world)
    with pytest.raises(arch.ArchetypeError, match=r"inputs\['isolation_prob'\] of shape \[weeks, 6\]"):
        arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(0), state, params, world,
                                7, [layer])


# ----------------------------------------------------------------------------- alignment
def test_alignment_maps_group_probabilities(small_population):
    days = 7
    layer, pop = _layer(small_population, ["age"], _by_age)
    world, params, state = _setup(
        pop, layer, days,
        isolation_alignment_scale={n: (0.5 if "65A" in n else 1.0) for n in layer.grouping.names},
        isolation_alignment_offset=0.2,
    )
    run = arch.run_with_behaviour(covid.covid_model(policy="inputs"), jax.random.key(6), state, params, world,
                                  days, [layer])
    old = np.array(["65A" in n for n in layer.grouping.names])
    np.testing.assert_allclose(run.result.metrics["isolation_prob"][0], np.where(old, 0.5 * 0.6 + 0.2, 0.1 + 0.2), rtol=1e-6)
    np.testing.assert_allclose(run.tables["isolation_prob"][0], np.where(old, 0.6, 0.1))  # the layer's answers, unaligned


def test_alignment_gradient_matches_finite_differences():
    """d(total infections)/d(alignment offset) through the isolation draws (straight-through
    estimator) agrees with many-seed central differences, and calibration can use it."""
    pop = random_population(2000, seed=3)
    layer, pop = _layer(pop, ["gender"], lambda r: "0.2")
    days = 14
    world, params, state0 = _setup(pop, layer, days, estimator="straight_through")
    world = world.replace(inputs={**world.inputs, "isolation_prob": jnp.full((2, 2), 0.2, jnp.float32)})
    params = params.replace(transmission_rate=jnp.full((2,), 4.0, jnp.float32))
    model = covid.covid_model(policy="inputs")

    def infections(offset, key):
        p = params.replace(isolation_alignment_offset=jnp.full((2,), offset, jnp.float32))
        k_init, k_run = jax.random.split(key)
        s = engine.initial_state(model, k_init, p, world, estimator="straight_through")
        _, m = engine.simulate(model, k_run, s, p, world, days, estimator="straight_through")
        return m["new_infections"].sum()

    keys = jax.random.split(jax.random.key(7), 64)
    grad = float(jnp.mean(jax.vmap(jax.grad(infections), (None, 0))(jnp.float32(0.0), keys)))
    h = 0.1
    fd = float(jnp.mean(jax.vmap(infections, (None, 0))(jnp.float32(h), keys)
                        - jax.vmap(infections, (None, 0))(jnp.float32(-h), keys))) / (2 * h)
    assert fd < 0  # more isolation, fewer infections
    assert grad == pytest.approx(fd, rel=0.35)
    fittable = cal.fittable(covid.CovidParams)
    assert "isolation_alignment_offset" in fittable and "isolation_alignment_scale" in fittable
