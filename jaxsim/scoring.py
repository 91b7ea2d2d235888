"""Scores of probabilistic forecasts: weighted interval score and interval coverage.

The scores of the US COVID-19 Forecast Hub (Bracher, Ray, Gneiting & Reich, "Evaluating
epidemic forecasts in an interval format", PLoS Comput. Biol. 17, e1008618, 2021), for
forecasts given as ensembles of simulated series (``members [M, T]``: ``M`` runs, ``T``
periods), against an observed series ``[T]``:

- :func:`interval_score` ``IS_alpha = (u - l) + (2 / alpha) (l - y) 1{y < l} + (2 / alpha)
  (y - u) 1{y > u}`` of the central ``(1 - alpha)`` interval ``[l, u]`` (the members'
  ``alpha / 2`` and ``1 - alpha / 2`` quantiles);
- :func:`weighted_interval_score` ``WIS = (|y - m| / 2 + sum_k (alpha_k / 2) IS_alpha_k) /
  (K + 1 / 2)`` over the Hub's ``K = 11`` levels (:data:`HUB_ALPHAS`: the 23 quantiles
  0.01, 0.025, 0.05, 0.1, ..., 0.9, 0.95, 0.975, 0.99), ``m`` the median. It approaches
  the continuous ranked probability score as the levels become many and even (with the
  Hub's 11 levels: about 9% below it for a normal forecast); for a point forecast (every
  member equal) it is the absolute error, so a persistence forecast's WIS is its MAE;
- :func:`coverage`: the share of observed values inside the central interval of a level
  (50% and 90% in the Hub's reports).

Quantiles are the members' empirical quantiles (``numpy.quantile``, linear
interpolation): with few members the outer levels are the extreme members. Lower is
better for WIS; a calibrated forecast's 90% intervals cover about 90% of the observations.
Host-side numpy: scores are computed once per forecast, not inside a run.
"""

from __future__ import annotations

import numpy as np

from jaxsim.errors import InputError

#: The central-interval levels ``alpha`` of the Forecast Hub's WIS (K = 11; 23 quantiles
#: with the median).
HUB_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _check(members, observed) -> tuple[np.ndarray, np.ndarray]:
    members = np.asarray(members, np.float64)
    observed = np.asarray(observed, np.float64)
    if members.ndim == 1:
        members = members[None, :]
    if members.ndim != 2 or observed.ndim != 1 or members.shape[1] != observed.shape[0]:
        raise InputError(
            f"scores need members [M, T] and observed [T], got shapes {members.shape} and {observed.shape}"
        )
    if members.shape[1] == 0:
        raise InputError("scores need at least one period")
    if not (np.all(np.isfinite(members)) and np.all(np.isfinite(observed))):
        raise InputError("scores need finite members and observations")
    return members, observed


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise InputError(f"an interval level alpha must be in (0, 1), got {alpha!r}")
    return alpha


def _central(members: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    return np.quantile(members, alpha / 2, axis=0), np.quantile(members, 1 - alpha / 2, axis=0)


def _interval_score(members: np.ndarray, observed: np.ndarray, alpha: float) -> np.ndarray:
    lower, upper = _central(members, alpha)
    below = np.maximum(lower - observed, 0.0)
    above = np.maximum(observed - upper, 0.0)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def central_interval(members, level_alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The members' central ``(1 - alpha)`` interval per period: ``(lower [T], upper [T])``."""
    alpha = _check_alpha(level_alpha)
    members = np.asarray(members, np.float64)
    return _central(members[None, :] if members.ndim == 1 else members, alpha)


def interval_score(members, observed, alpha: float) -> np.ndarray:
    """``IS_alpha`` per period ``[T]`` of the members' central ``(1 - alpha)`` interval."""
    members, observed = _check(members, observed)
    return _interval_score(members, observed, _check_alpha(alpha))


def weighted_interval_score(members, observed, alphas=HUB_ALPHAS) -> np.ndarray:
    """WIS per period ``[T]`` (same units as the series; lower is better)."""
    members, observed = _check(members, observed)
    alphas = tuple(_check_alpha(a) for a in alphas)
    median = np.quantile(members, 0.5, axis=0)
    total = 0.5 * np.abs(observed - median)
    for alpha in alphas:
        total = total + (alpha / 2.0) * _interval_score(members, observed, alpha)
    return total / (len(alphas) + 0.5)


def coverage(members, observed, level: float) -> float:
    """Share of the periods whose observed value lies inside the members' central
    interval of ``level`` (e.g. 0.9), bounds included."""
    members, observed = _check(members, observed)
    level = float(level)
    if not 0.0 < level < 1.0:
        raise InputError(f"a coverage level must be in (0, 1), got {level!r}")
    lower, upper = _central(members, 1.0 - level)
    return float(np.mean((observed >= lower) & (observed <= upper)))


def forecast_scores(members, observed) -> dict[str, float]:
    """``{"wis": mean WIS, "coverage_50": ..., "coverage_90": ...}`` over the periods."""
    return {
        "wis": float(np.mean(weighted_interval_score(members, observed))),
        "coverage_50": coverage(members, observed, 0.5),
        "coverage_90": coverage(members, observed, 0.9),
    }


__all__ = [
    "HUB_ALPHAS",
    "central_interval",
    "coverage",
    "forecast_scores",
    "interval_score",
    "weighted_interval_score",
]
