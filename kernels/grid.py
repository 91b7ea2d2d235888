"""Neighbourhoods and moves on 2-D grids (a ``W x H`` torus or a bounded rectangle).

Cells are numbered row by row, cell ``y * W + x`` for column ``x`` in ``0 .. W-1`` and row
``y`` in ``0 .. H-1`` (as :func:`jaxsim.generators.grid_2d` numbers them); a grid of cell
values is an array ``[H, W]``, or flat ``[C]`` with ``C = H * W``.

- :func:`neighbour_counts`: for every cell, how many of its Moore (8) or von Neumann (4)
  neighbouring cells hold an agent of each type, from an occupancy grid of type codes.
  Shifted copies of the grid added together (rolls on a torus, zero-filled shifts on a
  bounded grid): ``O(C)`` element-wise work, no loop over cells, integer-exact.
- :func:`move_to_free_cells`: one round of simultaneous moves. Each mover proposes a
  free cell drawn uniformly at random (from uniforms the caller draws, e.g.
  ``jaxsim.sampling.uniform`` of its own key, so that the draws are the same on any
  number of devices); of the movers proposing the same cell the one with the highest
  priority wins it (:func:`resolve_conflicts`: lowest agent index on ties, so exactly one
  wins); winners move, the others stay. Only cells free at the start of the round are
  proposed, so a cell a winner leaves stays empty until the next round and no two agents
  ever share a cell. The free cells are kept as a list (:func:`free_cell_list`) that the
  round updates in place (each winner's old cell replaces the cell it took), so a round
  costs a few gathers and scatters over the agents and no running count over the cells
  (XLA:CPU's cumulative sum is slow: 17 ms for 1.2 M cells on 2 cores).
  :func:`propose_free_cells` draws from the mask of free cells directly.
- :func:`occupancy`: the grid of codes from the agents' cells (a scatter).

Every function is pure ``jax.numpy`` (jit, vmap; the moves are discrete and carry no
gradient) and imports nothing from jaxsim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Neighbourhoods: ``"moore"`` (the 8 cells around, diagonals included) and
#: ``"von_neumann"`` (the 4 cells sharing an edge).
NEIGHBOURHOODS = ("moore", "von_neumann")
#: Offsets ``(dy, dx)`` of each neighbourhood's cells.
OFFSETS = {
    "moore": ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)),
    "von_neumann": ((-1, 0), (0, -1), (0, 1), (1, 0)),
}
#: Code of a cell that holds no agent in an occupancy grid (any code outside
#: ``0 .. num_types - 1`` counts as no agent).
EMPTY = -1


def _check_neighbourhood(neighbourhood: str) -> None:
    if neighbourhood not in NEIGHBOURHOODS:
        raise ValueError(f"neighbourhood must be one of {NEIGHBOURHOODS}, got {neighbourhood!r}")


def shift(values: jax.Array, dy: int, dx: int, *, periodic: bool = True) -> jax.Array:
    """``out[..., y, x] = values[..., y + dy, x + dx]``: each cell sees the value of its
    neighbour at offset ``(dy, dx)``. On a torus (``periodic``) the indices wrap around; on
    a bounded grid a neighbour outside the grid reads 0.

    Args:
        values: ``[..., H, W]`` any dtype.
        dy, dx: static whole numbers (rows down, columns right).
    """
    if periodic:
        return jnp.roll(values, (-int(dy), -int(dx)), axis=(-2, -1))
    pads = [(0, 0, 0)] * (values.ndim - 2) + [(-int(dy), int(dy), 0), (-int(dx), int(dx), 0)]
    return jax.lax.pad(values, jnp.zeros((), values.dtype), pads)


def neighbour_counts(
    occupancy: jax.Array,
    num_types: int,
    *,
    neighbourhood: str = "moore",
    periodic: bool = True,
    dtype=jnp.int32,
) -> jax.Array:
    """Agents of each type in the neighbourhood of every cell.

    Args:
        occupancy: int ``[H, W]`` (any integer dtype) the type code ``0 .. num_types - 1``
            of the agent on each cell; any other code (e.g. :data:`EMPTY`) is a cell with
            no agent.
        num_types: ``K``, static.
        neighbourhood: ``"moore"`` (8 neighbours) or ``"von_neumann"`` (4).
        periodic: ``True``: a torus (the edges wrap around); ``False``: a bounded grid
            (cells on the border have fewer neighbours).
        dtype: integer dtype of the counts (``jnp.int8`` is enough: at most 8).

    Returns:
        ``[K, H, W]`` of ``dtype``: ``counts[k, y, x]`` = neighbouring cells of ``(y, x)``
        holding an agent of type ``k`` (the cell itself excluded), in agents. Each offset
        counts once: on a torus narrower than 3 cells the same cell can be the neighbour
        at two offsets and then counts twice (as the offsets of
        :func:`jaxsim.generators.grid_2d` would not; use grids of at least 3 x 3).

    The Moore sum is separable: the 3 x 3 box sum is a sum along rows then along columns
    (4 shifts instead of 8), minus the cell itself.
    """
    _check_neighbourhood(neighbourhood)
    if occupancy.ndim != 2:
        raise ValueError(f"occupancy must be a grid [H, W], got shape {occupancy.shape}")
    codes = jnp.arange(int(num_types), dtype=occupancy.dtype)[:, None, None]
    onehot = (occupancy[None] == codes).astype(dtype)
    if neighbourhood == "moore":
        rows = onehot + shift(onehot, 0, -1, periodic=periodic) + shift(onehot, 0, 1, periodic=periodic)
        box = rows + shift(rows, -1, 0, periodic=periodic) + shift(rows, 1, 0, periodic=periodic)
        return box - onehot
    out = jnp.zeros_like(onehot)
    for dy, dx in OFFSETS["von_neumann"]:
        out = out + shift(onehot, dy, dx, periodic=periodic)
    return out


def occupancy(cell: jax.Array, codes: jax.Array, base: jax.Array) -> jax.Array:
    """The flat grid ``base`` with ``codes[i]`` written at ``cell[i]``.

    Args:
        cell: int ``[N]`` cell of each agent; a value outside ``0 .. C-1`` (e.g. ``C`` for
            an agent slot with no agent) writes nothing.
        codes: ``[N]`` the value to write (e.g. the agent's type code).
        base: ``[C]`` the grid without agents (e.g. :data:`EMPTY` everywhere).

    Returns ``[C]`` of ``base``'s dtype. Agents must be on distinct cells (else which code
    lands on a shared cell is unspecified).
    """
    return base.at[cell].set(codes.astype(base.dtype), mode="drop")


def free_cell_list(free: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The free cells as a list: ``(cells, count)``.

    Args:
        free: bool ``[C]`` (or ``[H, W]``) cells an agent may move to.

    Returns:
        int32 ``[C]`` the free cells in increasing order, then ``C`` (no cell) in the
        remaining entries; int32 scalar ``count`` of free cells. A running count and one
        scatter: build it once (e.g. in a model's initial state) and keep it up to date with
        :func:`move_to_free_cells`, which needs no running count.
    """
    free = free.reshape(-1)
    c = free.shape[0]
    rank = jnp.cumsum(free.astype(jnp.int32)) - 1
    cells = jnp.full((c,), c, jnp.int32).at[jnp.where(free, rank, c)].set(
        jnp.arange(c, dtype=jnp.int32), mode="drop")
    return cells, rank[-1] + 1


