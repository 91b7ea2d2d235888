"""Bounded-confidence opinion dynamics (Deffuant, Neau, Amblard & Weisbuch, Advances in
Complex Systems 3, 87-98, 2000) on a contact network, on the public jaxsim core.

Each day every agent meets at most one neighbour (a random matching of the contact
network's edges, :mod:`jaxsim.kernels.edge_pairs`); partners whose opinions differ by
less than ``epsilon`` move toward each other by ``mu`` times the difference. From opinions
uniform on ``[0, 1]`` the population settles into about ``floor(1 / (2 epsilon))`` major
clusters::

    import jax, jaxsim
    from jaxsim import generators
    from jaxsim.models import opinion

    population = generators.population(2000, {"contacts": generators.erdos_renyi(2000, 50)})
    sim = jaxsim.Sim(opinion.opinion_model(), population, days=200, epsilon=0.25)
    result = sim.run(seed=0)
    opinion.clusters(opinion.opinions(result.state, sim.world)).major   # about 2

The model (:mod:`.model`): parameters :class:`OpinionParams` (defaults cited, bounds,
units), state :class:`OpinionState`, its world :func:`build_world` (the reverse-edge
permutation of each layer, computed once), declared :data:`METRICS`, and host-side
summaries (:func:`opinions`, :func:`clusters`). The module docstring of :mod:`.model`
gives the order of events within a day, the units and the shapes.
"""

from jaxsim.models.opinion.model import (
    DEFAULT_EPSILON,
    DEFAULT_MU,
    FIXED_POINT_BITS,
    METRICS,
    REVERSE_EDGES,
    Clusters,
    OpinionParams,
    OpinionState,
    build_world,
    clusters,
    default_params,
    exact_unit_sum,
    expected_clusters,
    initial_state,
    limb_bits,
    meetings_substep,
    observe,
    opinion_model,
    opinions,
    validate_params,
)

__all__ = [
    "Clusters",
    "DEFAULT_EPSILON",
    "DEFAULT_MU",
    "FIXED_POINT_BITS",
    "METRICS",
    "OpinionParams",
    "OpinionState",
    "REVERSE_EDGES",
    "build_world",
    "clusters",
    "default_params",
    "exact_unit_sum",
    "expected_clusters",
    "initial_state",
    "limb_bits",
    "meetings_substep",
    "observe",
    "opinion_model",
    "opinions",
    "validate_params",
]
