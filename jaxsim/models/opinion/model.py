"""The Deffuant-Weisbuch bounded-confidence model on a contact network.

Deffuant, Neau, Amblard & Weisbuch, "Mixing beliefs among interacting agents", Advances in
Complex Systems 3, 87-98 (2000): agents hold continuous opinions; two agents that meet
compare them, and if they differ by less than the confidence bound ``epsilon`` each moves
toward the other by ``mu`` times the difference. Starting from opinions uniform on
``[0, 1]``, the population settles into opinion clusters; their number is about
``floor(1 / (2 epsilon))``, and ``mu`` changes the time to converge, not
the clusters (for ``mu`` not too small).

State (:class:`OpinionState`). One float32 array ``opinion [S]`` (``S = world.num_slots``
agent slots), on the scale of the initial distribution (``[0, 1]`` by default). Padding
slots (``>= world.num_agents``) hold 0, have no contacts, are never paired and are in no
metric.

Order of events within day ``t`` (one substep, ``meetings``; its key comes from the run's
key, ``t`` and its name). For each of the model's ``rounds`` and, within a round, for each
of its contact layers in name order:

1. a random matching of the layer's edges (:func:`jaxsim.kernels.edge_pairs.random_matching`):
   each undirected edge draws a priority (``jaxsim.uniform``, one per edge) and the pairs
   are the edges whose priority is the highest among the edges of both endpoints, so each
   agent is in at most one pair (about half of the agents are paired on a dense graph);
2. each pair meets with probability ``meeting_prob`` (one ``jaxsim.bernoulli`` event per
   pair, drawn at the pair's lower agent index);
3. each pair that meets and whose opinions differ by less than ``epsilon`` moves together
   (:func:`jaxsim.kernels.edge_pairs.bounded_confidence_update`):
   ``x_i += mu (x_j - x_i)``, ``x_j += mu (x_i - x_j)``, both from the opinions before
   the meeting. The two moves are exact negatives of each other, so meetings conserve the
   sum of the opinions up to float rounding.

Then the end-of-day summaries are computed (``observe``).

Metrics per day (:data:`METRICS`): ``meetings`` (pairs that met, all rounds and layers;
int32), ``changed`` (real agents whose opinion at the end of the day differs from the
start; int32) and ``changed_share`` (the same as a share of the real agents), and at the
end of the day ``mean_opinion`` and ``opinion_variance`` over the real agents. The mean
and variance are computed as exact sums of the opinions in fixed point (``2**-30``), so
they do not depend on the order of the additions: the same on one device, several
devices, or one member of a ``vmap`` ensemble, bit for bit; their gradients are those of
the plain float sums. The number of clusters is host-side (:func:`clusters`).

Units: time in days (``t = 0`` is the first simulated day); opinions and ``epsilon`` on
the opinion scale (``[0, 1]``); ``mu`` a share of the difference per meeting;
``meeting_prob`` a probability per matched pair per round.

World: any :class:`jaxsim.World` whose graph holds :class:`jaxsim.kernels.ContactLayer` s
(edges stored both ways, sorted by ``(dst, src)``, as :func:`jaxsim.make_world` builds
them); edge weights are not used (every edge is as likely to be drawn). :func:`build_world` adds each layer's reverse-edge permutation to
``world.inputs["reverse_edges"]`` (computed once on the host); without it the step sorts
the edges every day (same results, slower). On several devices keep the layers whole on
every device: ``jaxsim.sharding.shard_world(world, mesh, graph="replicate")``.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxsim
from jaxsim import sampling
from jaxsim import parameters
from jaxsim.kernels import edge_pairs
from jaxsim.kernels.layers import ContactLayer
from jaxsim.transfer import to_device_array
from jaxsim.world import make_world

#: ``world.inputs`` key of the reverse-edge permutations ``{layer: int32 [2E]}``.
REVERSE_EDGES = "reverse_edges"

#: Default confidence bound: ``1 / (2 * 0.2) = 2.5``, between two and three major clusters.
#: Deffuant et al. (2000) study bounds from 0.05 to 0.5 (their ``d``).
DEFAULT_EPSILON = 0.2
#: Default convergence rate: both partners meet halfway, the largest value Deffuant et al.
#: (2000) consider (``0 < mu <= 0.5``); it sets the convergence time, not the clusters.
DEFAULT_MU = 0.5

#: Fixed-point resolution of the exact sums behind ``mean_opinion`` and
#: ``opinion_variance``: values in ``[0, 1]`` are rounded to multiples of ``2**-30``.
FIXED_POINT_BITS = 30


def limb_bits(count: int) -> int:
    """Bits per int32 limb of an exact sum of ``count`` fixed-point values: the most with
    ``count * (2**bits - 1) < 2**31`` (no overflow), at most 31. Fewer agents, fewer limbs:
    3 limbs up to about 2 M agents, 6 up to 33 M."""
    count = max(int(count), 1)
    bits = 1
    while bits < 31 and count * ((1 << (bits + 1)) - 1) < 2**31:
        bits += 1
    if count * ((1 << bits) - 1) >= 2**31:
        raise jaxsim.InputError(f"exact sums support at most {2**30:,} agents, got {count:,}")
    return bits


# ----------------------------------------------------------------------- parameters
@jaxsim.params
class OpinionParams:
    """What calibration can move (declared: defaults, bounds, units).

    Attributes:
        epsilon: float32 scalar, confidence bound: partners interact only when their
            opinions differ by less than it (opinion scale, ``[0, 1]``).
        mu: float32 scalar, convergence rate: each partner moves ``mu`` times the
            difference (``[0, 0.5]``; 0.5: both meet halfway).
        meeting_prob: float32 scalar, probability that a matched pair meets in a round
            (1: every pair of the matching meets).
        initial_low, initial_high: float32 scalars, opinions on day 0 are uniform on
            ``[initial_low, initial_high)`` (default ``[0, 1)``, as in Deffuant et al.).
    """

    epsilon: jax.Array = jaxsim.param(
        DEFAULT_EPSILON, bounds=(0.0, 1.0), fit_bounds=(0.02, 0.5), units="opinion (0-1 scale)",
        doc="confidence bound (Deffuant et al. 2000: d)")
    mu: jax.Array = jaxsim.param(
        DEFAULT_MU, bounds=(0.0, 0.5), fit_bounds=(0.01, 0.5), units="share of the difference per meeting",
        doc="convergence rate (Deffuant et al. 2000: mu)")
    meeting_prob: jax.Array = jaxsim.param(
        1.0, bounds=(0.0, 1.0), fit_bounds=(0.0, 1.0), units="probability per matched pair per round",
        doc="share of the matching's pairs that meet")
    initial_low: jax.Array = jaxsim.param(
        0.0, bounds=(0.0, 1.0), fit=False, units="opinion (0-1 scale)", doc="lower end of the day-0 opinions")
    initial_high: jax.Array = jaxsim.param(
        1.0, bounds=(0.0, 1.0), fit=False, units="opinion (0-1 scale)", doc="upper end of the day-0 opinions")


def default_params(world: jaxsim.World | None = None, **values) -> OpinionParams:
    """The declared defaults with ``values`` replacing them, checked against their bounds
    (:class:`jaxsim.InputError` naming the field, e.g. ``OpinionParams.epsilon``)."""
    params = parameters.build(OpinionParams, world, **values)
    validate_params(params)
    return params


def validate_params(params: OpinionParams) -> None:
    """Bounds, finiteness and ``initial_low <= initial_high``; :class:`jaxsim.InputError`
    naming the field and value."""
    if not isinstance(params, OpinionParams):
        raise jaxsim.InputError(f"the opinion model needs OpinionParams, got {type(params).__name__}")
    parameters.check(params)
    for name in parameters.specs(OpinionParams):
        if np.shape(getattr(params, name)) != ():
            raise jaxsim.InputError(f"OpinionParams.{name}: must be a scalar, got shape {np.shape(getattr(params, name))}")
    low, high = float(np.asarray(params.initial_low)), float(np.asarray(params.initial_high))
    if low > high:
        raise jaxsim.InputError(f"OpinionParams.initial_low: {low:.6g} is above initial_high {high:.6g}")


# ---------------------------------------------------------------------------- state
@jaxsim.state
class OpinionState:
    """Attributes:
        opinion: float32 ``[S]`` each agent's opinion (0 in padding slots).
    """

    opinion: jax.Array


def initial_state(key: jax.Array, params: OpinionParams, world: jaxsim.World) -> OpinionState:
    """Day-0 opinions (the model's ``init``): uniform on ``[initial_low, initial_high)``
    from ``jaxsim.uniform(key, (S,))`` (a hash of the global slot index: the same on any
    number of devices); padding slots 0."""
    u = jaxsim.uniform(key, (world.num_slots,))
    low = jnp.asarray(params.initial_low, jnp.float32)
    high = jnp.asarray(params.initial_high, jnp.float32)
    x = low + (high - low) * u
    return OpinionState(opinion=jnp.where(world.real_agents(), x, 0.0).astype(jnp.float32))


# ------------------------------------------------------------------------- summaries
def _limb_sums(values: jax.Array, mask: jax.Array, bits: int) -> jax.Array:
    """float32 exact sum (fixed point, int32 limbs of ``bits`` bits) plus ``plain - plain``
    for the float sum ``plain`` (0, or NaN when a value is not finite), all from one
    variadic reduction: the values are read once."""
    limbs = -(-(FIXED_POINT_BITS + 1) // bits)  # 2**30 itself takes 31 bits
    fixed = jnp.round(jnp.clip(values, 0.0, 1.0) * np.float32(2.0**FIXED_POINT_BITS))
    fixed = jnp.where(mask, fixed.astype(jnp.int32), 0)
    operands = tuple((fixed >> (bits * k)) & ((1 << bits) - 1) for k in range(limbs))
    operands += (jnp.where(mask, values, 0.0),)
    zeros = tuple(jnp.int32(0) for _ in range(limbs)) + (jnp.float32(0.0),)
    sums = jax.lax.reduce(operands, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (0,))
    total = jnp.float32(0.0)
    for k in range(limbs):
        total = total + sums[k].astype(jnp.float32) * np.float32(2.0 ** (bits * k - FIXED_POINT_BITS))
    plain = sums[-1]
    return total + (plain - plain)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _exact_sum(values: jax.Array, mask: jax.Array, bits: int) -> jax.Array:
    return _limb_sums(values, mask, bits)


@_exact_sum.defjvp
def _exact_sum_jvp(bits, primals, tangents):
    values, mask = primals
    tangent = tangents[0]
    return _exact_sum(values, mask, bits), jnp.sum(jnp.where(mask, tangent, jnp.zeros_like(tangent)))


def exact_unit_sum(values: jax.Array, mask: jax.Array, count: int | None = None) -> jax.Array:
    """float32 sum of ``values`` (in ``[0, 1]``, clipped) over ``mask``, independent of
    the order of the additions.

    Each value is rounded to a multiple of ``2**-30`` and the integers are summed exactly
    in int32 limbs of :func:`limb_bits` ``(count)`` bits (integer sums are the same in any
    order: on any number of devices, under ``vmap``); the limb sums are combined in
    float32 in a fixed order. All limbs come from one pass over the values (a variadic
    reduction). A value that is not finite makes the sum NaN. Its gradient is that of the
    plain float sum (``mask`` where ``values`` is differentiated).

    Args:
        values: float ``[S]``.
        mask: bool ``[S]`` the entries to add.
        count: static upper bound of the number of entries in ``mask`` (default ``S``).
    """
    values = values.astype(jnp.float32)
    bits = limb_bits(values.shape[0] if count is None else count)
    return _exact_sum(values, jnp.asarray(mask, bool), bits)


def observe(state: OpinionState, params: OpinionParams, world: jaxsim.World) -> dict[str, jax.Array]:
    """End-of-day ``mean_opinion`` and ``opinion_variance`` (population variance) of the
    real agents, float32, from order-independent sums (:func:`exact_unit_sum`)."""
    real = world.real_agents()
    n = jnp.float32(world.num_agents)
    x = state.opinion
    mean = exact_unit_sum(x, real, world.num_agents) / n
    variance = exact_unit_sum(jnp.square(x - mean), real, world.num_agents) / n
    return {"mean_opinion": mean, "opinion_variance": variance}


# ------------------------------------------------------------------------- substep
def _layer_stream(name: str) -> int:
    return zlib.crc32(f"layer:{name}".encode()) & 0x7FFFFFFF


def _reverse(world: jaxsim.World, name: str) -> jax.Array:
    found = world.inputs.get(REVERSE_EDGES, {}).get(name)
    if found is not None:
        return found
    warnings.warn(
        f"opinion model: world.inputs[{REVERSE_EDGES!r}] has no entry for layer {name!r}; sorting its edges "
        "every day (build the world with jaxsim.models.opinion.build_world to do it once)",
        stacklevel=3,
    )
    return edge_pairs.reverse_edges(world.graph[name])


#: Default width (opinion units) of the surrogate gradient of the confidence bound in runs
#: with a gradient estimator (:func:`kernels.edge_pairs.bounded_confidence_update`). Measured
#: with benchmarks/bench_gradients.py (100 k agents, 30 days, final variance, straight-
#: through, 8 seeds) against finite differences: 0.02 gives mu 19% and meeting_prob 4% off
#: (epsilon +84%); without the surrogate (None) epsilon gets no gradient, mu is 29% and
#: meeting_prob 43% low; 0.005, 0.01, 0.05 and 0.1 were all further off.
EPSILON_SOFTNESS = 0.02


def meetings_substep(layers: tuple[str, ...] | None, rounds: int, epsilon_softness: float | None = EPSILON_SOFTNESS):
    """[meetings] ``rounds`` x (one matching per layer, meetings, bounded-confidence moves)."""

    def meetings(key, state: OpinionState, params: OpinionParams, t, world):
        names = tuple(sorted(world.graph)) if layers is None else layers
        slots = world.num_slots
        agent = jnp.arange(slots, dtype=jnp.int32)
        start = state.opinion
        x = start
        met = jnp.int32(0)
        meet_p = jnp.broadcast_to(jnp.asarray(params.meeting_prob, jnp.float32), (slots,))
        for r in range(rounds):
            for name in names:
                layer = world.graph[name]
                k_match, k_meet = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, r), _layer_stream(name)))
                # The priorities of edge_pairs.random_matching(uniform(k_match, (2E,)), ...),
                # hashed directly at each edge's first stored direction (no gather).
                first = edge_pairs.first_positions(_reverse(world, name))
                position = jnp.arange(first.shape[0], dtype=jnp.int32)
                priority = jaxsim.uniform(k_match, first.shape, offset=first - position)
                partner = edge_pairs.matching_from_priorities(priority, layer, slots)
                paired = partner >= 0
                event = jaxsim.bernoulli(k_meet, meet_p)
                # One event per pair: both partners read the one of the lower index.
                weight = event.at[jnp.where(paired, jnp.minimum(agent, partner), agent)].get(
                    mode="promise_in_bounds")
                x = edge_pairs.bounded_confidence_update(
                    x, partner, params.epsilon, params.mu, weight,
                    softness=epsilon_softness if sampling.differentiable() else None)
                met = met + jnp.sum(paired & (weight > 0.5), dtype=jnp.int32) // 2
        changed = jnp.sum(world.real_agents() & (x != start), dtype=jnp.int32)
        return state.replace(opinion=x), {
            "meetings": met,
            "changed": changed,
            "changed_share": changed.astype(jnp.float32) / jnp.float32(world.num_agents),
        }

    return meetings


# --------------------------------------------------------------------------- model
#: The model's declared metrics.
METRICS: tuple[jaxsim.Metric, ...] = (
    jaxsim.Metric("meetings", "flow", "pairs", doc="matched pairs that met today (all rounds and layers)"),
    jaxsim.Metric("changed", "flow", "agents", doc="agents whose opinion changed today"),
    jaxsim.Metric("changed_share", "level", "share of agents", doc="share of the agents whose opinion changed today"),
    jaxsim.Metric("mean_opinion", "level", "opinion (0-1 scale)", doc="mean opinion at the end of the day"),
    jaxsim.Metric("opinion_variance", "level", "opinion^2", doc="variance of the opinions at the end of the day"),
)


def validate_factory(layers: tuple[str, ...] | None):
    def validate(state: OpinionState, params: OpinionParams, world: jaxsim.World) -> None:
        """Host-side checks before a run; :class:`jaxsim.InputError` naming what does not fit."""
        validate_params(params)
        if not isinstance(state, OpinionState):
            raise jaxsim.InputError(f"the opinion model needs an OpinionState, got {type(state).__name__}")
        if np.shape(state.opinion) != (world.num_slots,):
            raise jaxsim.InputError(
                f"OpinionState.opinion has shape {np.shape(state.opinion)}, the world has {world.num_slots} agent "
                "slots: make the state with the model's init(key, params, world) for this world"
            )
        if getattr(state.opinion, "dtype", None) != jnp.float32:
            raise jaxsim.InputError(f"OpinionState.opinion must be float32, got {state.opinion.dtype}")
        if not world.graph:
            raise jaxsim.InputError("the opinion model needs at least one contact layer in world.graph; the world has none")
        names = sorted(world.graph) if layers is None else list(layers)
        missing = sorted(set(names) - set(world.graph))
        if missing:
            raise jaxsim.InputError(f"the opinion model's layers {missing} are not in the world; it has {sorted(world.graph)}")
        reverse = world.inputs.get(REVERSE_EDGES, {})
        for name in names:
            layer = world.graph[name]
            if not isinstance(layer, ContactLayer):
                raise jaxsim.InputError(
                    f"layer {name!r} is a {type(layer).__name__}: the opinion model reads the edges itself; "
                    "split such a world with jaxsim.sharding.shard_world(world, mesh, graph='replicate')"
                )
            if np.shape(layer.row_start) != (world.num_slots + 1,):
                raise jaxsim.InputError(
                    f"layer {name!r} has {np.shape(layer.row_start)[0] - 1} row offsets for {world.num_slots} agent slots"
                )
            if name in reverse and np.shape(reverse[name]) != np.shape(layer.src):
                raise jaxsim.InputError(
                    f"world.inputs[{REVERSE_EDGES!r}][{name!r}] has shape {np.shape(reverse[name])}, the layer "
                    f"{np.shape(layer.src)[0]} directed edges: rebuild it with jaxsim.models.opinion.build_world"
                )

    return validate


def opinion_model(layers: Sequence[str] | None = None, rounds: int = 1,
                  epsilon_softness: float | None = EPSILON_SOFTNESS) -> jaxsim.Model:
    """The Deffuant-Weisbuch model as a :class:`jaxsim.Model`.

    Args:
        layers: the contact layers whose edges pair agents (default: every layer of the
            world, in name order); each gives one matching per round.
        rounds: matchings per layer per day (static; each round a fresh matching, the
            opinions updated between rounds): about ``rounds / 2`` meetings per agent per
            day on a dense graph.
        epsilon_softness: in runs with a gradient estimator, the width (opinion units) of
            the surrogate gradient of the confidence bound (the pair's "close enough"
            indicator keeps its 0/1 value and differentiates like a sigmoid of
            ``(epsilon - distance) / epsilon_softness``), so ``epsilon`` gets a gradient and
            the moves' effect on later matchings reaches ``mu`` and ``meeting_prob``;
            ``None``: the plain pathwise derivative of the realisation (exact locally,
            zero for ``epsilon``). Forward values are the same either way.
    """
    if epsilon_softness is not None and not (isinstance(epsilon_softness, (int, float, np.floating))
                                             and np.isfinite(epsilon_softness) and epsilon_softness > 0):
        raise jaxsim.InputError(f"opinion_model: epsilon_softness must be None or a number > 0, "
                                f"got {epsilon_softness!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise jaxsim.InputError(f"opinion_model: rounds must be a whole number >= 1, got {rounds!r}")
    if layers is not None:
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(sorted(str(name) for name in layers))
        if not layers:
            raise jaxsim.InputError("opinion_model: layers must name at least one contact layer")
    return jaxsim.Model(
        name="opinion" if rounds == 1 else f"opinion[rounds={int(rounds)}]",
        substeps=(jaxsim.Substep("meetings", meetings_substep(
            layers, int(rounds), None if epsilon_softness is None else float(epsilon_softness))),),
        init=initial_state,
        observe=observe,
        validate=validate_factory(layers),
        params_type=OpinionParams,
        metrics=METRICS,
        # A day's temporaries: about 12 bytes per directed edge (uniforms, priorities,
        # candidates) plus 32 per slot; sized for about 10 directed edges per agent.
        working_bytes_per_agent=32 + 12 * 10,
        build_world=build_world,
    )


# ------------------------------------------------------------------------------ world
def build_world(population, *, layers: Sequence[str] | None = None, on_device: bool = True, **options) -> jaxsim.World:
    """:func:`jaxsim.make_world` (``layers`` and further ``options`` passed on) with each
    layer's reverse-edge permutation (``world.inputs["reverse_edges"] = {layer: int32
    [2E]}``, computed once on the host and checked: every edge stored both ways)."""
    world = make_world(population, layers=layers, on_device=on_device, **options)
    reverse = {}
    for name, layer in world.graph.items():
        host = ContactLayer(src=np.asarray(layer.src), dst=np.asarray(layer.dst), row_start=np.asarray(layer.row_start))
        try:
            reverse[name] = edge_pairs.reverse_edges(host)
        except ValueError as err:
            raise jaxsim.InputError(f"layer {name!r}: {err}") from None
    put = to_device_array if on_device else np.asarray
    return world.with_inputs(**{REVERSE_EDGES: {name: put(r) for name, r in reverse.items()}})


# -------------------------------------------------------------------- host summaries
def opinions(state: OpinionState, world: jaxsim.World) -> np.ndarray:
    """float32 numpy ``[N]``: the real agents' opinions (host copy)."""
    return np.asarray(jax.device_get(state.opinion))[: world.num_agents]


