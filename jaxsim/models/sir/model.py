"""The SIR/SEIR model on a contact network: state, initial state, substeps, model, world.

State. Three float32 arrays ``[S]`` (``S = world.num_slots`` agent slots), each exactly 0
or 1 in value: ``susceptible``, ``exposed`` (latent: infected, not yet infectious) and
``infectious``; an agent with all three 0 is recovered (removed). Floats rather than one
int8 status code so that a run with a gradient estimator carries, agent by agent, how each
state moves with the parameters (their tangents) from one day to the next; a forward run
gets exactly the same values. :func:`status` gives the int8 codes
(:data:`SUSCEPTIBLE` .. :data:`RECOVERED`, :data:`ABSENT` for padding). Padding slots
(``>= world.num_agents``) are 0 in all three arrays and have no contacts, so they are never
infected, never infect and are in no count.

Order of events within day ``t`` (substep names in brackets; each draws with its own key,
derived from the run's key, ``t`` and its name):

1. [infection] Every susceptible agent ``i`` is infected with probability
   ``1 - (1 - tau)^k_i``, where ``k_i = sum_l s_l(t) sum_j w_ij x_j`` is the weighted
   number of its contacts that are infectious *at the start of the day* (``x_j`` = 1 for
   them; ``w_ij`` the edge weight, 1 on unweighted layers; ``s_l(t)`` the layer's
   multiplier for the day from ``world.inputs["layer_scale"]``, 1 without one), computed
   with :func:`jaxsim.neighbour_sum`. Newly infected agents become exposed.
2. [recovery] Every agent that was infectious at the start of the day recovers with
   probability ``gamma`` (agents infected today are exposed, not infectious, so they are
   not eligible).
3. [progression] SEIR: every exposed agent (including today's new infections) becomes
   infectious with probability ``sigma``. SIR: every exposed agent becomes infectious
   (``sigma = 1``), so an agent infected on day ``t`` is infectious from day ``t + 1``.

Hence an agent transmits on ``D`` consecutive days, ``D`` geometric on ``1, 2, ...`` with
mean ``1 / gamma``; its latent period (infection day to first infectious day) is geometric
on ``1, 2, ...`` with mean ``1 / sigma`` (exactly 1 day in SIR); the per-edge
transmissibility is ``T = tau / (tau + gamma - tau gamma)`` (:mod:`.theory`).

Metrics per day (declared in :data:`METRICS`): counts at the end of the day
(``susceptible``, ``exposed`` for SEIR, ``infectious``, ``recovered``; int32, real agents
only, summing to ``world.num_agents``) and flows during the day (``new_infections`` S -> E,
``new_onsets`` E -> I for SEIR, ``new_recoveries`` I -> R; float32 sums of the 0/1 events,
so that they carry gradients: exact integers below ``2**24`` agents).

Gradients (a run with an estimator, :func:`jaxsim.sampling.differentiable`). Each event
draw carries its pathwise derivative (straight-through by default), but the infection
pressure ``k_i`` takes its gradient through time from a mean-field path only: the contact
sum reads the infectious states without their tangents and is multiplied by ``I /
stop_gradient(I)`` with ``I`` the number of infectious agents (exactly 1 going forward, so
values are those of any run). Per-agent tangents through the contact sums measured 79-89%
too low for ``d infections / d tau`` at 100 k agents and 60 days (and 1.6x too high at
1,001 agents); the mean-field path is within 1-12% of common-random-number finite
differences on those problems (``benchmarks/bench_gradients.py``, benchmarks/RESULTS.md)
and its gradient costs 2.1x a forward run instead of 3.0x (no contact-sum transpose).

Units: time in days (``t = 0`` is the first simulated day); probabilities per day; counts
in agents.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

import jaxsim
from jaxsim import sampling
from jaxsim import world as world_module
from jaxsim.models.sir.params import SIRParams, validate_params

#: Codes of :func:`status`.
SUSCEPTIBLE, EXPOSED, INFECTIOUS, RECOVERED, ABSENT = 0, 1, 2, 3, 4
STATUS_NAMES: tuple[str, ...] = ("susceptible", "exposed", "infectious", "recovered")
#: ``contact_method`` choices of :func:`sir_model` (see :func:`jaxsim.neighbour_sum`).
CONTACT_METHODS = ("auto", "dense")


@jaxsim.state
class SIRState:
    """Agent arrays ``[S]``, float32, each exactly 0 or 1 (see the module docstring).

    Attributes:
        susceptible: 1 for agents not yet infected.
        exposed: 1 for infected agents not yet infectious (in the SIR model only between
            the day's infection and progression substeps: 0 at the end of every day).
        infectious: 1 for agents that infect their contacts.
    """

    susceptible: jax.Array
    exposed: jax.Array
    infectious: jax.Array


# -------------------------------------------------------------------------- day 0
def initial_state(key: jax.Array, params: SIRParams, world: jaxsim.World) -> SIRState:
    """Day-0 state (the model's ``init(key, params, world)``): each real agent is
    infectious with probability ``initial_infected_share`` (one :func:`jaxsim.bernoulli`
    draw, so the share gets a gradient in a differentiable run), else susceptible;
    padding slots are neither."""
    real = world.real_agents().astype(jnp.float32)
    share = jnp.asarray(params.initial_infected_share, jnp.float32)
    infected = jaxsim.bernoulli(key, share * real)
    return SIRState(susceptible=real - infected, exposed=jnp.zeros_like(real), infectious=infected)


def seeded_state(world: jaxsim.World, infectious) -> SIRState:
    """A day-0 state with exactly the given agents infectious and every other real agent
    susceptible: ``infectious`` is an array of agent indices or a bool mask ``[N]``."""
    n, slots = world.num_agents, world.num_slots
    chosen = np.asarray(infectious)
    mask = np.zeros(slots, bool)
    if chosen.dtype == bool:
        if chosen.shape != (n,):
            raise jaxsim.InputError(f"seeded_state: a mask needs shape ({n},), got {chosen.shape}")
        mask[:n] = chosen
    else:
        if chosen.size and (not np.issubdtype(chosen.dtype, np.integer) or chosen.min() < 0 or chosen.max() >= n):
            raise jaxsim.InputError(f"seeded_state: agent indices must be whole numbers in [0, {n})")
        mask[chosen.astype(np.int64)] = True
    real = np.arange(slots) < n
    infected = mask.astype(np.float32)
    return SIRState(
        susceptible=jnp.asarray((real & ~mask).astype(np.float32)),
        exposed=jnp.zeros(slots, jnp.float32),
        infectious=jnp.asarray(infected),
    )


def status(state: SIRState, world: jaxsim.World) -> jax.Array:
    """int8 ``[S]`` codes: :data:`SUSCEPTIBLE`, :data:`EXPOSED`, :data:`INFECTIOUS`,
    :data:`RECOVERED`, and :data:`ABSENT` for padding slots."""
    code = jnp.select(
        [state.susceptible > 0.5, state.exposed > 0.5, state.infectious > 0.5],
        [SUSCEPTIBLE, EXPOSED, INFECTIOUS], RECOVERED,
    )
    return jnp.where(world.real_agents(), code, ABSENT).astype(jnp.int8)


# ------------------------------------------------------------------------ substeps
def infection_probability(tau: jax.Array, pressure: jax.Array) -> jax.Array:
    """``1 - (1 - tau)^k`` for weighted infectious-contact counts ``k = pressure`` (float32,
    elementwise), as ``-expm1(k log1p(-tau))``: accurate for small ``tau`` and ``k``, exactly
    0 for ``k = 0``; ``tau = 1`` gives 1 for every ``k > 0``, with finite gradients."""
    tau = jnp.asarray(tau, jnp.float32)
    below_one = tau < 1.0
    safe_tau = jnp.where(below_one, tau, 0.5)  # keeps log1p(-tau) and its gradient finite
    q = -jnp.expm1(pressure * jnp.log1p(-safe_tau))
    return jnp.where(below_one, q, (pressure > 0).astype(jnp.float32))


def _layer_scale(world: jaxsim.World, t: jax.Array) -> dict[str, jax.Array]:
    """Today's multiplier per layer from ``world.inputs["layer_scale"]`` (``{layer: [P]}``,
    repeated every ``P`` days); layers it does not name count with 1."""
    return {name: series[t % series.shape[0]] for name, series in world.inputs.get("layer_scale", {}).items()}


def infection_substep(contact_method: str = "auto"):
    """[infection] S -> E with probability ``1 - (1 - tau)^k`` (see the module docstring)."""

    def infection(key, state: SIRState, params: SIRParams, t, world):
        differentiable = sampling.differentiable()
        infectious = jax.lax.stop_gradient(state.infectious) if differentiable else state.infectious
        pressure = jaxsim.neighbour_sum(infectious, world.graph, _layer_scale(world, t), contact_method)
        # Kept, not recomputed, by the checkpointed blocks of a gradient (simulate(...,
        # checkpoint_days=...) saves the values named "contact_pressure").
        pressure = checkpoint_name(pressure, "contact_pressure")
        if differentiable:
            # Mean-field path for the gradient through time (as in the COVID model): the
            # pressure times total / stop_gradient(total), exactly 1 going forward, so a
            # change in how many are infectious moves every agent's pressure in proportion
            # (an agent not infected in a draw carries no per-agent path to later days).
            total = jnp.sum(state.infectious)
            safe = jnp.where(total > 0, total, 1.0)
            pressure = pressure * jnp.where(total > 0, safe / jax.lax.stop_gradient(safe), 1.0)
        new = jaxsim.bernoulli(key, state.susceptible * infection_probability(params.tau, pressure))
        state = state.replace(susceptible=state.susceptible - new, exposed=state.exposed + new)
        return state, {"new_infections": jnp.sum(new)}

    return infection


def recovery(key, state: SIRState, params: SIRParams, t, world):
    """[recovery] I -> R with probability ``gamma`` for the agents infectious since the
    start of the day."""
    recovered = jaxsim.bernoulli(key, params.gamma * state.infectious)
    return state.replace(infectious=state.infectious - recovered), {"new_recoveries": jnp.sum(recovered)}


def progression_substep(exposed_stage: bool):
    """[progression] E -> I: with probability ``sigma`` (SEIR), or all of them (SIR)."""

    def progression(key, state: SIRState, params: SIRParams, t, world):
        if exposed_stage:
            onset = jaxsim.bernoulli(key, params.sigma * state.exposed)
            metrics = {"new_onsets": jnp.sum(onset)}
        else:
            onset, metrics = state.exposed, {}
        return state.replace(exposed=state.exposed - onset, infectious=state.infectious + onset), metrics

    return progression


def observe_factory(exposed_stage: bool):
    def observe(state: SIRState, params, world) -> dict[str, jax.Array]:
        """End-of-day counts (int32, real agents only; padding slots are 0 everywhere)."""
        counts = {
            "susceptible": jnp.sum(state.susceptible > 0.5, dtype=jnp.int32),
            "infectious": jnp.sum(state.infectious > 0.5, dtype=jnp.int32),
        }
        removed = world.num_agents - counts["susceptible"] - counts["infectious"]
        if exposed_stage:
            counts["exposed"] = jnp.sum(state.exposed > 0.5, dtype=jnp.int32)
            removed = removed - counts["exposed"]
        counts["recovered"] = removed
        return counts

    return observe


# --------------------------------------------------------------------------- model
def _metrics(exposed_stage: bool) -> tuple[jaxsim.Metric, ...]:
    counts = [
        jaxsim.Metric("susceptible", "count", "agents", doc="agents susceptible at the end of the day"),
        jaxsim.Metric("exposed", "count", "agents", doc="agents latent (infected, not yet infectious) at the end of the day"),
        jaxsim.Metric("infectious", "count", "agents", doc="agents infectious at the end of the day"),
        jaxsim.Metric("recovered", "count", "agents", doc="agents recovered (removed) at the end of the day"),
    ]
    flows = [
        jaxsim.Metric("new_infections", "flow", "agents", doc="infections by contact today (S -> E)"),
        jaxsim.Metric("new_onsets", "flow", "agents", doc="latent agents becoming infectious today (E -> I)"),
        jaxsim.Metric("new_recoveries", "flow", "agents", doc="recoveries today (I -> R)"),
    ]
    keep = (lambda m: True) if exposed_stage else (lambda m: m.name not in ("exposed", "new_onsets"))
    return tuple(m for m in counts + flows if keep(m))


#: The declared metrics of the SIR and the SEIR model.
SIR_METRICS: tuple[jaxsim.Metric, ...] = _metrics(False)
SEIR_METRICS: tuple[jaxsim.Metric, ...] = _metrics(True)

#: What a comparison reports (:func:`jaxsim.ensemble.compare`): ``{outcome: (metric summed
#: over days, sign)}``; +1 reports ``baseline - alternative``.
OUTCOMES: dict[str, tuple[str, int]] = {
    "infections_averted": ("new_infections", +1),
    "recoveries_averted": ("new_recoveries", +1),
}


def validate(state: SIRState, params: SIRParams, world: jaxsim.World) -> None:
    """Host-side checks before a run; :class:`jaxsim.InputError` naming what does not fit."""
    validate_params(params)
    if not isinstance(state, SIRState):
        raise jaxsim.InputError(f"the SIR model needs an SIRState, got {type(state).__name__}")
    if not world.graph:
        raise jaxsim.InputError("the SIR model needs at least one contact layer in world.graph; the world has none")
    for name in ("susceptible", "exposed", "infectious"):
        array = getattr(state, name)
        if np.shape(array) != (world.num_slots,):
            raise jaxsim.InputError(
                f"SIRState.{name} has shape {np.shape(array)}, the world has {world.num_slots} agent slots: "
                "make the state with the model's init(key, params, world) for this world"
            )
        if getattr(array, "dtype", None) != jnp.float32:
            raise jaxsim.InputError(f"SIRState.{name} must be float32, got {getattr(array, 'dtype', type(array))}")
    scale = world.inputs.get("layer_scale", {})
    unknown = sorted(set(scale) - set(world.graph))
    if unknown:
        raise jaxsim.InputError(f"world.inputs['layer_scale'] names unknown layers {unknown}; layers are {sorted(world.graph)}")
    for name, series in scale.items():
        values = np.asarray(series)
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise jaxsim.InputError(f"world.inputs['layer_scale'][{name!r}] must be a non-empty 1-D array of finite values >= 0")


def sir_model(exposed: bool = False, contact_method: str = "auto") -> jaxsim.Model:
    """The SIR model (``exposed=False``) or the SEIR model (``exposed=True``) as a
    :class:`jaxsim.Model`.

    Args:
        exposed: add the latent stage (E -> I with daily probability ``sigma``).
        contact_method: how the infectious-contact sums run (:func:`jaxsim.neighbour_sum`):
            ``"auto"`` (push from the few infectious agents when they fit a capacity
            tier, else pull over every edge) or ``"dense"`` (always pull). Same values.

    The gradient estimator is a setting of the run (``estimator=`` of
    :func:`jaxsim.simulate`, :func:`jaxsim.run`, :class:`jaxsim.Sim`, ensembles), never of
    the model. Building the model twice gives an equal model (shared compiled programs).
    """
    if not isinstance(exposed, bool):
        raise jaxsim.InputError(f"sir_model: exposed must be True or False, got {exposed!r}")
    if contact_method not in CONTACT_METHODS:
        raise jaxsim.InputError(f"sir_model: unknown contact_method {contact_method!r}; choose one of {CONTACT_METHODS}")
    return jaxsim.Model(
        name="seir" if exposed else "sir",
        substeps=(
            jaxsim.Substep("infection", infection_substep(contact_method)),
            jaxsim.Substep("recovery", recovery),
            jaxsim.Substep("progression", progression_substep(exposed)),
        ),
        init=initial_state,
        observe=observe_factory(exposed),
        validate=validate,
        params_type=SIRParams,
        metrics=SEIR_METRICS if exposed else SIR_METRICS,
        outcomes=OUTCOMES,
        # XLA's temporary bytes of a compiled 7-day run less 4 per directed edge (which
        # jaxsim.ensemble.member_bytes counts apart), per agent slot: 52 with dense contact
        # sums, 16 with auto (measured at 100 k and 400 k agents, mean degree 10).
        working_bytes_per_agent=52,
        build_world=build_world,
    )


def seir_model(contact_method: str = "auto") -> jaxsim.Model:
    """``sir_model(exposed=True, ...)``."""
    return sir_model(True, contact_method)


# ---------------------------------------------------------------------------- world
def build_world(population, *, layers: list[str] | None = None,
                layer_scale: Mapping[str, np.ndarray] | None = None, **options) -> jaxsim.World:
    """The world of an SIR run: the population's contact layers (all, or ``layers``) and no
    agent attributes; ``layer_scale`` ``{layer: [P]}`` per-day multipliers (1 = as built,
    0 = closed), repeated every ``P`` days. ``options`` go to :func:`jaxsim.make_world`."""
    inputs = dict(options.pop("inputs", None) or {})
    if layer_scale:
        known = list(population.networks) if layers is None else list(layers)
        unknown = sorted(set(layer_scale) - set(known))
        if unknown:
            raise jaxsim.InputError(f"layer_scale names unknown layers {unknown}; layers are {sorted(known)}")
        scales = {}
        for name, series in layer_scale.items():
            values = np.asarray(series, np.float32).reshape(-1)
            if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise jaxsim.InputError(f"layer_scale[{name!r}] must be a non-empty 1-D array of finite values >= 0")
            scales[name] = jnp.asarray(values)
        inputs["layer_scale"] = scales
    options.setdefault("attributes", ())
    return world_module.make_world(population, layers=layers, inputs=inputs, **options)


__all__ = [
    "ABSENT",
    "CONTACT_METHODS",
    "EXPOSED",
    "INFECTIOUS",
    "OUTCOMES",
    "RECOVERED",
    "SEIR_METRICS",
    "SIRState",
    "SIR_METRICS",
    "STATUS_NAMES",
    "SUSCEPTIBLE",
    "build_world",
    "infection_probability",
    "infection_substep",
    "initial_state",
    "observe_factory",
    "progression_substep",
    "recovery",
    "seeded_state",
    "seir_model",
    "sir_model",
    "status",
    "validate",
]
