"""Schelling's segregation model on a 2-D grid: parameters, state, world, substep, model.

Households of two types (codes 0 and 1) live on the cells of a ``W x H`` grid with some
cells empty. Each day every household counts the households around it (Moore or von
Neumann neighbourhood, :mod:`jaxsim.kernels.grid`); one whose share of same-type
households among its occupied neighbouring cells is below ``threshold`` is unhappy and
tries to move to an empty cell drawn at random. All households move at once: each
mover proposes a random empty cell, of the movers proposing one cell a random one wins
it, the others stay put until the next day (Schelling, "Dynamic models of segregation",
J. Math. Sociology 1, 143-186, 1971; the NetLogo "Segregation" model, Wilensky 1997,
where a household is happy when ``similar-nearby >= %-similar-wanted * total-nearby /
100`` and a household with no neighbours is happy).

Layout of a run:

- **world** (:func:`build_world`): one agent slot per cell (``world.num_agents = H * W``;
  a slot holds a household or is vacant) and ``world.inputs["grid"]``, int8 ``[H, W]``,
  1 for a cell households may live on and 0 for a closed one (water, a park). The
  *shape* of that array is the grid's size: static under ``jit``, so the neighbourhood
  sums are shifts of an ``[H, W]`` array. Whether the grid wraps around (a torus) and
  which neighbourhood counts are settings of the model (:func:`schelling_model`).
- **state** (:class:`SchellingState`): each slot's cell ``[S]`` and type ``[S]``, plus the
  occupancy grid ``[C]`` (type code per cell, or empty/closed) and the list of empty
  cells ``[C]``, kept in step with them.
- **init**: slot ``i`` starts on cell ``i``, holding a household with probability
  ``density`` (open cells only), of type 1 with probability ``type_share`` (NetLogo's
  setup: each patch gets a turtle with probability ``density``, of a random colour): the
  households sit on distinct cells chosen uniformly at random.
- **substep** ``relocate``: happiness from the start-of-day grid, the move draws
  (:func:`jaxsim.bernoulli` of a probability, so a differentiable run carries the
  gradient estimator's derivative), the moves, the new grid.
- **observe**: the end-of-day segregation index, unhappy households and their share.

Every metric is integer-exact or computed from integer sums, so runs give bitwise the
same numbers on one or several devices, alone or as members of an ensemble.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxsim
from jaxsim import generators, parameters
from jaxsim.kernels import grid as grid_kernels
from jaxsim.parameters import param
from jaxsim.world import make_world

#: Type code of an agent slot that holds no household.
VACANT = -1
#: Occupancy-grid codes of a cell: a household's type (0 or 1), :data:`EMPTY` (open, no
#: household) or :data:`CLOSED` (no household may live there).
EMPTY = grid_kernels.EMPTY
CLOSED = -2
#: Household types.
NUM_TYPES = 2
#: ``lcm(1, ..., 8)``: ``similar * 840 / total`` is a whole number for every neighbour
#: count, so the segregation index is a sum of integers (exact in any order).
_SHARE_SCALE = 840

# ------------------------------------------------------------------------- parameters
#: NetLogo Segregation's default ``%-similar-wanted`` (30 %): households content with a
#: 30 % minority of their own type around them still end up strongly segregated.
DEFAULT_THRESHOLD = 0.3
#: Share of cells holding a household. NetLogo's density slider runs over 50-99 %; 0.9
#: leaves one cell in ten empty.
DEFAULT_DENSITY = 0.9


@parameters.params
class SchellingParams:
    """The parameters of Schelling's model (all float32 scalars).

    Attributes:
        threshold: the least share of same-type households among a household's occupied
            neighbouring cells that keeps it content (NetLogo's ``%-similar-wanted / 100``).
        density: share of open cells holding a household at the start (the init's draw;
            strictly between 0 and 1: some households and some empty cells).
        type_share: probability that a household is of type 1 (0.5: two equal groups).
        move_probability: probability that an unhappy household tries to move on a day
            (1: every unhappy household tries every day, as in NetLogo).
        softness: 0 (the default) makes "unhappy" the step ``share < threshold``; a
            positive value replaces the step by ``sigmoid((threshold - share) /
            softness)`` (in units of share), a smooth probability of trying to move, so
            that a differentiable run gets a gradient with respect to ``threshold``.
            Households with no neighbour never move.
    """

    threshold: jax.Array = param(DEFAULT_THRESHOLD, bounds=(0.0, 1.0), fit_bounds=(0.05, 0.95),
                                 units="share of occupied neighbouring cells",
                                 doc="least share of same-type neighbours a household accepts")
    density: jax.Array = param(DEFAULT_DENSITY, bounds=(0.0, 1.0), fit_bounds=(0.5, 0.99),
                               units="households per open cell", doc="share of open cells occupied at the start")
    type_share: jax.Array = param(0.5, bounds=(0.0, 1.0), units="share of households",
                                  doc="probability that a household is of type 1", fit=False)
    move_probability: jax.Array = param(1.0, bounds=(0.0, 1.0), units="per day",
                                        doc="probability that an unhappy household tries to move today")
    softness: jax.Array = param(0.0, bounds=(0.0, 1.0), units="share of occupied neighbouring cells",
                                doc="width of the smooth step of unhappiness (0: a hard step)", fit=False)


def check_params(params: SchellingParams) -> None:
    """Bounds of every field (:func:`jaxsim.parameters.check`) and ``0 < density < 1``;
    :class:`jaxsim.InputError` naming the field and the value."""
    if not isinstance(params, SchellingParams):
        raise jaxsim.InputError(f"the Schelling model needs SchellingParams, got {type(params).__name__}")
    parameters.check(params)
    density = np.asarray(params.density, np.float64)
    if np.any(density <= 0.0) or np.any(density >= 1.0):
        raise jaxsim.InputError(
            f"SchellingParams.density: {density.tolist()} must lie strictly between 0 and 1 "
            "(a grid needs households and empty cells to move to)"
        )


def default_params(world=None, **values) -> SchellingParams:
    """:class:`SchellingParams` with the declared defaults, ``values`` replacing them
    (checked: :class:`jaxsim.InputError` naming the field, e.g. ``threshold=1.5``)."""
    built = parameters.build(SchellingParams, world, **values)
    check_params(built)
    return built


# ------------------------------------------------------------------------------ world
def grid_population(width: int, height: int):
    """A :class:`jaxsim.Population` of ``width * height`` agent slots, one per cell, with
    the grid's size in its metadata (what :func:`build_world` reads)."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 3:
            raise jaxsim.InputError(f"grid_population: {name} must be a whole number >= 3, got {value!r}")
    return generators.population(int(width) * int(height), metadata={
        "generator": "schelling grid", "grid_width": int(width), "grid_height": int(height)})


def build_world(population, *, open_cells=None, on_device: bool = True):
    """The world of a run on the grid of ``population`` (from :func:`grid_population`).

    Args:
        open_cells: bool ``[H, W]`` cells households may live on (default: all).
        on_device: ``False`` keeps the arrays on the host.

    The world has one agent slot per cell and ``inputs["grid"]``, int8 ``[H, W]`` (1 open,
    0 closed), whose shape gives the grid's size to the model.
    """
    meta = getattr(population, "metadata", {}) or {}
    if "grid_width" not in meta or "grid_height" not in meta:
        raise jaxsim.InputError(
            "the Schelling model needs a grid population (schelling.grid_population(width, height)): "
            "its metadata holds grid_width and grid_height"
        )
    width, height = int(meta["grid_width"]), int(meta["grid_height"])
    if population.size != width * height:
        raise jaxsim.InputError(
            f"the population has {population.size} agent slots, the {width} x {height} grid {width * height} cells"
        )
    mask = np.ones((height, width), np.int8)
    if open_cells is not None:
        given = np.asarray(open_cells)
        if given.shape != (height, width):
            raise jaxsim.InputError(f"open_cells must have shape (height, width) = {(height, width)}, got {given.shape}")
        mask = given.astype(bool).astype(np.int8)
    grid = jnp.asarray(mask) if on_device else mask
    return make_world(population, layers=[], inputs={"grid": grid}, on_device=on_device)


def grid_world(width: int, height: int, *, open_cells=None):
    """``build_world(grid_population(width, height), open_cells=...)``."""
    return build_world(grid_population(width, height), open_cells=open_cells)


def grid_shape(world) -> tuple[int, int]:
    """``(H, W)`` of the world's grid (static: the shape of ``world.inputs["grid"]``)."""
    grid = world.inputs.get("grid")
    if grid is None or np.ndim(grid) != 2:
        raise jaxsim.InputError(
            "the world has no grid: build it with schelling.build_world (world.inputs['grid'], int8 [H, W])"
        )
    return tuple(int(d) for d in np.shape(grid))


def _empty_grid(world) -> jax.Array:
    """int8 ``[C]``: :data:`EMPTY` on open cells, :data:`CLOSED` on closed ones."""
    open_cells = jnp.asarray(world.inputs["grid"]).reshape(-1) > 0
    return jnp.where(open_cells, jnp.int8(EMPTY), jnp.int8(CLOSED))


# ------------------------------------------------------------------------------ state
@jaxsim.state
class SchellingState:
    """Agent slots ``[S]`` (``S = world.num_slots >= C``) and the occupancy grid ``[C]``.

    Attributes:
        cell: int32 ``[S]`` the cell ``y * W + x`` of each slot's household; ``C`` for a
            vacant slot.
        group: int8 ``[S]`` the household's type (0 or 1); :data:`VACANT` for a vacant slot.
        grid: int8 ``[C]`` each cell's household type, :data:`EMPTY` or :data:`CLOSED`
            (the households' cells and types written on the empty grid).
        free: int32 ``[C]`` the empty open cells, in any order, in the first ``F`` entries
            (``F`` = the grid's :data:`EMPTY` cells, the same every day), then ``C``: the
            list moves draw from (:func:`jaxsim.kernels.grid.move_to_free_cells` keeps it).
    """

    cell: jax.Array
    group: jax.Array
    grid: jax.Array
    free: jax.Array


def initial_state(key: jax.Array, params: SchellingParams, world) -> SchellingState:
    """Day-0 state (the model's ``init``): slot ``i`` on cell ``i`` holds a household with
    probability ``density`` if the cell is open, of type 1 with probability
    ``type_share``; the draws are :func:`jaxsim.bernoulli` (the run's estimator)."""
    height, width = grid_shape(world)
    cells, slots = height * width, world.num_slots
    k_place, k_type = jax.random.split(key)
    empty = _empty_grid(world)
    slot = jnp.arange(slots, dtype=jnp.int32)
    open_slot = jnp.take(empty, slot, mode="fill", fill_value=CLOSED) == EMPTY
    placed = jaxsim.bernoulli(k_place, jnp.broadcast_to(params.density, (slots,))) > 0.5
    occupied = placed & open_slot
    kind = jaxsim.bernoulli(k_type, jnp.broadcast_to(params.type_share, (slots,))) > 0.5
    group = jnp.where(occupied, kind.astype(jnp.int8), jnp.int8(VACANT))
    cell = jnp.where(occupied, slot, cells).astype(jnp.int32)
    grid = grid_kernels.occupancy(cell, group, empty)
    free, _ = grid_kernels.free_cell_list(grid == EMPTY)
    return SchellingState(cell=cell, group=group, grid=grid, free=free)


# ------------------------------------------------------------------------- neighbours
def _cell_counts(grid: jax.Array, shape: tuple[int, int], neighbourhood: str, periodic: bool):
    """``(same, total)`` int32 ``[C]``: for the household on each cell, its same-type
    neighbours and its occupied neighbouring cells (0 on cells without a household)."""
    counts = grid_kernels.neighbour_counts(grid.reshape(shape), NUM_TYPES, neighbourhood=neighbourhood,
                                           periodic=periodic, dtype=jnp.int8)
    counts = counts.reshape(NUM_TYPES, -1).astype(jnp.int32)
    total = counts[0] + counts[1]
    same = jnp.where(grid == 1, counts[1], jnp.where(grid == 0, counts[0], 0))
    return same, jnp.where(grid >= 0, total, 0)


def _unhappy(same: jax.Array, total: jax.Array, threshold: jax.Array) -> jax.Array:
    """bool: a household with neighbours whose same-type count is below ``threshold``
    times its occupied neighbouring cells (NetLogo's happiness test, negated)."""
    return (total > 0) & (same.astype(jnp.float32) < threshold * total.astype(jnp.float32))


def segregation_metrics(state: SchellingState, params: SchellingParams, world, *,
                        neighbourhood: str = "moore", periodic: bool = True) -> dict:
    """The state's ``segregation`` (mean share of same-type neighbours over households
    with at least one neighbour), ``unhappy`` households and ``share_unhappy`` (of all
    households), from integer sums (exact, the same on any number of devices).

    NetLogo's ``percent-similar`` is a ratio of sums (all households' similar neighbours
    over all their neighbours) rather than this mean of shares; the two differ little
    (by well under 0.01 on the grids of the tests) and follow each other."""
    same, total = _cell_counts(state.grid, grid_shape(world), neighbourhood, periodic)
    has = total > 0
    # share * 840 is a whole number 0..840; summed in two parts so that int32 holds the
    # sums up to ~34 M households.
    scaled = jnp.where(has, (same * _SHARE_SCALE) // jnp.maximum(total, 1), 0)
    high, low = jnp.sum(scaled >> 6), jnp.sum(scaled & 63)
    with_neighbours = jnp.sum(has, dtype=jnp.int32)
    segregation = (high.astype(jnp.float32) * 64.0 + low.astype(jnp.float32)) / (
        _SHARE_SCALE * jnp.maximum(with_neighbours, 1).astype(jnp.float32))
    unhappy = jnp.sum(_unhappy(same, total, params.threshold), dtype=jnp.int32)
    households = jnp.sum(state.grid >= 0, dtype=jnp.int32)
    return {
        "segregation": segregation,
        "unhappy": unhappy,
        "share_unhappy": unhappy.astype(jnp.float32) / jnp.maximum(households, 1).astype(jnp.float32),
    }


def move_probability(same: jax.Array, total: jax.Array, params: SchellingParams) -> jax.Array:
    """float32: the probability that a household with ``same`` same-type neighbours among
    ``total`` occupied neighbouring cells tries to move today: ``move_probability`` times
    the hard step ``share < threshold`` (``softness == 0``) or the smooth
    ``sigmoid((threshold - share) / softness)``; 0 without neighbours."""
    has = total > 0
    share = same.astype(jnp.float32) / jnp.maximum(total, 1).astype(jnp.float32)
    hard = _unhappy(same, total, params.threshold).astype(jnp.float32)
    smooth = params.softness > 0
    width = jnp.where(smooth, params.softness, 1.0)
    soft = jax.nn.sigmoid((params.threshold - share) / width) * has
    return params.move_probability * jnp.where(smooth, soft, hard)


def relocate_substep(neighbourhood: str = "moore", periodic: bool = True):
    """The day's substep ``fn(key, state, params, t, world) -> (state, {"moves": ...})``:
    happiness from the start-of-day grid, the move draws, one round of moves
    (:func:`jaxsim.kernels.grid.move_to_free_cells`), the new grid."""

    def relocate(key, state: SchellingState, params: SchellingParams, t, world):
        shape = grid_shape(world)
        slots = state.cell.shape[0]
        k_try, k_pick, k_priority = jax.random.split(key, 3)
        same, total = _cell_counts(state.grid, shape, neighbourhood, periodic)
        # Per household: its cell's counts (one gather of a packed code; 0 for vacant slots).
        packed = jnp.take(same * 16 + total, state.cell, mode="fill", fill_value=0)
        p = move_probability(packed >> 4, packed & 15, params)
        tries = jaxsim.bernoulli(k_try, p)
        free_count = jnp.sum(state.grid == EMPTY, dtype=jnp.int32)
        cell, moved, free = grid_kernels.move_to_free_cells(
            state.cell, tries > 0.5, state.free, free_count,
            jaxsim.uniform(k_pick, (slots,)), jaxsim.uniform(k_priority, (slots,)),
        )
        grid = grid_kernels.occupancy(cell, state.group, _empty_grid(world))
        # A float sum of 0/1 values: exact, and it carries the estimator's gradient of the draws.
        moves = jnp.sum(tries * moved)
        return state.replace(cell=cell, grid=grid, free=free), {"moves": moves}

    return relocate


# ------------------------------------------------------------------------------ model
METRICS = (
    jaxsim.Metric("segregation", "level", "share",
                  doc="mean share of same-type neighbours over households with a neighbour"),
    jaxsim.Metric("unhappy", "count", "households", doc="households below their threshold at the end of the day"),
    jaxsim.Metric("share_unhappy", "level", "share of households", doc="unhappy households / households"),
    jaxsim.Metric("moves", "flow", "households", doc="households that moved today"),
)


def _validate_factory():
    def validate(state: SchellingState, params: SchellingParams, world) -> None:
        check_params(params)
        height, width = grid_shape(world)
        cells = height * width
        if world.num_slots < cells:
            raise jaxsim.InputError(
                f"the world has {world.num_slots} agent slots for a {width} x {height} grid: it needs one per "
                "cell (build it with schelling.build_world)"
            )
        if not isinstance(state, SchellingState):
            raise jaxsim.InputError(f"the Schelling model needs a SchellingState, got {type(state).__name__}")
        for name, expected in (("cell", (world.num_slots,)), ("group", (world.num_slots,)), ("grid", (cells,)),
                               ("free", (cells,))):
            got = tuple(np.shape(getattr(state, name)))
            if got != expected:
                raise jaxsim.InputError(
                    f"SchellingState.{name} has shape {got}, the world needs {expected}: make the state with "
                    "the model's init(key, params, world) from this world"
                )

    return validate


def schelling_model(neighbourhood: str = "moore", periodic: bool = True):
    """Schelling's segregation model as a :class:`jaxsim.Model`.

    Args:
        neighbourhood: ``"moore"`` (8 neighbours, NetLogo's ``neighbors``) or
            ``"von_neumann"`` (4).
        periodic: ``True``: the grid is a torus (NetLogo's default world wraps);
            ``False``: a bounded grid.
    """
    if neighbourhood not in grid_kernels.NEIGHBOURHOODS:
        raise jaxsim.InputError(
            f"neighbourhood must be one of {grid_kernels.NEIGHBOURHOODS}, got {neighbourhood!r}")
    periodic = bool(periodic)

    def observe(state, params, world):
        return segregation_metrics(state, params, world, neighbourhood=neighbourhood, periodic=periodic)

    return jaxsim.Model(
        name=f"schelling[{neighbourhood},{'torus' if periodic else 'bounded'}]",
        substeps=(jaxsim.Substep("relocate", relocate_substep(neighbourhood, periodic)),),
        init=initial_state,
        observe=observe,
        validate=_validate_factory(),
        params_type=SchellingParams,
        metrics=METRICS,
        working_bytes_per_agent=64,
        build_world=build_world,
    )


__all__ = [
    "CLOSED",
    "DEFAULT_DENSITY",
    "DEFAULT_THRESHOLD",
    "EMPTY",
    "METRICS",
    "NUM_TYPES",
    "SchellingParams",
    "SchellingState",
    "VACANT",
    "build_world",
    "check_params",
    "default_params",
    "grid_population",
    "grid_shape",
    "grid_world",
    "initial_state",
    "move_probability",
    "relocate_substep",
    "schelling_model",
    "segregation_metrics",
]