@dataclass(frozen=True)
class Clusters:
    """Opinion clusters (host side, from :func:`clusters`).

    Attributes:
        major: number of clusters holding at least ``min_share`` of the agents.
        total: number of clusters of any size (minor ones: a few stragglers, often near
            the extremes).
        centers: float64 ``[total]`` mean opinion of each cluster, ascending.
        shares: float64 ``[total]`` share of the agents in each cluster.
        spread: float64 ``[total]`` max - min opinion within each cluster.
        min_share: the share a major cluster holds at least.
    """

    major: int
    total: int
    centers: np.ndarray
    shares: np.ndarray
    spread: np.ndarray
    min_share: float

    @property
    def major_centers(self) -> np.ndarray:
        """float64 ``[major]`` centres of the major clusters, ascending."""
        return self.centers[self.shares >= self.min_share]


def clusters(opinions, tolerance: float = 0.01, min_share: float = 0.02) -> Clusters:
    """Group opinions into clusters and count the major ones (host side).

    Sorted opinions split wherever two neighbouring values differ by more than
    ``tolerance``; a cluster is major when it holds at least ``min_share`` of the agents
    (Deffuant et al. 2000 count major clusters and leave aside the few agents stranded near
    the extremes). After convergence the members of a cluster agree to far better than
    ``tolerance`` and clusters are at least ``epsilon`` apart, so any ``tolerance`` well
    below ``epsilon`` gives the same count.

    Args:
        opinions: float ``[N]`` (the real agents only, e.g. :func:`opinions`).
        tolerance: the largest gap inside a cluster (opinion scale).
        min_share: the smallest share of the agents a major cluster holds.
    """
    values = np.sort(np.asarray(opinions, np.float64).reshape(-1))
    if values.size == 0:
        raise jaxsim.InputError("clusters: no opinions given")
    if not np.all(np.isfinite(values)):
        raise jaxsim.InputError("clusters: non-finite opinions")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise jaxsim.InputError(f"clusters: tolerance must be a finite number >= 0, got {tolerance!r}")
    if not 0 <= min_share <= 1:
        raise jaxsim.InputError(f"clusters: min_share must lie in [0, 1], got {min_share!r}")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(values) > tolerance) + 1])
    ends = np.concatenate([starts[1:], [values.size]])
    sizes = ends - starts
    centers = np.add.reduceat(values, starts) / sizes
    shares = sizes / values.size
    spread = values[ends - 1] - values[starts]
    return Clusters(major=int(np.sum(shares >= min_share)), total=int(sizes.size), centers=centers,
                    shares=shares, spread=spread, min_share=float(min_share))


def expected_clusters(epsilon: float) -> int:
    """``floor(1 / (2 epsilon))``: about the number of major clusters from uniform initial
    opinions (Deffuant et al. 2000), at least 1."""
    if not epsilon > 0:
        raise jaxsim.InputError(f"expected_clusters: epsilon must be > 0, got {epsilon!r}")
    return max(1, int(np.floor(1.0 / (2.0 * float(epsilon)) + 1e-9)))


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
