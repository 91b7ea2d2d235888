"""Final epidemic sizes the SIR/SEIR model should reproduce (host-side numpy).

Per-edge transmissibility. With the model's order of events (:mod:`.model`), an agent
infectious on day ``t`` transmits during day ``t`` and then recovers at the end of the day
with probability ``gamma``, so it transmits on ``D`` days with ``D`` geometric on ``1, 2,
...`` (``P(D = d) = gamma (1 - gamma)^(d - 1)``, mean ``1 / gamma``). A contact of weight 1
escapes infection on each of those days with probability ``1 - tau``, so the probability
that the contact is ever infected by it (if it stays susceptible) is::

    T = 1 - E[(1 - tau)^D] = 1 - gamma (1 - tau) / (1 - (1 - gamma)(1 - tau))
      = tau / (tau + gamma - tau gamma).

The latent period (SEIR) only delays transmission; it does not change ``T``.

Final size. Whether an agent is ever infected depends on its *incoming* edges only
(transmissions from distinct infectious neighbours are independent given their infectious
periods, and the draws of one agent on one day combine as ``1 - (1 - tau)^k``), so the
attack rate is that of a bond percolation with independent edges open with probability
``T`` (Newman, Phys. Rev. E 66, 016128, 2002; why this holds for the attack rate, though
not for the outbreak probability, when ``D`` varies: Kenah & Robins, Phys. Rev. E 76,
036113, 2007). On a configuration-model network with degree generating function ``G0``
(``G1 = G0' / G0'(1)``) and a share ``rho`` of random agents infectious on day 0, the
share ``z`` of the initially susceptible agents infected by the end solves::

    v = (1 - rho) G1(1 - T + T v),     z = 1 - G0(1 - T + T v),

where ``v`` is the probability that a neighbour is not infected through its other edges;
``rho -> 0`` gives Newman's ``u = G1(1 - T + T u)`` for a major outbreak. Poisson degrees of
mean ``k`` (Erdos-Renyi) give ``1 - z = exp(-k T (rho + (1 - rho) z))``, which is also the
mass-action (well-mixed) final-size relation ``z = 1 - exp(-R0 z)`` with ``R0 = k T``
(Kermack & McKendrick 1927) at ``rho -> 0``.
"""

from __future__ import annotations

import numpy as np

import jaxsim


def _probability(name: str, value) -> float:
    value = float(value)
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise jaxsim.InputError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


def transmissibility(tau: float, gamma: float, weight: float = 1.0) -> float:
    """``T = tau / (tau + gamma - tau gamma)``: the probability that an infectious agent
    infects one given susceptible contact of weight 1 over its whole infectious period
    (1 when ``gamma = 0`` and ``tau > 0``; 0 when ``tau = 0``).

    For a contact of weight ``w`` (daily escape probability ``a = (1 - tau)^w``):
    ``T_w = (1 - a) / (1 - (1 - gamma) a)``.
    """
    tau, gamma = _probability("tau", tau), _probability("gamma", gamma)
    weight = float(weight)
    if not (np.isfinite(weight) and weight >= 0):
        raise jaxsim.InputError(f"weight must be a finite number >= 0, got {weight!r}")
    if tau == 0.0 or weight == 0.0:
        return 0.0
    if weight == 1.0:
        return tau / (tau + gamma - tau * gamma)
    escape = (1.0 - tau) ** weight
    return (1.0 - escape) / (1.0 - (1.0 - gamma) * escape)


def basic_reproduction_number(transmissibility_: float, degree_pmf=None, *, mean_degree: float | None = None) -> float:
    """``R0 = T <k(k-1)> / <k>`` on a configuration-model network (the mean excess degree
    times ``T``): ``T k`` for Poisson degrees of mean ``k`` (give ``mean_degree``), else
    from ``degree_pmf`` (``pmf[k]`` = share of agents with degree ``k``)."""
    t = _probability("transmissibility", transmissibility_)
    if mean_degree is not None:
        return t * float(mean_degree)
    pmf = _pmf(degree_pmf)
    k = np.arange(pmf.shape[0], dtype=np.float64)
    return t * float(np.sum(k * (k - 1) * pmf) / np.sum(k * pmf))