def pick_positions(u: jax.Array, count: jax.Array) -> jax.Array:
    """int32 ``floor(u * count)``, held in ``0 .. count - 1``: a position drawn uniformly
    from a list of ``count`` entries per uniform ``u`` on ``[0, 1)``, computed in float32
    (with more than ``2**24`` entries some positions are never drawn); ``count`` where the
    list is empty."""
    count = jnp.asarray(count, jnp.int32)
    pick = jnp.floor(u.astype(jnp.float32) * count.astype(jnp.float32)).astype(jnp.int32)
    return jnp.where(count > 0, jnp.clip(pick, 0, jnp.maximum(count - 1, 0)), count)


def propose_free_cells(free: jax.Array, u: jax.Array) -> jax.Array:
    """One free cell per agent, uniformly at random, from the mask of free cells.

    Args:
        free: bool ``[C]`` (or ``[H, W]``) cells an agent may move to.
        u: float ``[N]`` uniforms on ``[0, 1)`` (one per agent, drawn by the caller).

    Returns:
        int32 ``[N]``: entry ``floor(u_i * F)`` of the ``F`` free cells in cell order
        (:func:`free_cell_list`, :func:`pick_positions`), or ``C`` (no cell) when no cell
        is free.
    """
    cells, count = free_cell_list(free)
    c = cells.shape[0]
    return jnp.take(cells, pick_positions(u, count), mode="fill", fill_value=c)


