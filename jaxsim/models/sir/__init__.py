"""SIR and SEIR epidemics on a contact network, on the public jaxsim core.

A model package: its parameters (:mod:`.params`: ``tau``, ``gamma``, ``sigma``,
``initial_infected_share``, with cited defaults, units, bounds and calibration ranges),
state, substeps and model (:mod:`.model`, whose docstring states the order of events
within a day), and the final-size theory it reproduces (:mod:`.theory`)::

    import jax, jaxsim
    from jaxsim import generators
    from jaxsim.models import sir

    population = generators.population(100_000, {"contacts": generators.erdos_renyi(100_000, 10.0)})
    sim = jaxsim.Sim(sir.sir_model(), population, days=120, tau=0.05, gamma=0.2)
    result = sim.run(seed=0)                  # metrics: susceptible, infectious, recovered, ...
    bands = sim.ensemble(members=32).quantiles()
    sim.compare({"distancing": {"tau": 0.03}}, members=32)["differences"]  # infections_averted

In short, each day ``t``: (1) each susceptible agent is infected with probability
``1 - (1 - tau)^k``, ``k`` the weighted number of its contacts infectious at the start of
the day (:func:`jaxsim.neighbour_sum` over ``world.graph``, drawn with
:func:`jaxsim.bernoulli`); (2) each agent infectious at the start of the day recovers with
probability ``gamma``; (3) exposed agents (today's infections included) become infectious
with probability ``sigma`` (SEIR) or all of them (SIR). Per-edge transmissibility
``T = tau / (tau + gamma - tau gamma)``.

Shapes: agent arrays ``[S]`` float32 (``S = world.num_slots``; padding slots inert);
parameters float32 scalars; metrics per day scalars (counts int32, flows float32).
"""

from jaxsim.models.sir.model import (
    ABSENT,
    CONTACT_METHODS,
    EXPOSED,
    INFECTIOUS,
    OUTCOMES,
    RECOVERED,
    SEIR_METRICS,
    SIR_METRICS,
    STATUS_NAMES,
    SUSCEPTIBLE,
    SIRState,
    build_world,
    infection_probability,
    initial_state,
    seeded_state,
    seir_model,
    sir_model,
    status,
)
from jaxsim.models.sir.params import (
    DEFAULT_GAMMA,
    DEFAULT_INITIAL_INFECTED_SHARE,
    DEFAULT_SIGMA,
    DEFAULT_TAU,
    PARAM_NAMES,
    SIRParams,
    default_params,
    validate_params,
)
from jaxsim.models.sir.theory import (
    basic_reproduction_number,
    degree_pmf,
    final_size_configuration,
    final_size_mass_action,
    final_size_poisson,
    transmissibility,
)

__all__ = [
    "ABSENT", "CONTACT_METHODS", "DEFAULT_GAMMA", "DEFAULT_INITIAL_INFECTED_SHARE", "DEFAULT_SIGMA", "DEFAULT_TAU",
    "EXPOSED", "INFECTIOUS", "OUTCOMES", "PARAM_NAMES", "RECOVERED", "SEIR_METRICS", "SIRParams", "SIRState",
    "SIR_METRICS", "STATUS_NAMES", "SUSCEPTIBLE", "basic_reproduction_number", "build_world", "default_params",
    "degree_pmf", "final_size_configuration", "final_size_mass_action", "final_size_poisson",
    "infection_probability", "initial_state", "seeded_state", "seir_model", "sir_model", "status",
    "transmissibility", "validate_params",
]