def _pmf(degree_pmf) -> np.ndarray:
    pmf = np.asarray(degree_pmf, np.float64)
    if pmf.ndim != 1 or pmf.size < 2 or np.any(pmf < 0) or not np.all(np.isfinite(pmf)) or pmf.sum() <= 0:
        raise jaxsim.InputError("degree_pmf must be a 1-D array of shares >= 0 (index = degree) with a positive sum")
    pmf = pmf / pmf.sum()
    if np.sum(np.arange(pmf.shape[0]) * pmf) <= 0:
        raise jaxsim.InputError("degree_pmf: every agent has degree 0")
    return pmf


def degree_pmf(degrees) -> np.ndarray:
    """The empirical degree distribution of ``degrees`` (``pmf[k]`` = share with degree ``k``)."""
    degrees = np.asarray(degrees)
    return np.bincount(degrees.astype(np.int64)) / degrees.shape[0]


def _smallest_fixed_point(fn, tol: float = 1e-14, max_iter: int = 1_000_000) -> float:
    """The smallest ``v`` in ``[0, 1]`` with ``v = fn(v)`` for an increasing ``fn`` on
    ``[0, 1]`` with ``fn(0) >= 0``: iterate from 0 (monotone convergence; slow only right
    at an epidemic threshold, which the callers answer without iterating)."""
    v = 0.0
    for _ in range(max_iter):
        nxt = fn(v)
        if abs(nxt - v) < tol:
            return nxt
        v = nxt
    return v  # pragma: no cover  (only at the epidemic threshold)


def final_size_configuration(degree_pmf_, transmissibility_: float, initial_share: float = 0.0) -> float:
    """Share of the initially susceptible agents infected by the end, on a configuration
    model network with degree distribution ``degree_pmf_`` (``pmf[k]``), per-edge
    transmissibility ``T`` and a share ``initial_share`` of random agents infectious on
    day 0 (``0``: a major outbreak from a vanishing seed; ``0`` below the threshold)."""
    pmf = _pmf(degree_pmf_)
    t = _probability("transmissibility", transmissibility_)
    rho = _probability("initial_share", initial_share)
    k = np.arange(pmf.shape[0], dtype=np.float64)
    excess = k[1:] * pmf[1:]
    excess = excess / excess.sum()  # G1's coefficients: q[k - 1] = k p_k / <k>

    def g0(x):
        return float(np.sum(pmf * x ** k))

    def g1(x):
        return float(np.sum(excess * x ** k[:-1]))

    if rho == 0.0 and basic_reproduction_number(t, pmf) <= 1.0:
        return 0.0  # no major outbreak
    v = _smallest_fixed_point(lambda v: (1.0 - rho) * g1(1.0 - t + t * v))
    return 1.0 - g0(1.0 - t + t * v)


def final_size_poisson(mean_degree: float, transmissibility_: float, initial_share: float = 0.0) -> float:
    """:func:`final_size_configuration` for Poisson degrees of mean ``mean_degree``
    (Erdos-Renyi): the ``z`` solving ``1 - z = exp(-k T (rho + (1 - rho) z))``."""
    return final_size_mass_action(float(mean_degree) * _probability("transmissibility", transmissibility_),
                                  initial_share)


def final_size_mass_action(r0: float, initial_share: float = 0.0) -> float:
    """Share of the initially susceptible agents infected by the end in a well-mixed
    population with basic reproduction number ``r0``: the smallest root of
    ``1 - z = exp(-R0 (rho + (1 - rho) z))`` (``z = 1 - exp(-R0 z)`` for ``rho = 0``, the
    major-outbreak root; 0 for ``R0 <= 1``)."""
    r0 = float(r0)
    if not (np.isfinite(r0) and r0 >= 0):
        raise jaxsim.InputError(f"r0 must be a finite number >= 0, got {r0!r}")
    rho = _probability("initial_share", initial_share)
    if rho == 0.0 and r0 <= 1.0:
        return 0.0  # no major outbreak
    # In terms of the escape probability e = 1 - z: e = exp(-R0 (1 - (1 - rho) e)); the
    # smallest e is the largest epidemic.
    e = _smallest_fixed_point(lambda e: float(np.exp(-r0 * (1.0 - (1.0 - rho) * e))))
    return 1.0 - e


__all__ = [
    "basic_reproduction_number",
    "degree_pmf",
    "final_size_configuration",
    "final_size_mass_action",
    "final_size_poisson",
    "transmissibility",
]
