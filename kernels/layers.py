"""Contact layers as device arrays: directed edges sorted by destination.

A layer is built once on the host (:func:`jaxsim.graph.build_contact_layer`) and passed to
the jitted step as an argument (never closed over, so XLA does not constant-fold it and
one compiled program runs any population of the same shape).
"""

from __future__ import annotations

import jax
from jaxsim.kernels import pytree as struct


@struct.dataclass
class ContactLayer:
    """One contact network, each undirected edge stored in both directions.

    Because every edge is stored both ways, the edges into agent ``i`` (positions
    ``row_start[i] .. row_start[i+1]-1``, sources = ``i``'s neighbours) are also the list of
    agents ``i`` reaches: one array serves both the dense "pull" sum and the sparse "push"
    from the few sending agents.

    Attributes:
        src: int32 ``[2E]`` the agent whose value travels along the edge.
        dst: int32 ``[2E]`` the agent it reaches; sorted ascending. Layers built by
            :func:`jaxsim.graph.build_contact_layer` are sorted by ``(dst, src)``, so the
            reverse of edge ``e`` is found by a stable sort of ``src`` (models that pair
            the two directions of an edge rely on it).
        row_start: int32 ``[S + 1]`` first edge position of each destination (CSR offsets),
            for ``S`` agent slots (the population size, or more with padding).
        weight: float32 ``[2E]`` contact weight, or ``None`` for all-ones (saves a read of
            ``4 * 2E`` bytes per day).
    """

    src: jax.Array
    dst: jax.Array
    row_start: jax.Array
    weight: jax.Array | None = None

    @property
    def num_directed_edges(self) -> int:
        return int(self.src.shape[0])


__all__ = ["ContactLayer"]
