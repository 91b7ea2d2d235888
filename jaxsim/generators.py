"""Contact networks and populations from generators: vectorized, seeded, no loop over agents.

Every generator takes a ``seed`` (or a ``numpy.random.Generator``) and returns the same
network for the same arguments. Edges come back as :class:`~jaxsim.population.EdgeList`
(undirected, each edge once, ``u < v``; self-loops and repeated edges dropped), ready for
:func:`population` or :class:`~jaxsim.population.Population`.

Networks:

- :func:`erdos_renyi`: ``G(n, p)`` with ``p = mean_degree / (n - 1)``, exactly (a binomial
  number of edges, drawn uniformly without repetition).
- :func:`watts_strogatz`: a ring lattice of ``k`` neighbours per agent with each edge's far
  end rewired with probability ``p`` (small world; Watts & Strogatz, Nature 393, 1998).
- :func:`barabasi_albert`: preferential attachment, ``m`` edges per new agent, as the
  linearised chord diagram of Bollobas & Riordan (Combinatorica 24, 2004), whose degree
  distribution has the power-law tail ``P(k) ~ k^-3``; built by pointer jumping over the
  half-edges (``O(E log E)``, no loop over agents).
- :func:`configuration_model`: a random graph with given degrees (the erased
  configuration model: stubs paired at random, self-loops and repeats dropped).
- :func:`household_cliques`, :func:`grouped_configuration_model`,
  :func:`households_and_communities`: households as cliques and community contacts
  paired within groups with a share across them (the NYC synthesis is one user).
- :func:`grid_2d`: a 2-D lattice (Moore or von Neumann neighbourhoods, periodic or not).

Populations: :func:`population` wraps networks (and optional attributes) into a
:class:`~jaxsim.population.Population` of ``n`` agents.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from jaxsim.errors import InputError
from jaxsim.population import EdgeList, Population


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be a whole number or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_agents(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"the number of agents must be a whole number >= 1, got {n!r}")
    return int(n)


# ---------------------------------------------------------------------------- networks
def erdos_renyi(n: int, mean_degree: float, *, seed=0) -> EdgeList:
    """``G(n, p)`` with ``p = mean_degree / (n - 1)``: each pair of agents is linked
    independently with probability ``p`` (drawn as a binomial number of edges placed
    uniformly at random without repetition)."""
    n = _check_agents(n)
    if not (np.isfinite(mean_degree) and 0 <= mean_degree <= n - 1):
        raise InputError(f"erdos_renyi: mean_degree must lie in [0, n - 1 = {n - 1}], got {mean_degree!r}")
    rng = _rng(seed)
    pairs = n * (n - 1) // 2
    if n < 2 or mean_degree == 0:
        return EdgeList(np.zeros(0, np.int32), np.zeros(0, np.int32))
    p = float(mean_degree) / (n - 1)
    target = int(rng.binomial(pairs, p))
    keys = np.zeros(0, np.int64)
    while keys.shape[0] < target:
        need = target - keys.shape[0]
        u = rng.integers(0, n, int(need * 1.1) + 16, dtype=np.int64)
        v = rng.integers(0, n, u.shape[0], dtype=np.int64)
        keep = u != v
        lo, hi = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
        new = lo * n + hi
        # First appearances only, in draw order (a uniformly random set of distinct pairs).
        _, first = np.unique(new, return_index=True)
        new = new[np.sort(first)]
        new = new[~np.isin(new, keys)]
        keys = np.concatenate([keys, new[:need]])
    return EdgeList.from_pairs(keys // n, keys % n)


def watts_strogatz(n: int, k: int, p: float, *, seed=0) -> EdgeList:
    """A ring of ``n`` agents each linked to its ``k`` nearest neighbours (``k`` even),
    with the far end of each edge rewired to a uniformly random agent with probability
    ``p``. Rewirings that would repeat an edge or make a self-loop are dropped, so at
    large ``p`` slightly fewer than ``n k / 2`` edges remain."""
    n = _check_agents(n)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2 or k % 2 or k >= n:
        raise InputError(f"watts_strogatz: k must be an even whole number in 2..{n - 1}, got {k!r}")
    if not 0 <= p <= 1:
        raise InputError(f"watts_strogatz: p must lie in [0, 1], got {p!r}")
    rng = _rng(seed)
    half = k // 2
    u = np.repeat(np.arange(n, dtype=np.int64), half)
    v = (u + np.tile(np.arange(1, half + 1), n)) % n
    rewire = rng.random(u.shape[0]) < p
    v = np.where(rewire, rng.integers(0, n, u.shape[0]), v)
    return EdgeList.from_pairs(u, v)


def barabasi_albert(n: int, m: int, *, seed=0) -> EdgeList:
    """Preferential attachment: agents arrive one by one, each with ``m`` edges to agents
    chosen with probability proportional to their degree (the linearised chord diagram of
    Bollobas & Riordan, 2004: agent ``t``'s edges are those of ``m`` consecutive steps of
    the one-edge process). Self-loops and repeated edges are dropped, so the mean degree is
    a little below ``2 m``; the degree distribution's tail is ``P(k) ~ k^-3``."""
    n = _check_agents(n)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise InputError(f"barabasi_albert: m must be a whole number >= 1, got {m!r}")
    rng = _rng(seed)
    steps = n * int(m)
    t = np.arange(steps, dtype=np.int64)
    # Step t adds half-edges 2t (its own end) and 2t + 1 (the far end), whose owner is the
    # owner of a uniformly chosen earlier half-edge r in 0..2t (2t itself: a self-loop).
    r = np.minimum((rng.random(steps) * (2 * t + 1)).astype(np.int64), 2 * t)
    # Owner of half-edge h: h // 2 if h is even, else the owner of r[(h - 1) // 2]. The
    # chain strictly decreases, so pointer doubling resolves every chain in log steps.
    h = np.arange(2 * steps, dtype=np.int64)
    jump = np.where(h % 2 == 0, h, r[np.maximum(h - 1, 0) // 2])
    while True:
        odd = jump % 2 == 1
        if not odd.any():
            break
        jump = np.where(odd, jump[jump], jump)
    target_step = jump[r] // 2
    return EdgeList.from_pairs(t // m, target_step // m)


def configuration_model(degrees: np.ndarray, *, seed=0) -> EdgeList:
    """A random graph with (about) the given degrees: each agent gets ``degrees[i]`` stubs,
    stubs are shuffled and paired; self-loops and repeated edges are dropped (the erased
    configuration model; with an odd total one stub is left over)."""
    degrees = np.asarray(degrees)
    if degrees.ndim != 1 or degrees.size < 1 or not np.issubdtype(degrees.dtype, np.integer) or degrees.min() < 0:
        raise InputError("configuration_model: degrees must be a 1-D array of whole numbers >= 0")
    rng = _rng(seed)
    stubs = np.repeat(np.arange(degrees.shape[0], dtype=np.int64), degrees)
    rng.shuffle(stubs)
    k = stubs.shape[0] // 2
    return EdgeList.from_pairs(stubs[0: 2 * k: 2], stubs[1: 2 * k: 2])


def household_cliques(sizes: np.ndarray) -> EdgeList:
    """All within-household pairs for contiguous households of ``sizes`` (household ``h``
    holds the next ``sizes[h]`` agents), sorted by ``(u, v)``; no loop over households."""
    sizes = np.asarray(sizes, np.int64)
    if sizes.ndim != 1 or (sizes.size and sizes.min() < 1):
        raise InputError("household_cliques: sizes must be a 1-D array of whole numbers >= 1")
    n = int(sizes.sum(dtype=np.int64))
    per_agent_size = np.repeat(sizes, sizes)
    starts = np.cumsum(sizes, dtype=np.int64) - sizes
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
    later = (per_agent_size - 1 - rank).astype(np.int64)  # members after me in my household
    del per_agent_size, rank, starts
    u = np.repeat(np.arange(n, dtype=np.int32), later)
    first = np.cumsum(later) - later
    offset = np.arange(u.shape[0], dtype=np.int64) - np.repeat(first, later)
    del first, later
    v = (u + 1 + offset).astype(np.int32)
    return EdgeList(u, v, None)


def grouped_configuration_model(
    rng: np.random.Generator, degrees: np.ndarray, group_sizes: Sequence[int], cross_share: float
) -> EdgeList:
    """A configuration model within groups of contiguous agents, with a share across them.

    Each agent's ``degrees[i]`` stubs are split: a binomial share ``cross_share`` joins a
    pool paired across the whole population, the others are shuffled and paired within the
    agent's group (``group_sizes``: agents per group, in order; an odd stub left in a group
    joins the pool; an odd stub left in the pool is dropped). Self-loops and repeated edges
    are dropped. Draws from ``rng`` in a fixed order (a Python loop over groups only).
    """
    degree = np.asarray(degrees)
    n = degree.shape[0]
    if int(np.sum(group_sizes)) != n:
        raise InputError(f"grouped_configuration_model: groups hold {int(np.sum(group_sizes))} agents, degrees {n}")
    cross = rng.binomial(degree, cross_share) if cross_share > 0 else np.zeros_like(degree)
    local = degree - cross
    del degree
    agents = np.arange(n, dtype=np.int32)
    local_stubs = np.repeat(agents, local)
    cross_stubs = [np.repeat(agents, cross)]
    del cross
    bounds = np.concatenate([[0], np.cumsum(local, dtype=np.int64)])[
        np.concatenate([[0], np.cumsum(group_sizes, dtype=np.int64)])
    ]
    del local, agents
    lengths = np.diff(bounds)
    pairs = lengths // 2
    pair_at = np.concatenate([[0], np.cumsum(pairs)])
    src = np.empty(int(pair_at[-1]), dtype=np.int32)
    dst = np.empty_like(src)
    for i in range(len(group_sizes)):
        seg = local_stubs[bounds[i]: bounds[i + 1]]
        if seg.shape[0] < 2:
            cross_stubs.append(seg.copy())
            continue
        rng.shuffle(seg)
        k = int(pairs[i])
        src[pair_at[i]: pair_at[i + 1]] = seg[0: 2 * k: 2]
        dst[pair_at[i]: pair_at[i + 1]] = seg[1: 2 * k: 2]
        if seg.shape[0] % 2:
            cross_stubs.append(seg[-1:].copy())
    del local_stubs
    pool = np.concatenate(cross_stubs)
    del cross_stubs
    rng.shuffle(pool)
    k = pool.shape[0] // 2
    src = np.concatenate([src, pool[0: 2 * k: 2]])
    dst = np.concatenate([dst, pool[1: 2 * k: 2]])
    del pool
    return EdgeList.from_pairs(src, dst)


def negative_binomial_degrees(rng: np.random.Generator, mean: np.ndarray | float, dispersion: float,
                              size: int | None = None) -> np.ndarray:
    """Over-dispersed contact counts: negative binomial with ``mean`` (per agent or one
    value) and dispersion ``k`` (variance ``mean + mean**2 / k``), as contact surveys show."""
    if not (np.isfinite(dispersion) and dispersion > 0):
        raise InputError(f"dispersion must be a finite number > 0, got {dispersion!r}")
    mu = np.asarray(mean, np.float64)
    if size is not None:
        mu = np.broadcast_to(mu, (size,))
    if np.any(~np.isfinite(mu) | (mu < 0)):
        raise InputError("negative_binomial_degrees: means must be finite and >= 0")
    return rng.negative_binomial(dispersion, dispersion / (dispersion + mu))


def households_and_communities(
    n: int,
    *,
    mean_household_size: float = 2.6,
    community_size: int = 5000,
    community_mean_degree: float = 10.0,
    dispersion: float = 3.0,
    cross_share: float = 0.1,
    seed=0,
) -> Population:
    """``n`` agents in households (sizes ``1 + Poisson(mean - 1)``, cut to ``n`` agents) and
    communities of about ``community_size`` contiguous agents; layers ``household``
    (cliques) and ``community`` (negative-binomial contacts with ``community_mean_degree``
    and ``dispersion``, a ``cross_share`` of them across communities). Attributes
    ``household`` and ``community`` (codes)."""
    n = _check_agents(n)
    if not mean_household_size >= 1:
        raise InputError(f"mean_household_size must be >= 1, got {mean_household_size!r}")
    if isinstance(community_size, bool) or not isinstance(community_size, (int, np.integer)) or community_size < 1:
        raise InputError(f"community_size must be a whole number >= 1, got {community_size!r}")
    if not 0 <= cross_share <= 1:
        raise InputError(f"cross_share must lie in [0, 1], got {cross_share!r}")
    rng = _rng(seed)
    sizes = 1 + rng.poisson(mean_household_size - 1, n)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1] - n)
    household = np.repeat(np.arange(count, dtype=np.int32), sizes)
    communities = max(1, round(n / community_size))
    bounds = np.linspace(0, n, communities + 1).round().astype(np.int64)
    group_sizes = np.diff(bounds)
    community = np.repeat(np.arange(communities, dtype=np.int32), group_sizes)
    degrees = negative_binomial_degrees(rng, community_mean_degree, dispersion, n)
    return Population(
        attributes={"household": household, "community": community},
        networks={
            "household": household_cliques(sizes),
            "community": grouped_configuration_model(rng, degrees, group_sizes, cross_share),
        },
        metadata={"generator": "households_and_communities", "seed": None if isinstance(seed, np.random.Generator)
                  else int(seed), "mean_household_size": mean_household_size, "community_size": community_size,
                  "community_mean_degree": community_mean_degree, "dispersion": dispersion,
                  "cross_share": cross_share},
    )


def grid_2d(width: int, height: int, *, neighbourhood: str = "moore", periodic: bool = True) -> EdgeList:
    """The cells of a ``width x height`` grid (cell ``y * width + x``) linked to their
    neighbours: ``"moore"`` (8, diagonals included) or ``"von_neumann"`` (4); ``periodic``
    wraps the edges around (a torus)."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"grid_2d: {name} must be a whole number >= 1, got {value!r}")
    if neighbourhood not in ("moore", "von_neumann"):
        raise InputError(f"grid_2d: neighbourhood must be 'moore' or 'von_neumann', got {neighbourhood!r}")
    offsets = [(1, 0), (0, 1)] + ([(1, 1), (1, -1)] if neighbourhood == "moore" else [])
    y, x = np.divmod(np.arange(width * height, dtype=np.int64), width)
    us, vs = [], []
    for dx, dy in offsets:
        nx, ny = x + dx, y + dy
        if periodic:
            nx, ny = nx % width, ny % height
            keep = np.ones_like(nx, bool)
        else:
            keep = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        us.append((y * width + x)[keep])
        vs.append((ny * width + nx)[keep])
    return EdgeList.from_pairs(np.concatenate(us), np.concatenate(vs))


# -------------------------------------------------------------------------- populations
def population(
    n: int,
    layers: Mapping[str, EdgeList] | None = None,
    *,
    attributes: Mapping[str, np.ndarray] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    metadata: Mapping | None = None,
) -> Population:
    """A :class:`~jaxsim.population.Population` of ``n`` agents with contact ``layers``
    (``{name: EdgeList}``) and coded ``attributes`` (``{name: int [N]}``, with ``labels``).
    Without attributes it gets ``everyone`` (one category, ``"all"``): every population
    has at least one attribute, and one group of everybody is a grouping too."""
    n = _check_agents(n)
    attributes = {k: np.asarray(v) for k, v in (attributes or {}).items()}
    labels = {k: list(v) for k, v in (labels or {}).items()}
    if not attributes:
        attributes = {"everyone": np.zeros(n, np.int32)}
        labels.setdefault("everyone", ["all"])
    return Population(attributes=attributes, labels=labels, networks=dict(layers or {}),
                      metadata=dict(metadata or {}))


__all__ = [
    "barabasi_albert",
    "configuration_model",
    "erdos_renyi",
    "grid_2d",
    "grouped_configuration_model",
    "household_cliques",
    "households_and_communities",
    "negative_binomial_degrees",
    "population",
    "watts_strogatz",
]