def _lowest(dtype):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return np.iinfo(dtype).min


def resolve_conflicts(target: jax.Array, priority: jax.Array, num_targets: int) -> jax.Array:
    """Which proposals win: of the agents proposing one target (a cell, or a position in a
    list of cells), the one with the highest ``priority``, the lowest agent index among
    equal priorities: exactly one winner per proposed target.

    Args:
        target: int ``[N]`` proposed target per agent; outside ``0 .. num_targets - 1``
            means no proposal.
        priority: ``[N]`` float or int (e.g. uniforms from the caller's key).
        num_targets: static.

    Returns:
        bool ``[N]`` the winners. Two scatter reductions over the targets (``segment_max``
        of the priorities, then ``segment_min`` of the indices of the agents holding the
        maximum), each exact in any order: the same on any number of devices.
    """
    n = target.shape[0]
    proposing = (target >= 0) & (target < num_targets)
    segment = jnp.where(proposing, target, num_targets).astype(jnp.int32)
    best = jax.ops.segment_max(jnp.where(proposing, priority, _lowest(priority.dtype)), segment,
                               num_segments=num_targets)
    holds = proposing & (priority == jnp.take(best, segment, mode="fill", fill_value=0))
    index = jnp.arange(n, dtype=jnp.int32)
    first = jax.ops.segment_min(jnp.where(holds, index, n), segment, num_segments=num_targets)
    return holds & (index == jnp.take(first, segment, mode="fill", fill_value=n))


def move_to_free_cells(
    cell: jax.Array,
    movers: jax.Array,
    free_cells: jax.Array,
    free_count: jax.Array,
    u_pick: jax.Array,
    priority: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One round of simultaneous moves to free cells.

    Args:
        cell: int32 ``[N]`` each agent's cell now (``0 .. C-1``; an agent with a cell
            outside the grid, e.g. an empty agent slot, never moves).
        movers: bool ``[N]`` agents that try to move.
        free_cells: int32 ``[C]`` the free cells (no agent, open to agents) in its first
            ``free_count`` entries, in any order (:func:`free_cell_list`). The movers'
            own cells are not free, so nobody proposes a cell a winner leaves in the same
            round.
        free_count: int32 scalar ``F``, the free cells listed.
        u_pick: float ``[N]`` uniforms on ``[0, 1)``: mover ``i`` proposes the free cell
            at list position ``floor(u_i * F)`` (:func:`pick_positions`), uniform over the
            free cells.
        priority: ``[N]`` priorities settling conflicts (:func:`resolve_conflicts`).

    Returns:
        ``(new_cell, moved, new_free_cells)``: int32 ``[N]`` cells after the round
        (winners on their new cell, everyone else where they were), bool ``[N]`` the
        agents that moved, and the list of free cells after the round: each winner's old
        cell takes the list position of the cell it took, so the list keeps ``F`` entries
        and needs no running count. The number of agents is unchanged, every new cell was
        free, no two agents share a cell.
    """
    c = free_cells.shape[0]
    movers = movers & (cell >= 0) & (cell < c) & (free_count > 0)
    position = jnp.where(movers, pick_positions(u_pick, free_count), c)
    moved = resolve_conflicts(position, priority, c)
    slot = jnp.where(moved, position, c)
    target = jnp.take(free_cells, slot, mode="fill", fill_value=c)
    new_cell = jnp.where(moved, target, cell).astype(cell.dtype)
    new_free = free_cells.at[slot].set(cell.astype(free_cells.dtype), mode="drop")
    return new_cell, moved, new_free


__all__ = [
    "EMPTY",
    "NEIGHBOURHOODS",
    "OFFSETS",
    "free_cell_list",
    "move_to_free_cells",
    "neighbour_counts",
    "occupancy",
    "pick_positions",
    "propose_free_cells",
    "resolve_conflicts",
    "shift",
]
