"""Isolation behaviour: per-group daily isolation probabilities and their heuristic.

Agents belong to isolation groups (by default their age band; an LLM archetype layer may
use any grouping). Each week a probability ``p_iso[group]`` is set, either by the
heuristic below from the week's case signal, or supplied from outside the simulation (e.g.
by the archetype layer) as an array ``[weeks, groups]``. Each day each agent isolates with
its group's probability.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def weekly_case_signal(daily_cases: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """This week's cases and the mean weekly cases over the last four weeks.

    Args:
        daily_cases: float ``[L]`` ring buffer (``L >= 28``); entry ``(d mod L)`` holds the
            new cases (symptom onsets) of day ``d``; days before the run hold a prior.
        t: int scalar, today; "this week" is days ``t-7 .. t-1``.

    Returns:
        ``(cases_this_week, cases_4_week_average)``, float32 scalars (cases per week).
    """
    length = daily_cases.shape[0]
    if length < 28:
        raise ValueError(f"weekly_case_signal needs a ring of at least 28 days, got {length}")
    days_back = (t - 1 - jnp.arange(28)) % length  # ring positions of days t-1, ..., t-28
    recent = daily_cases[days_back]
    return recent[:7].sum(), recent.sum() / 4.0


def heuristic_isolation_probability(
    cases_this_week: jax.Array,
    cases_4_week_average: jax.Array,
    baseline: jax.Array,
    response: jax.Array,
) -> jax.Array:
    """Per-group isolation probability from how fast cases are rising.

    ``p_g = sigmoid(logit(baseline_g) + response_g * log((cases_this_week + 1) / (cases_4_week_average + 1)))``

    At a flat trend each group isolates with its baseline probability; cases doubling
    against the 4-week average shift the log-odds by ``response_g * log 2``. Smooth and
    bounded in (0, 1), so it is differentiable with respect to its parameters.

    Args:
        cases_this_week, cases_4_week_average: float scalars, cases per week.
        baseline: float ``[G]`` in (0, 1), probability of isolating on a day at a flat trend.
        response: float ``[G]``, log-odds change per unit log case ratio (>= 0: more
            isolation when cases rise).

    Returns:
        float32 ``[G]`` daily isolation probabilities.
    """
    log_ratio = jnp.log1p(cases_this_week) - jnp.log1p(cases_4_week_average)
    baseline = jnp.clip(baseline, 1e-6, 1 - 1e-6)
    logit = jnp.log(baseline) - jnp.log1p(-baseline)
    return jax.nn.sigmoid(logit + response * log_ratio).astype(jnp.float32)
