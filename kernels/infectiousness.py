"""Infectiousness over time since infection: a discretised Gamma profile."""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc


def gamma_infectiousness_profile(
    mean_days: float = 5.5, sd_days: float = 2.4, max_days: int = 21
) -> np.ndarray:
    """Daily infectiousness weights ``g[d]`` for ``d = t - t_infected`` days since infection.

    ``g[d] = F(d + 1) - F(d)``, where ``F`` is the CDF of a Gamma distribution with the
    given mean and standard deviation (days): the share of an agent's infectiousness that
    falls on day ``d`` of its infection. The defaults (mean 5.5 d, sd 2.4 d) are the
    COVID-19 generation-interval estimate of Ferretti et al. (Science, 2020) used by
    differentiable-ABM work on COVID.

    Args:
        mean_days, sd_days: Gamma mean and standard deviation, in days (> 0).
        max_days: length of the profile; later days have weight 0.

    Returns:
        float32 ``[max_days]``, non-negative, summing to ``F(max_days) <= 1``.
    """
    if not (mean_days > 0 and sd_days > 0):
        raise ValueError(f"infectiousness profile needs mean_days > 0 and sd_days > 0, got {mean_days}, {sd_days}")
    if int(max_days) < 1:
        raise ValueError(f"infectiousness profile needs max_days >= 1, got {max_days}")
    shape = (mean_days / sd_days) ** 2
    scale = sd_days**2 / mean_days
    edges = np.arange(int(max_days) + 1, dtype=np.float64)
    cdf = gammainc(shape, edges / scale)
    return np.diff(cdf).astype(np.float32)
