"""Random matchings of an edge list and pairwise updates of the matched agents.

The interaction step of pairwise models (bounded-confidence opinion dynamics, trades,
games): every day each agent meets at most one neighbour, and the pairs are drawn at
random from the contact network, all agents at once (no loop over agents or edges).

The matching (:func:`random_matching`) is the set of *locally dominant* edges: every
undirected edge ``{i, j}`` gets a random priority, and it is selected when its priority is
the highest among the edges of both of its endpoints. No agent has two selected edges
(each agent has one highest edge), so the selected edges are a matching; on a graph with
mean degree ``k`` an edge is selected with probability about ``1 / (2k - 1)``, so about
half of the agents are paired on each round, whatever ``k``. Computed with two sorted
segment maxima over the layer's directed edges (``O(2E)``) and gathers over the agents:

1. ``best[i] = max`` priority over the edges of ``i`` (``segment_max`` over the edges
   sorted by destination: the edges into ``i`` are ``i``'s edges, each undirected edge
   being stored both ways);
2. ``choice[i]`` = the neighbour across ``i``'s best edge (the largest one among equal
   priorities, a second ``segment_max``);
3. ``partner[i] = choice[i]`` when ``choice[choice[i]] == i`` (the two agree), else ``-1``.

Step 3 needs only agent-sized gathers; it makes the result a matching even when two
edges of an agent draw equal priorities (24-bit uniforms do tie, rarely).

Priorities come from uniforms the caller draws (e.g. ``jaxsim.uniform(key, (2E,))``, which
hashes the global edge index, so the matching does not depend on how the agents are split
over devices); both stored directions of an edge must see the same priority, which
:func:`symmetric_priorities` ensures by reading the uniform of the direction stored first
(:func:`first_positions`, from the reverse-edge permutation :func:`reverse_edges`,
computed once per layer). A caller whose uniforms are a hash of the element index, as
``jaxsim.uniform``'s are, can draw the priorities directly at those positions
(``jaxsim.uniform(key, (2E,), offset=first - arange(2E))``: the same numbers, without
materialising and gathering ``2E`` uniforms; about a fifth faster at 1 M agents) and call
:func:`matching_from_priorities`.

:func:`bounded_confidence_update` is the Deffuant-Weisbuch update of matched agents
(Deffuant, Neau, Amblard & Weisbuch, Adv. Complex Systems 3, 87-98, 2000): partners closer
than ``epsilon`` both move toward each other by ``mu`` times their difference. The two
moves are exact negatives of each other (``mu * (x_j - x_i)`` and ``mu * (x_i - x_j)``),
so the sum of the opinions changes only by the rounding of the two additions.

Edge weights (``layer.weight``) are not used: every edge is as likely to be drawn.

Shapes: ``S`` agent slots (the row offsets of a layer have ``S + 1`` entries), ``2E``
directed edges (each undirected edge stored both ways, sorted by destination then
source, as :func:`jaxsim.graph.build_contact_layer` builds them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.kernels.layers import ContactLayer

#: ``partner`` of an agent left unmatched.
UNMATCHED = -1


def reverse_edges(layer: ContactLayer):
    """The reverse of every directed edge: int32 ``[2E]`` ``r`` with ``src[r[e]] == dst[e]``
    and ``dst[r[e]] == src[e]`` (an involution).

    The layer's edges are sorted by ``(dst, src)``; the same edges sorted by ``(src, dst)``
    list, at each position, the reverse of the edge stored there (the edge set is
    symmetric), so ``r`` is a stable sort of ``src``. With numpy arrays (a layer on the
    host) it runs in numpy and returns numpy; the result is checked there (an asymmetric or
    unsorted layer raises ``ValueError``). Compute it once per layer, not every day: it
    costs a sort of ``2E`` entries.
    """
    src, dst = layer.src, layer.dst
    if isinstance(src, np.ndarray) and isinstance(dst, np.ndarray):
        reverse = np.argsort(src, kind="stable").astype(np.int32)
        if src.size and not (np.array_equal(src[reverse], dst) and np.array_equal(dst[reverse], src)):
            raise ValueError(
                "reverse_edges: the layer is not symmetric with edges sorted by (dst, src): "
                "every undirected edge must be stored both ways (jaxsim.graph.build_contact_layer)"
            )
        return reverse
    return jnp.argsort(src, stable=True).astype(jnp.int32)


def first_positions(reverse: jax.Array) -> jax.Array:
    """int32 ``[2E]``: for each directed edge, the position of its undirected edge's first
    stored direction, ``min(e, reverse[e])`` (equal on both directions)."""
    position = jnp.arange(reverse.shape[0], dtype=jnp.int32)
    return jnp.minimum(position, reverse.astype(jnp.int32))


def symmetric_priorities(uniforms: jax.Array, reverse: jax.Array) -> jax.Array:
    """One priority per undirected edge, the same on both of its stored directions.

    Args:
        uniforms: float ``[2E]`` one uniform per directed edge position (e.g.
            ``jaxsim.uniform(key, (2E,))``); only the uniform of the direction stored
            first is used, so each undirected edge gets one independent uniform.
        reverse: int32 ``[2E]`` from :func:`reverse_edges`.

    Returns:
        ``[2E]`` with ``out[e] == out[reverse[e]] == uniforms[min(e, reverse[e])]``.
    """
    return uniforms.at[first_positions(reverse)].get(mode="promise_in_bounds")


def matching_from_priorities(priority: jax.Array, layer: ContactLayer, num_slots: int | None = None) -> jax.Array:
    """The locally dominant edges of ``priority`` as a partner per agent.

    Args:
        priority: float or int ``[2E]``, equal on both directions of each edge
            (:func:`symmetric_priorities`).
        layer: the contact layer (edges sorted by destination).
        num_slots: ``S``, the number of agent slots (default ``len(layer.row_start) - 1``).

    Returns:
        int32 ``[S]``: ``partner[i]`` is the agent ``i`` is paired with, or ``-1``;
        ``partner[partner[i]] == i`` for every paired ``i``, and every pair is an edge.
    """
    slots = int(layer.row_start.shape[0]) - 1 if num_slots is None else int(num_slots)
    src, dst = layer.src, layer.dst
    if src.shape[0] == 0:
        return jnp.full((slots,), UNMATCHED, jnp.int32)
    best = jax.ops.segment_max(priority, dst, num_segments=slots, indices_are_sorted=True)
    # best[dst] reads the rows in order (dst is sorted): a streaming gather.
    top = priority == best.at[dst].get(mode="promise_in_bounds")
    choice = jax.ops.segment_max(
        jnp.where(top, src, UNMATCHED).astype(jnp.int32), dst, num_segments=slots, indices_are_sorted=True
    )
    choice = jnp.maximum(choice, UNMATCHED)  # rows without edges: the integer minimum -> -1
    has = choice >= 0
    back = choice.at[jnp.where(has, choice, 0)].get(mode="promise_in_bounds")
    agent = jnp.arange(slots, dtype=jnp.int32)
    return jnp.where(has & (back == agent), choice, UNMATCHED)


def random_matching(uniforms: jax.Array, layer: ContactLayer, reverse: jax.Array | None = None) -> jax.Array:
    """A random matching of the layer's edges: each agent in at most one pair.

    Args:
        uniforms: float ``[2E]`` uniforms on ``[0, 1)``, one per directed edge position
            (draw them with ``jaxsim.uniform(key, (2E,))``: identical on any number of
            devices); each undirected edge takes the uniform of its first stored
            direction as its priority.
        layer: :class:`ContactLayer` (both directions of each edge, sorted by
            ``(dst, src)``), with ``S + 1`` row offsets.
        reverse: int32 ``[2E]`` the reverse-edge permutation (:func:`reverse_edges`);
            computed here when not given (a sort of ``2E`` entries: pass it in a loop).

    Returns:
        int32 ``[S]`` partner of each agent slot, ``-1`` when unmatched; symmetric
        (``partner[partner[i]] == i``), and only along existing edges. The pairs are the
        edges whose priority is the largest among the edges of both endpoints.
    """
    if reverse is None:
        reverse = reverse_edges(layer)
    return matching_from_priorities(symmetric_priorities(uniforms, jnp.asarray(reverse)), layer)


def partner_values(x: jax.Array, partner: jax.Array) -> jax.Array:
    """``x[partner[i]]`` for matched agents, ``x[i]`` for unmatched ones (shape of ``x``)."""
    own = jnp.arange(x.shape[0], dtype=jnp.int32)
    return x.at[jnp.where(partner >= 0, partner, own)].get(mode="promise_in_bounds")


def bounded_confidence_update(
    x: jax.Array,
    partner: jax.Array,
    epsilon: jax.Array | float,
    mu: jax.Array | float,
    weight: jax.Array | None = None,
    softness: float | None = None,
) -> jax.Array:
    """Deffuant-Weisbuch update of matched agents: for each pair ``(i, j)`` with
    ``|x_i - x_j| < epsilon``, ``x_i += mu (x_j - x_i)`` and ``x_j += mu (x_i - x_j)``.

    Args:
        x: float ``[S]`` opinions (any scale; ``epsilon`` in the same units).
        partner: int32 ``[S]`` from :func:`random_matching` (``-1``: no partner).
        epsilon: float scalar (or ``[S]``, equal within pairs) confidence bound: partners
            interact only when strictly closer than this.
        mu: float scalar (or ``[S]``, equal within pairs) convergence rate, the share of
            the difference each partner moves (``0.5``: both meet halfway).
        weight: optional float ``[S]``, equal within pairs (e.g. a 0/1 meeting event
            drawn for the pair): the move is multiplied by it.
        softness: optional width (units of ``x``) of a surrogate gradient for the
            threshold: the pair's 0/1 "close enough" indicator keeps its value and takes
            the derivative of ``sigmoid((epsilon - |x_j - x_i|) / softness)``, so
            ``epsilon`` (and the distance) get a gradient from the pairs near the bound.

    Returns:
        float ``[S]`` new opinions. The two moves of a pair are exact negatives, so the
        update is symmetric and conserves the sum up to the rounding of the additions;
        agents without a partner (and padding slots) keep their values. Differentiable
        in ``x``, ``mu`` and ``weight``; the threshold ``epsilon`` has zero gradient
        unless ``softness`` is given.
    """
    difference = partner_values(x, partner) - x
    move = (partner >= 0) & (jnp.abs(difference) < epsilon)
    step = mu * difference
    if weight is not None:
        step = step * weight
    if softness is None:
        return x + jnp.where(move, step, jnp.zeros_like(step))
    soft = jax.nn.sigmoid((epsilon - jnp.abs(difference)) / softness)
    close = move.astype(x.dtype) + (soft - jax.lax.stop_gradient(soft)) * (partner >= 0)
    return x + step * close


__all__ = [
    "UNMATCHED",
    "bounded_confidence_update",
    "first_positions",
    "matching_from_priorities",
    "partner_values",
    "random_matching",
    "reverse_edges",
    "symmetric_priorities",
]
