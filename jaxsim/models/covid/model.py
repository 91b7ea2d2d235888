"""The COVID model as a :class:`jaxsim.engine.Model`, and its world.

``covid_model(policy, contact_method)`` returns the SEIRM + isolation model (substeps in
:mod:`.substeps`): it owns its initial state (:func:`.state.initial_state`), declares its
parameters (:class:`.params.CovidParams`), metrics (with units), the outcomes a
counterfactual compares, the ``weekly_onsets`` signal interventions can watch, the
per-group ``isolation_prob`` input a behaviour layer can set, and the bridges it offers to
models composed with it (``alive``, ``available``, ``onset_day``: read by the labour model).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import interventions as iv
from jaxsim.engine import Metric, Model, Substep, World, padded_size
from jaxsim.errors import InputError, LabelError
from jaxsim.kernels.progression import DEAD, INFECTED, STAGE_NAMES
from jaxsim.models.covid import substeps as steps
from jaxsim.models.covid.params import CovidParams, validate_params
from jaxsim.models.covid.state import NEVER, CovidState, initial_state
from jaxsim.population import Population
from jaxsim.transfer import tree_to_device
from jaxsim.world import code_dtype, make_world, world_bytes

ISOLATION_POLICIES = ("heuristic", "inputs")
CONTACT_METHODS = ("auto", "dense")

#: The model's declared metrics (units and kinds for tables, plots and reports).
METRICS: tuple[Metric, ...] = (
    *(Metric(name, "count", "agents", doc=f"agents {name} at the end of the day") for name in STAGE_NAMES),
    Metric("new_infections", "flow", "agents", doc="exposures by contact today (S -> E)"),
    Metric("new_cases", "flow", "agents", doc="symptom onsets today (E -> I)"),
    Metric("new_deaths", "flow", "agents", doc="deaths today (I -> M)"),
    Metric("isolating", "count", "agents", doc="agents isolating today"),
    Metric("new_infections_by_age", "flow", "agents", by="age", doc="exposures today by age band"),
    Metric("isolation_prob", "probability", "per day", by="isolation_group",
           doc="this week's isolation probability per group"),
    Metric("intervention_active", "level", "0/1", doc="1 on days intervention k acts"),
    Metric("tests", "flow", "tests", doc="tests taken today"),
    Metric("positive_tests", "flow", "tests", doc="positive tests taken today"),
    Metric("vaccinations", "flow", "doses", doc="doses given today"),
    Metric("vaccinated", "count", "agents", doc="agents vaccinated so far"),
    Metric("imported_infections", "flow", "agents", doc="infections seeded from outside today"),
)

#: What a counterfactual compares by default: ``{outcome: (metric summed over days, sign)}``;
#: +1 reports ``baseline - alternative`` (averted), -1 ``alternative - baseline`` (extra).
OUTCOMES: dict[str, tuple[str, int]] = {
    "infections_averted": ("new_infections", +1),
    "cases_averted": ("new_cases", +1),
    "deaths_averted": ("new_deaths", +1),
    "extra_isolation_days": ("isolating", -1),
}


# ------------------------------------------------------------------- bridges (exports)
def alive(state: CovidState, params, t, world) -> jax.Array:
    """float32 ``[S]`` 1 for living agents (padding slots 0)."""
    return (state.stage < DEAD).astype(jnp.float32)


def available(state: CovidState, params, t, world) -> jax.Array:
    """float32 ``[S]`` 1 if an agent's health lets it go out to work today: not sick
    (stage I), not dead (nor padding), not isolating."""
    healthy = (state.stage != INFECTED) & (state.stage < DEAD)
    return (healthy & (state.isolating < 0.5)).astype(jnp.float32)


def onset_day(state: CovidState, params: CovidParams, t, world) -> jax.Array:
    """int32 ``[S]`` the day of an agent's symptom onset, for agents past it (stages I, R,
    M); a large negative number for the others."""
    from jaxsim.kernels.progression import INFECTED as I_

    day = state.day_infected.astype(jnp.int32) + params.exposed_days
    past_onset = (state.stage >= I_) & (state.stage <= DEAD)
    return jnp.where(past_onset, day, jnp.int32(NEVER) * 2)


PROVIDES = {"alive": alive, "available": available, "onset_day": onset_day}


# ---------------------------------------------------------------------------- model
def _validate_factory(policy: str):
    def validate(state: CovidState, params: CovidParams, world: World) -> None:
        if not isinstance(params, CovidParams):
            raise InputError(f"the COVID model needs CovidParams, got {type(params).__name__}")
        validate_params(params, world.num_categories("age"), world.num_categories("isolation_group"))
        if state.stage.shape != (world.num_slots,):
            raise InputError(
                f"state has {state.stage.shape[0]} agent slots, the world {world.num_slots}"
            )
        if params.interventions is not None:
            iv.validate(params.interventions, world, {"weekly_onsets": None})
            iv.check_phases(params.interventions, steps.PHASES, steps.HOOKS)
            run = state.interventions
            if run is None or run.condition.shape != (len(params.interventions.items),):
                raise InputError(
                    "the state was not made for these interventions: build it with the model's "
                    "init(key, params, world) from the params that hold them"
                )
        if policy == "inputs":
            table = world.inputs.get("isolation_prob")
            if table is None:
                raise InputError(
                    "policy 'inputs' needs world.inputs['isolation_prob'] (build_world(..., isolation_prob=...))"
                )
            if table.shape[1] != world.num_categories("isolation_group"):
                raise InputError(
                    f"isolation_prob has {table.shape[1]} groups, the world {world.num_categories('isolation_group')}"
                )

    return validate


def covid_model(policy: str = "heuristic", contact_method: str = "auto") -> Model:
    """The COVID model's step as a :class:`~jaxsim.engine.Model`.

    Args:
        policy: ``"heuristic"`` (isolation from the simulated case trend) or ``"inputs"``
            (per-week, per-group probabilities in ``world.inputs["isolation_prob"]``, set
            by a behaviour layer or given).
        contact_method: ``"auto"`` (push from the few infectious agents when they fit a
            capacity tier, else pull over every edge; batched under ``vmap``) or
            ``"dense"`` (always pull). See :func:`jaxsim.kernels.neighbour_sums.neighbour_sum`.

    The gradient estimator is a setting of the run (``engine.simulate(...,
    estimator=...)``), not of the model: forward values are the same for every estimator.
    """
    if policy not in ISOLATION_POLICIES:
        raise InputError(f"unknown isolation policy {policy!r}; choose one of {ISOLATION_POLICIES}")
    if contact_method not in CONTACT_METHODS:
        raise InputError(f"unknown contact method {contact_method!r}; choose one of {CONTACT_METHODS}")
    from jaxsim.models.covid.behaviour import ISOLATION_POLICY

    return Model(
        name=f"covid[{policy}]",
        substeps=(
            # Intervention substeps do nothing unless params.interventions holds a kind
            # acting there; their names give them their own random numbers, so the others
            # draw exactly as without them (common random numbers).
            Substep("interventions", steps.interventions_substep()),
            Substep("isolation_policy", steps.isolation_policy_substep(policy)),
            Substep("progression", steps.progression),
            iv.phase_substep("after_progression"),
            Substep("isolation", steps.isolation),
            iv.phase_substep("before_infection"),
            Substep("infection", steps.infection_substep(contact_method)),
            iv.phase_substep("after_infection"),
        ),
        init=initial_state,
        observe=steps.observe_stage_counts,
        validate=_validate_factory(policy),
        params_type=CovidParams,
        metrics=METRICS,
        outcomes=OUTCOMES,
        provides=PROVIDES,
        signals={"weekly_onsets": steps.weekly_onsets},
        policies=(ISOLATION_POLICY,) if policy == "inputs" else (),
        build_world=build_world,
    )


# ------------------------------------------------------------------------------ world
def _world_arguments(
    population: Population,
    layers,
    layer_scale,
    isolation_groups: str,
    isolation_prob,
    initial_stages,
    prior_daily_cases,
) -> dict:
    """The :func:`jaxsim.world.make_world` arguments of a COVID world, checked."""
    if "age" not in population.attributes:
        from jaxsim.population import PopulationError

        raise PopulationError("the COVID model needs an 'age' attribute in the population")
    if isolation_groups not in population.attributes:
        raise LabelError(
            f"isolation_groups: population has no attribute {isolation_groups!r}; "
            f"it has {sorted(population.attributes)}"
        )
    n = population.size
    if isinstance(initial_stages, str):
        initial_stages = population.initial_states.get("disease_stage")
    agents = {}
    if initial_stages is not None:
        stages = np.asarray(initial_stages)
        if stages.shape != (n,):
            raise InputError(f"initial_stages has shape {stages.shape}, expected ({n},)")
        if stages.size and (stages.min() < 0 or stages.max() > 4):
            raise InputError(
                f"initial_stages: codes must lie in 0..4 (S, E, I, R, M), got {int(stages.min())}..{int(stages.max())}"
            )
        agents["initial_stage"] = stages.astype(np.int8)
    prior = np.asarray(prior_daily_cases, np.float32)
    if prior.ndim > 1 or (prior.ndim == 1 and prior.shape[0] != 28) or not np.all(np.isfinite(prior)) \
            or np.any(prior < 0):
        raise InputError(f"prior_daily_cases must be a number or 28 numbers >= 0, got {prior.tolist()}")
    inputs: dict = {"prior_daily_cases": prior}
    if layer_scale:
        known = list(population.networks) if layers is None else list(layers)
        unknown = sorted(set(layer_scale) - set(known))
        if unknown:
            raise LabelError(f"layer_scale names unknown layers {unknown}; layers are {sorted(known)}")
        inputs["layer_scale"] = {}
        for name, values in layer_scale.items():
            series = np.asarray(values, np.float32)
            if series.ndim != 1 or series.size == 0 or not np.all(np.isfinite(series)) or np.any(series < 0):
                raise InputError(
                    f"layer_scale[{name!r}] must be a non-empty 1-D array of finite values >= 0"
                )
            inputs["layer_scale"][name] = series
    if isolation_prob is not None:
        num_groups = population.num_categories(isolation_groups)
        table = np.asarray(isolation_prob, np.float32)
        if table.ndim != 2 or table.shape[1] != num_groups:
            raise InputError(
                f"isolation_prob must have shape [weeks, {num_groups}] (one column per "
                f"{isolation_groups!r} category), got {table.shape}"
            )
        if not np.all((table >= 0) & (table <= 1)):
            raise InputError("isolation_prob: probabilities must lie in [0, 1]")
        inputs["isolation_prob"] = table
    return dict(attributes=("age",), groups={"isolation_group": isolation_groups}, layers=layers,
                agents=agents, inputs=inputs)


def build_world(
    population: Population,
    *,
    layers: list[str] | None = None,
    layer_scale: Mapping[str, np.ndarray] | None = None,
    isolation_groups: str = "age",
    isolation_prob: np.ndarray | None = None,
    initial_stages: np.ndarray | None | str = "population",
    prior_daily_cases: float | np.ndarray = 0.0,
    on_device: bool = True,
) -> World:
    """Device arrays for a run: age codes, isolation groups, contact graph, inputs.

    Args:
        layers: contact layers to use (default: all of the population's).
        layer_scale: ``{layer: float [P]}`` per-day multipliers (1 = as built, 0 = off),
            repeated every ``P`` days: a 7-entry schedule is a weekly pattern (e.g. one
            network per day of week), a schedule as long as the run is a timeline.
        isolation_groups: the attribute whose categories are the isolation groups (the
            world's ``isolation_group``, with that attribute's labels).
        isolation_prob: float ``[weeks, G]`` isolation probabilities per group supplied
            from outside (for ``policy="inputs"``); the last week repeats.
        initial_stages: int ``[N]`` day-0 stage codes (0 S .. 4 M); by default the
            population's ``initial_states["disease_stage"]`` when it has one; ``None``:
            draw them from the initial shares.
        prior_daily_cases: cases per day over the 28 days before the run (scalar or
            ``[28]``), the case signal the isolation heuristic starts from.
        on_device: ``False`` keeps the arrays on the host, to estimate a run's memory
            before allocating (:func:`jaxsim.world.to_device` then).
    """
    arguments = _world_arguments(population, layers, layer_scale, isolation_groups, isolation_prob,
                                 initial_stages, prior_daily_cases)
    if on_device:
        arguments["inputs"] = tree_to_device(arguments["inputs"])
    world = make_world(population, on_device=on_device, **arguments)
    # The group codes keep the narrowest type of the two, as the age codes do.
    group_dtype = code_dtype(max(world.num_categories("isolation_group"), world.num_categories("age")))
    agents = dict(world.agents)
    agents["isolation_group"] = agents["isolation_group"].astype(group_dtype)
    return world.replace(agents=agents)


def estimate_world_bytes(population: Population, **options) -> int:
    """Bytes :func:`build_world` allocates for ``population`` and the same options."""
    arguments = _world_arguments(
        population, options.get("layers"), options.get("layer_scale"), options.get("isolation_groups", "age"),
        options.get("isolation_prob"), options.get("initial_stages", "population"),
        options.get("prior_daily_cases", 0.0),
    )
    return world_bytes(population, **arguments)


__all__ = [
    "CONTACT_METHODS",
    "ISOLATION_POLICIES",
    "METRICS",
    "OUTCOMES",
    "PROVIDES",
    "alive",
    "available",
    "build_world",
    "covid_model",
    "estimate_world_bytes",
    "onset_day",
]
