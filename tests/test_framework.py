"""The framework's own promises, on a small user model written here with the public API:
models built twice share compiled programs, runs never invalidate the caller's arrays,
declared parameters and metrics drive builds, reports and tables, the sum over neighbours
chooses its path under ``vmap`` and ``grad`` by itself, interventions and behaviour
policies are open to a user's model, and errors are one clear line while bugs keep their
traceback."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsim
from jaxsim import cli, engine, ensemble, generators, outputs, parameters
from jaxsim import interventions as iv
from jaxsim.errors import InputError, JaxsimError, LabelError


# ------------------------------------------------------------------- a user SI model
@jaxsim.params
class SIParams:
    beta: jax.Array = jaxsim.param(0.08, bounds=(0.0, 1.0), units="infection probability per contact per day")
    seed_share: jax.Array = jaxsim.param(0.02, bounds=(0.0, 1.0), units="share infected on day 0")
    susceptibility: jax.Array = jaxsim.param({"young": 1.0, "old": 1.5}, by="age", bounds=(0.0, 5.0),
                                             fit_bounds=(0.0, 3.0), units="relative")
    interventions: object = None


@jaxsim.state
class SIState:
    infected: jax.Array
    interventions: object = None


def si_init(key, params, world):
    seeded = jaxsim.bernoulli(key, jnp.full(world.num_slots, params.seed_share)) * world.real_agents()
    return SIState(infected=seeded, interventions=iv.initial_state(params.interventions, world))


def si_infect(key, state, params, t, world):
    pressure = jaxsim.neighbour_sum(state.infected, world.graph)
    susceptibility = params.susceptibility[world.agents["age"].astype(jnp.int32)]
    susceptibility = iv.apply_hooks(params, state, "susceptibility", susceptibility, t, world)
    p = (1.0 - (1.0 - params.beta) ** pressure) * susceptibility * (1.0 - state.infected) * world.real_agents()
    new = jaxsim.bernoulli(key, jnp.clip(p, 0.0, 1.0))
    return state.replace(infected=state.infected + new), {"new_infections": new.sum()}


def si_observe(state, params, world):
    return {"infected": state.infected.sum()}


def si_model(name="si"):
    return jaxsim.Model(
        name=name, substeps=[jaxsim.Substep("interventions", iv.conditions_substep({})), si_infect,
                             iv.phase_substep("end_of_day")],
        init=si_init, observe=si_observe, params_type=SIParams,
        metrics=[jaxsim.Metric("infected", "count", "agents"), jaxsim.Metric("new_infections", "flow", "agents")],
        outcomes={"infections_averted": ("new_infections", +1)},
    )


@pytest.fixture(scope="module")
def population():
    n = 2000
    rng = np.random.default_rng(0)
    return generators.population(
        n, {"contacts": generators.erdos_renyi(n, 8.0, seed=1)},
        attributes={"age": rng.integers(0, 2, n).astype(np.int32)}, labels={"age": ["young", "old"]},
    )


@pytest.fixture(scope="module")
def world(population):
    return jaxsim.make_world(population)


@pytest.fixture(scope="module")
def model():
    return si_model()


# ---------------------------------------------------------------------------- models
def test_a_model_built_twice_is_equal_and_reuses_its_compiled_program(world):
    params = parameters.build(SIParams, world)
    first, second = si_model(), si_model()
    assert first is not second and first == second and hash(first) == hash(second)
    assert si_model("other") != first
    state = first.init(jax.random.key(0), params, world)
    a = engine.run(first, jax.random.key(1), state, params, world, 9, progress=False)
    b = engine.run(second, jax.random.key(1), state, params, world, 9, progress=False)
    assert b.compile_seconds == 0.0
    np.testing.assert_array_equal(a.metrics["infected"], b.metrics["infected"])

    def closure_model(rate):
        def step(key, state, params, t, world):
            return state.replace(infected=state.infected * rate), {}

        return jaxsim.Model(name="c", substeps=[step], init=si_init)

    assert closure_model(0.5) == closure_model(0.5) and closure_model(0.5) != closure_model(0.25)


def test_initial_state_is_one_compiled_program_equal_to_the_eager_init(model, world):
    params = parameters.build(SIParams, world)
    key = jax.random.key(3)
    compiled = engine.initial_state(model, key, params, world)
    eager = engine.initial_state(model, key, params, world, compiled=False)
    np.testing.assert_array_equal(np.asarray(compiled.infected), np.asarray(eager.infected))
    assert np.asarray(compiled.infected).sum() > 0
    traced = jax.jit(lambda k: engine.initial_state(model, k, params, world)).lower(key).as_text()
    assert "_compiled_init" in traced  # the init is one nested program, not op by op


def test_a_second_ensemble_of_the_same_program_reports_no_compile_time(model, world):
    params = parameters.build(SIParams, world)
    keys = jax.random.split(jax.random.key(0), 3)
    first = ensemble.run_ensemble(model, keys, params, world, 4)
    again = ensemble.run_ensemble(model, keys, params, world, 4)
    assert first.compile_seconds > 0.0 and again.compile_seconds == 0.0
    np.testing.assert_array_equal(first.metrics["infected"], again.metrics["infected"])


def test_runs_leave_the_callers_state_alone_unless_asked(model, world):
    params = parameters.build(SIParams, world)
    state = model.init(jax.random.key(0), params, world)
    before = np.asarray(state.infected).copy()
    for _ in range(2):  # twice from the same state: nothing was donated
        engine.run(model, jax.random.key(1), state, params, world, 5, progress=False)
    np.testing.assert_array_equal(np.asarray(state.infected), before)
    engine.run(model, jax.random.key(1), state, params, world, 5, progress=False, donate=True)
    assert state.infected.is_deleted()


def test_world_without_agents_is_a_clear_error():
    with pytest.raises(InputError, match="num_agents must be a whole number >= 1"):
        jaxsim.World()


def test_declared_parameters_build_check_and_report(world):
    params = parameters.build(SIParams, world, susceptibility={"young": 0.5, "old": 2.0})
    young, old = world.category_labels("age").index("young"), world.category_labels("age").index("old")
    assert float(params.susceptibility[young]) == 0.5 and float(params.susceptibility[old]) == 2.0
    report = parameters.report(params, world)
    assert report["susceptibility"] == {"young": 0.5, "old": 2.0} and report["beta"] == pytest.approx(0.08)
    assert parameters.units(SIParams)["beta"] == "infection probability per contact per day"
    with pytest.raises(InputError, match=r"SIParams.beta: \[1.5\] is outside its bounds|SIParams.beta: 1.5 is outside"):
        parameters.build(SIParams, world, beta=1.5)
    with pytest.raises(InputError, match=r"SIParams.beta: 1.1 is outside its bounds \[0.0, 1.0\]$"):
        parameters.check(params.replace(beta=jnp.float32(1.1)))  # float32 shown as typed, not 1.100000023841858
    with pytest.raises(LabelError, match="unknown labels"):
        parameters.build(SIParams, world, susceptibility={"young": 1.0, "old": 1.0, "baby": 1.0})
    with pytest.raises(LabelError, match="has no parameters"):
        parameters.build(SIParams, world, gamma=0.1)
    from jaxsim import calibration

    bounds = calibration.fittable(SIParams)
    assert set(bounds) == {"beta", "seed_share", "susceptibility"} and bounds["susceptibility"].high == 3.0


def test_metrics_tables_follow_declarations():
    declared = [jaxsim.Metric("count", "count", "agents"), jaxsim.Metric("rate", "level", "per day")]
    table = outputs.metrics_table({"count": np.array([1.0, 2.0]), "rate": np.array([2.0, 3.0]),
                                   "other": np.array([4.0, 5.0])}, declared=declared)
    assert list(table.columns) == ["day", "date", "count", "rate", "other"]
    assert table["count"].dtype.kind == "i"
    assert table["rate"].dtype.kind == "f" and table["other"].dtype.kind == "f"  # whole-looking floats stay floats


# ------------------------------------------------------------------- neighbour sums
def test_neighbour_sum_under_vmap_and_grad_equals_single_runs(world):
    """The batched rule inside the custom gradient: members' sums and gradients under
    ``vmap`` equal their single evaluations, for the auto (push/pull) and dense paths."""
    n = world.num_slots
    rng = np.random.default_rng(3)
    values = jnp.asarray((rng.random((4, n)) < 0.01) * rng.random((4, n)), jnp.float32)
    weights = jnp.asarray(rng.random(n), jnp.float32)
    mask = values != 0

    def loss(v, m, method):
        return jnp.sum(jaxsim.neighbour_sum(v, world.graph, {}, method, m) * weights)

    for method in ("auto", "dense"):
        single = [jax.grad(loss)(values[i], mask[i], method) for i in range(4)]
        batched = jax.vmap(jax.grad(loss), in_axes=(0, 0, None))(values, mask, method)
        for i in range(4):
            np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single[i]), rtol=1e-6, atol=1e-6)
        sums = jax.vmap(lambda v: jaxsim.neighbour_sum(v, world.graph, {}, method))(values)
        for i in range(4):
            np.testing.assert_array_equal(np.asarray(sums[i]),
                                          np.asarray(jaxsim.neighbour_sum(values[i], world.graph, {}, method)))


def test_vmapped_gradients_of_a_run_equal_single_gradients(model, world):
    params = parameters.build(SIParams, world)

    def total(beta, key):
        p = params.replace(beta=beta)
        state = engine.initial_state(model, jax.random.split(key)[0], p, world, estimator="straight_through")
        _, m = engine.simulate(model, jax.random.split(key)[1], state, p, world, 8, estimator="straight_through")
        return jnp.sum(m["new_infections"])

    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(jax.vmap(jax.grad(total), in_axes=(None, 0)))(params.beta, keys)
    single = [jax.jit(jax.grad(total))(params.beta, k) for k in keys]
    np.testing.assert_allclose(np.asarray(batched), np.asarray(single), rtol=1e-5)
    assert np.all(np.asarray(batched) > 0)


# ------------------------------------------------------------------- interventions
from flax import struct  # noqa: E402


@struct.dataclass
class HalveSusceptibility(iv.Intervention):
    """A user's kind acting through the model's ``susceptibility`` hook."""

    schedule: iv.Schedule
    factor: jax.Array
    name: str = struct.field(pytree_node=False, default="halve")

    def susceptibility(self, value, ctx):
        return jnp.where(ctx.active, value * self.factor, value)


@struct.dataclass
class Import(iv.Intervention):
    """A user's kind with its own action in the model's ``end_of_day`` phase and state."""

    phase = "end_of_day"
    schedule: iv.Schedule
    count: jax.Array
    name: str = struct.field(pytree_node=False, default="import")

    def init(self, world):
        return jnp.zeros((), jnp.float32)

    def act(self, key, state, own, params, t, world, ctx):
        candidates = (state.infected < 0.5) & world.real_agents()
        u = jaxsim.uniform(key, candidates.shape)
        pick = iv.smallest_scores(candidates, u, jnp.where(ctx.active, self.count, 0.0), 8)
        new = pick.astype(jnp.float32)
        return state.replace(infected=state.infected + new), own + new.sum(), {"imported": new.sum()}


def test_a_users_intervention_kinds_act_without_editing_the_library(model, world):
    params = parameters.build(SIParams, world)
    plain_state = model.init(jax.random.key(0), params, world)
    plain = engine.run(model, jax.random.key(1), plain_state, params, world, 12, progress=False).metrics
    at_one = params.replace(interventions=iv.combine(
        HalveSusceptibility(iv.window(0), jnp.float32(1.0)), Import(iv.window(3, 4), jnp.float32(0.0))))
    state = model.init(jax.random.key(0), at_one, world)
    same = engine.run(model, jax.random.key(1), state, at_one, world, 12, progress=False).metrics
    np.testing.assert_array_equal(same["infected"], plain["infected"])  # zero effect: the plain run exactly
    acting = params.replace(interventions=iv.combine(
        HalveSusceptibility(iv.window(0), jnp.float32(0.25)), Import(iv.window(3, 4), jnp.float32(5.0))))
    state = model.init(jax.random.key(0), acting, world)
    result = engine.run(model, jax.random.key(1), state, acting, world, 12, progress=False)
    assert result.metrics["imported"][3] == 5 and result.metrics["imported"].sum() == 5
    assert float(result.state.interventions.own[1]) == 5.0
    assert result.metrics["new_infections"].sum() < plain["new_infections"].sum()


def test_interventions_the_model_cannot_apply_are_refused(world):
    with pytest.raises(iv.InterventionError, match="watches 'weekly_onsets'"):
        iv.validate(iv.combine(HalveSusceptibility(iv.when("weekly_onsets", 5, 1), jnp.float32(1.0))), world, {})
    with pytest.raises(iv.InterventionError, match="not a phase of this model"):
        iv.check_phases(iv.combine(Import(iv.window(0), jnp.float32(1.0))), ("after_infection",), ())
    with pytest.raises(iv.InterventionError, match="not an intervention"):
        iv.combine("close schools")


# ----------------------------------------------------------------------------- Sim
def test_sim_runs_ensembles_compares_frames_plots_and_saves(population, tmp_path):
    sim = jaxsim.Sim(si_model(), population, days=10, seed=3)
    result = sim.run()
    frame = result.frame()
    assert list(frame.columns[:4]) == ["day", "date", "infected", "new_infections"] and len(frame) == 10
    assert result.total("new_infections") == frame["new_infections"].sum()
    members = sim.ensemble(4)
    key = ensemble.member_keys(3, 4)[2]
    np.testing.assert_array_equal(members.metrics["infected"][2], sim.run(key=key).metrics["infected"])
    compared = sim.compare({"careful": {"beta": 0.02}}, members=4)
    assert compared["differences"]["careful"]["infections_averted"]["mean"] > 0
    png = result.plot(tmp_path / "si.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    result.save(tmp_path / "run")
    loaded = jaxsim.sim.Result.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded.metrics["infected"], result.metrics["infected"])
    assert loaded.info["parameters"]["susceptibility"] == {"young": 1.0, "old": 1.5}
    other = sim.with_params(beta=0.2)
    assert float(other.params.beta) == pytest.approx(0.2) and float(sim.params.beta) == pytest.approx(0.08)
    with pytest.raises(InputError, match="no metrics.csv"):
        jaxsim.sim.Result.load(tmp_path)


def test_sim_calibrates_a_declared_parameter(population):
    from jaxsim import calibration

    truth = jaxsim.Sim(si_model(), population, days=14, seed=0, beta=0.1)
    observation = calibration.Observation("new_infections", 7)
    weekly = np.mean([truth.run(seed=s).frame()["new_infections"].to_numpy().reshape(2, 7).sum(1)
                      for s in range(4)], axis=0)
    start = jaxsim.Sim(si_model(), population, days=14, seed=0, beta=0.03)
    fit = start.calibrate(weekly, fit=["beta"], observation=observation, steps=25, learning_rate=0.2,
                          seeds_per_step=2)
    assert fit.stopped == "completed" and fit.loss_curve[-1] < fit.loss_curve[0]
    assert abs(float(fit.params.beta) - 0.1) < abs(0.03 - 0.1)
    with pytest.raises(calibration.CalibrationError, match="not a parameter of SIParams"):
        start.calibrate(weekly, fit=["gamma"], observation=observation)


# ---------------------------------------------------------------------------- errors
def test_input_errors_are_one_line_and_bugs_keep_their_traceback(capsys):
    def bad_input(argv):
        raise LabelError("agents.csv: column 'age' is missing")

    assert cli.run_cli(bad_input, []) == 2
    assert capsys.readouterr().err == "error: agents.csv: column 'age' is missing\n"

    def bug(argv):
        raise ValueError("an internal bug (e.g. inside JAX)")

    with pytest.raises(ValueError, match="internal bug"):
        cli.run_cli(bug, [])
    assert issubclass(InputError, JaxsimError) and issubclass(InputError, ValueError)
    assert issubclass(LabelError, KeyError) and str(LabelError("a 'b' c")) == "a 'b' c"


# ------------------------------------------------------------------- behaviour layer
def test_a_users_model_gets_its_policy_input_from_a_language_model(population):
    """A model of the user's declares a per-group input (``caution``, weekly); the behaviour
    layer asks a model once per group per week and the run reads the answers."""
    from jaxsim import behaviour
    from jaxsim.llm import FunctionBackend

    @dataclasses.dataclass(frozen=True)
    class Signals:
        week: int
        infected: float

        def values(self, labels):
            return {"infected": int(self.infected)}

        def record(self):
            return {"week": self.week, "infected": self.infected}

    def cautious_infect(key, state, params, t, world):
        caution = world.inputs["caution"][jnp.minimum(t // 7, world.inputs["caution"].shape[0] - 1)]
        keep = 1.0 - caution[world.agents["age"].astype(jnp.int32)]
        p = (1.0 - (1.0 - params.beta) ** jaxsim.neighbour_sum(state.infected, world.graph)) * keep
        new = jaxsim.bernoulli(key, jnp.clip(p * (1.0 - state.infected) * world.real_agents(), 0, 1))
        return state.replace(infected=state.infected + new), {"new_infections": new.sum()}

    policy = behaviour.PolicyInput(
        name="caution", groups="age", question="share of contacts a member avoids this week",
        signal_fields=("infected",),
        template=lambda attributes: behaviour.PromptTemplate(
            "Answer with a probability.", "You are {age}. {infected} people are infected. How cautious are you?"),
        signals=lambda t, state, params, world, options: Signals(t // 7, float(state.infected.sum())),
        prior=lambda signals, state, params, world, grouping, options: np.full(grouping.num_groups, 0.5),
        period=lambda t, world: t // 7, chunk_days=7, period_name="week",
    )
    model = jaxsim.Model("cautious-si", [cautious_infect], init=si_init, observe=si_observe,
                         params_type=SIParams, policies=[policy])
    asked = []

    def answer(request):
        asked.append(request.messages[-1]["content"])
        return "0.9" if "You are old" in request.messages[-1]["content"] else "0.1"

    grouping = behaviour.group_agents(population, ["age"])
    world = jaxsim.make_world(population, inputs={"caution": np.zeros((2, 2), np.float32)})
    params = parameters.build(SIParams, world)
    layer = behaviour.BehaviourLayer(behaviour.policy_of(model, "caution"), grouping, FunctionBackend(answer))
    state = model.init(jax.random.key(0), params, world)
    run = behaviour.run_with_behaviour(model, jax.random.key(1), state, params, world, 14, [layer])
    old = grouping.names.index("age=old")
    np.testing.assert_allclose(run.tables["caution"][:, old], [0.9, 0.9])
    np.testing.assert_allclose(run.tables["caution"][:, 1 - old], [0.1, 0.1])
    assert len(asked) == 4 and all("people are infected" in text for text in asked)  # 2 groups x 2 weeks
    report = layer.report()
    assert report["question"].startswith("share of contacts") and len(report["weeks"]) == 2
