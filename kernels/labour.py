"""The labour side of the economy: who works today, willingness to work, earnings, taxes,
redistribution, consumption and savings, prices, and the regional labour market.

Pure functions over agent arrays ``[N]`` and per-region arrays ``[B]`` (regions such as
New York City's boroughs). Units:

- money in US dollars (USD) at the prices of the run's first month unless stated; a
  "month" is a calendar month of the run;
- wages are USD per month of full-time work (every working day of the month worked);
- probabilities are per month for job flows and willingness, per day for work;
- case signals are reported COVID-19 cases per 1,000 residents over a month;
- unemployment-insurance (UI) claims rates are beneficiaries per person in the labour force.

Employment may be 0/1 (an agent-based run, each flow drawn through :mod:`jaxsim.sampling`)
or a probability in ``[0, 1]`` (the expected, mean-field run used for calibration): the
transition kernels accept both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxsim.kernels.lookup import lookup


def sum_by_code(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """``out[k] = sum(values[codes == k])``: float32 ``[num_codes]`` for values ``[N]``, or
    ``[num_codes, F]`` for ``F`` columns of values ``[N, F]`` summed in one pass (one
    small matrix product: stacking the month's totals keeps the compiled program small).
    Codes outside ``0 .. num_codes - 1`` (padding) count nowhere."""
    onehot = (codes.astype(jnp.int32)[:, None] == jnp.arange(num_codes)[None, :]).astype(jnp.float32)
    values = values.astype(jnp.float32)
    precision = jax.lax.Precision.HIGHEST
    if values.ndim == 1:
        return jnp.dot(values, onehot, precision=precision)
    return jnp.dot(onehot.T, values, precision=precision)


# ------------------------------------------------------------------------------- daily
def works_today(
    employed: jax.Array, willing: jax.Array, able: jax.Array, workday: jax.Array
) -> jax.Array:
    """float32 ``[N]``: the agent works today (1) or not (0).

    An agent works on a working day when it has a job, is willing to work this month and
    is able to (its health lets it work today: a bridge from the epidemic model); all arguments are 0/1 (or probabilities, giving
    the probability of working).

    Args:
        employed, willing, able: float ``[N]``.
        workday: float or bool scalar, 1 on a working day (Monday to Friday).
    """
    return (employed * willing * able * jnp.asarray(workday, jnp.float32)).astype(jnp.float32)


# ----------------------------------------------------------------------- willingness
def _clipped_logit(probability: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """``(q, logit(q))`` with ``q = clip(probability, eps, 1 - eps)``."""
    q = jnp.clip(probability, eps, 1.0 - eps)
    return q, jnp.log(q) - jnp.log1p(-q)


def heuristic_willingness(
    baseline: jax.Array,
    case_signal: jax.Array,
    price_level: jax.Array,
    savings_cushion: jax.Array,
    case_sensitivity: jax.Array,
    price_sensitivity: jax.Array,
    savings_sensitivity: jax.Array,
) -> jax.Array:
    """Probability of being willing to work this month, from the month's circumstances.

    ``w = sigmoid(logit(baseline) - case_sensitivity * log1p(case_signal)
    + price_sensitivity * log(price_level) - savings_sensitivity * log1p(savings_cushion))``

    More cases make people less willing to go to work; higher prices (a lower real value
    of savings and benefits) more willing; a larger savings cushion less willing.

    Args:
        baseline: float ``[N]`` (or ``[G]``) in (0, 1), willingness with no cases, prices
            at their level of the first month and no savings.
        case_signal: float, reported cases per 1,000 residents last month (>= 0).
        price_level: float scalar, price index (1 in the run's first month, > 0).
        savings_cushion: float, savings in months of wages (>= 0).
        case_sensitivity, price_sensitivity, savings_sensitivity: float scalars, log-odds
            per unit of each signal.

    Returns:
        float32 probabilities, broadcast shape of the arguments.
    """
    _, logit = _clipped_logit(baseline, 1e-6)
    logit = (
        logit
        - case_sensitivity * jnp.log1p(jnp.maximum(case_signal, 0.0))
        + price_sensitivity * jnp.log(jnp.maximum(price_level, 1e-6))
        - savings_sensitivity * jnp.log1p(jnp.maximum(savings_cushion, 0.0))
    )
    return jax.nn.sigmoid(logit).astype(jnp.float32)


#: The resolution at which the willingness alignment reads a probability: answers below it
#: or above ``1 -`` it (an LLM's "0" or "1.0") are read as it, so that they sit at log-odds
#: of +-4.6 rather than dominating a fit from +-13.8 (a float's end).
ALIGNMENT_RESOLUTION = 0.01


def _alignment_parts(probability, scale, offset):
    """``(q, L, g, value)``: the probability read at the resolution, its logit, the map
    ``sigmoid(scale L + offset)``, and the alignment's value (``probability`` at (1, 0))."""
    q, logit = _clipped_logit(probability, ALIGNMENT_RESOLUTION)
    mapped = jax.nn.sigmoid(scale * logit + offset)
    identity = (scale == 1.0) & (offset == 0.0)
    return q, logit, mapped, jnp.where(identity, probability, mapped)


@jax.custom_jvp
def _aligned(probability, scale, offset):
    return _alignment_parts(probability, scale, offset)[3]


@_aligned.defjvp
def _aligned_jvp(primals, tangents):
    probability, scale, offset = primals
    d_probability, d_scale, d_offset = tangents
    q, logit, mapped, value = _alignment_parts(probability, scale, offset)
    inside = (probability > ALIGNMENT_RESOLUTION) & (probability < 1.0 - ALIGNMENT_RESOLUTION)
    d_logit = jnp.where(inside, d_probability / (q * (1.0 - q)), 0.0)
    tangent = mapped * (1.0 - mapped) * (scale * d_logit + logit * d_scale + d_offset)
    return value, tangent


def aligned_willingness(probability: jax.Array, scale: jax.Array, offset: jax.Array) -> jax.Array:
    """``sigmoid(scale * logit(p) + offset)``: a willingness probability (a heuristic's or a
    language model's answer) mapped by a calibrated alignment in log-odds.

    The map is smooth in ``scale`` and ``offset`` (a clip ``a p + b`` saturates at 1 for
    the willingness of about 0.9 that the labour market sees, where a fit has no
    gradient). ``p`` is read at :data:`ALIGNMENT_RESOLUTION`: clipped to [0.01, 0.99]
    before the logit (an answer of 1.0 counts as 0.99). Scale 1 and offset 0 return
    ``probability`` itself, bit for bit (also under ``vmap`` over batched parameters),
    and the derivatives there are those of the sigmoid map (a custom JVP: ``g (1 - g)
    (a dL + L da + db)`` with ``g`` the mapped value, ``L`` the logit, ``dL`` zero outside
    the resolution), so a fit starting at (1, 0) moves as from any other point; the value
    jumps there only for ``p`` outside [0.01, 0.99] (from ``p`` to the map of the clipped
    ``p``, at most 0.01).

    Args:
        probability: float in [0, 1], any shape.
        scale: float scalar (or broadcastable) >= 0, log-odds multiplier (1: unchanged,
            < 1 pulls answers toward ``sigmoid(offset)``, 0 makes them all that).
        offset: float scalar (or broadcastable), log-odds added (0: unchanged).

    Returns:
        float32, the broadcast shape of the arguments, in [0, 1].
    """
    p = jnp.asarray(probability, jnp.float32)
    scale = jnp.asarray(scale, jnp.float32)
    offset = jnp.asarray(offset, jnp.float32)
    shape = jnp.broadcast_shapes(p.shape, scale.shape, offset.shape)
    return _aligned(jnp.broadcast_to(p, shape), jnp.broadcast_to(scale, shape), jnp.broadcast_to(offset, shape))


# ------------------------------------------------------------------------------ money
def monthly_earnings(wage: jax.Array, days_worked: jax.Array, workdays: jax.Array) -> jax.Array:
    """Gross earnings over the month, USD ``[N]``: ``wage * days_worked / workdays``.

    Args:
        wage: float ``[N]`` USD per month of full-time work.
        days_worked: float ``[N]`` days the agent worked this month.
        workdays: float scalar, working days of the month that the run covered (0 gives 0).
    """
    return (wage * days_worked / jnp.maximum(workdays, 1.0)).astype(jnp.float32)


def unemployment_benefit(
    unemployed: jax.Array, wage: jax.Array, replacement: jax.Array, cap: jax.Array
) -> jax.Array:
    """UI benefit over the month, USD ``[N]``: ``unemployed * min(replacement * wage, cap)``.

    Args:
        unemployed: float ``[N]`` 1 for a living agent of the labour force without a job.
        wage: float ``[N]`` the wage of the agent's occupation (its last job), USD/month.
        replacement: float scalar in [0, 1], share of the wage replaced.
        cap: float scalar, the most a claimant receives per month (USD).
    """
    return (unemployed * jnp.minimum(replacement * wage, cap)).astype(jnp.float32)


def progressive_tax(income: jax.Array, thresholds: jax.Array, rates: jax.Array) -> jax.Array:
    """Tax on monthly income, USD ``[N]``, from a bracket schedule.

    Income between ``thresholds[k]`` and ``thresholds[k + 1]`` is taxed at ``rates[k]``
    (the last bracket is open-ended). With increasing rates the tax is progressive: the
    average rate grows with income, and tax never exceeds income when rates are <= 1.

    Args:
        income: float ``[N]`` taxable income (USD per month); negative income pays none.
        thresholds: float ``[K]`` lower edges of the brackets, increasing, ``thresholds[0] = 0``.
        rates: float ``[K]`` marginal rates in [0, 1].
    """
    upper = jnp.concatenate([thresholds[1:], jnp.full((1,), jnp.inf, thresholds.dtype)])
    width = upper - thresholds
    in_bracket = jnp.clip(income[..., None] - thresholds, 0.0, width)
    return jnp.sum(in_bracket * rates, axis=-1).astype(jnp.float32)


def redistribute(total: jax.Array, recipients: jax.Array) -> jax.Array:
    """Share ``total`` (USD) equally among ``recipients`` (float ``[N]`` 0/1 weights):
    ``total * recipients / sum(recipients)``, USD ``[N]``. The transfers add up to
    ``total`` (up to float rounding); with no recipients nobody gets anything."""
    count = jnp.sum(recipients)
    return jnp.where(count > 0, total * recipients / jnp.maximum(count, 1e-30), 0.0).astype(jnp.float32)


def consumption_and_savings(
    income: jax.Array,
    savings: jax.Array,
    subsistence: jax.Array,
    price_level: jax.Array,
    mpc: jax.Array,
    wealth_mpc: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """This month's spending and the savings left, USD ``[N]`` each.

    Desired spending is the cost of subsistence at today's prices, plus a share ``mpc`` of
    the income left above it, plus a share ``wealth_mpc`` of savings; an agent cannot
    borrow, so spending is at most savings + income and never negative. Exactly
    ``income = consumption + (new_savings - savings)`` for every agent.

    Args:
        income: float ``[N]`` disposable income this month (USD, after tax and transfers).
        savings: float ``[N]`` savings at the start of the month (USD, >= 0).
        subsistence: float ``[N]`` spending needed at price level 1 (USD per month).
        price_level: float scalar, today's price index.
        mpc: float scalar in [0, 1], marginal propensity to consume out of income.
        wealth_mpc: float scalar in [0, 1], share of savings spent per month.
    """
    need = subsistence * price_level
    desired = need + mpc * jnp.maximum(income - need, 0.0) + wealth_mpc * jnp.maximum(savings, 0.0)
    available = jnp.maximum(savings + income, 0.0)
    consumption = jnp.clip(desired, 0.0, available)
    new_savings = savings + income - consumption
    return consumption.astype(jnp.float32), new_savings.astype(jnp.float32)


def price_update(
    price_level: jax.Array,
    demand: jax.Array,
    output: jax.Array,
    previous_ratio: jax.Array,
    adjustment: jax.Array,
    max_monthly_change: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Next month's price index from the change in excess demand.

    With ``r = demand / output`` this month and ``r_prev`` last month,
    ``log p' = log p + clip(adjustment * log(r / r_prev), -c, c)``: prices rise when
    spending grows faster than what the workers produce (valued at their earnings) and
    fall back when it slows, so without a clip the price level is
    ``(r / r_first) ** adjustment``: it follows the excess demand, with no drift of its own.
    In the first month (``r_prev <= 0``) prices stay put.

    Args:
        price_level: float scalar, this month's index.
        demand: float scalar, total consumption this month (USD).
        output: float scalar, total gross earnings this month (USD).
        previous_ratio: float scalar, last month's ``demand / output`` (0: none yet).
        adjustment: float scalar >= 0, elasticity of prices to excess demand.
        max_monthly_change: float scalar ``c`` >= 0, the largest log change per month.

    Returns:
        ``(next price level, this month's ratio)`` float32 scalars.
    """
    ratio = jnp.maximum(demand, 1e-6) / jnp.maximum(output, 1e-6)
    gap = jnp.where(previous_ratio > 0, jnp.log(ratio) - jnp.log(jnp.maximum(previous_ratio, 1e-6)), 0.0)
    change = jnp.clip(adjustment * gap, -max_monthly_change, max_monthly_change)
    return (price_level * jnp.exp(change)).astype(jnp.float32), ratio.astype(jnp.float32)


# ----------------------------------------------------------------------- labour market
def job_flow_probabilities(
    region: jax.Array,
    willing: jax.Array,
    separation_logit: jax.Array,
    hiring_logit: jax.Array,
    case_signal: jax.Array,
    claims_rate: jax.Array,
    separation_case_sensitivity: jax.Array,
    hiring_claims_sensitivity: jax.Array,
    quit_if_unwilling: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Each agent's probability of losing its job and of finding one at the month's end.

    In region ``b``:

    - layoffs ``s_b = sigmoid(separation_logit_b + separation_case_sensitivity *
      log1p(case_signal_b))``: more cases, more layoffs;
    - hiring ``h_b = sigmoid(hiring_logit_b + hiring_claims_sensitivity *
      100 * claims_rate_b)``: the claims rate in percent of the labour force (a negative
      sensitivity: more claimants, a slacker market, fewer hires);
    - an employed agent leaves its job with ``1 - (1 - s_b)(1 - q (1 - willing))``: laid
      off, or quitting with probability ``q = quit_if_unwilling`` when unwilling to work;
    - an unemployed agent is hired with ``h_b * willing``: only those willing to work look.

    Args:
        region: int ``[N]`` region codes (``0 .. B-1``; others, e.g. padding, read
            probability 0).
        willing: float ``[N]`` 0/1 willingness this month (or its probability).
        separation_logit, hiring_logit: float ``[B]``.
        case_signal: float ``[B]`` reported cases per 1,000 residents this month.
        claims_rate: float ``[B]`` UI beneficiaries per person in the labour force.
        separation_case_sensitivity, hiring_claims_sensitivity, quit_if_unwilling: float scalars.

    Returns:
        ``(leave, hire)`` float32 ``[N]`` probabilities in [0, 1].
    """
    layoff_b = jax.nn.sigmoid(separation_logit + separation_case_sensitivity * jnp.log1p(jnp.maximum(case_signal, 0.0)))
    hire_b = jax.nn.sigmoid(hiring_logit + hiring_claims_sensitivity * 100.0 * claims_rate)
    layoff = lookup(layoff_b, region)
    hire = lookup(hire_b, region)
    quit_prob = jnp.clip(quit_if_unwilling, 0.0, 1.0) * (1.0 - willing)
    leave = 1.0 - (1.0 - layoff) * (1.0 - quit_prob)
    return jnp.clip(leave, 0.0, 1.0).astype(jnp.float32), jnp.clip(hire * willing, 0.0, 1.0).astype(jnp.float32)


def next_employment(employed: jax.Array, leaves: jax.Array, hired: jax.Array) -> jax.Array:
    """Employment after the month's job flows: ``employed * (1 - leaves) + (1 - employed) * hired``.

    With 0/1 ``employed`` and 0/1 draws ``leaves``/``hired`` this is the agent-based
    transition; with probabilities it is the expected one (each agent's probability of
    holding a job next month), exact when the flows are independent of each other.
    """
    return (employed * (1.0 - leaves) + (1.0 - employed) * hired).astype(jnp.float32)


def unemployment_rate(
    employed: jax.Array, active: jax.Array, region: jax.Array, num_regions: int
) -> tuple[jax.Array, jax.Array]:
    """Unemployment rate and labour force per region.

    Args:
        employed: float ``[N]`` 0/1 (or probability of) holding a job.
        active: float ``[N]`` 1 for a living member of the labour force.
        region: int ``[N]`` region codes.

    Returns:
        ``(rate, labour_force)`` float32 ``[B]``; ``rate = unemployed / labour force`` in
        [0, 1] by construction (0 where a region has no labour force).
    """
    active = jnp.clip(active, 0.0, 1.0)
    employed = jnp.clip(employed, 0.0, 1.0)
    force = sum_by_code(active, region, num_regions)
    unemployed = sum_by_code(active * (1.0 - employed), region, num_regions)
    rate = jnp.where(force > 0, unemployed / jnp.maximum(force, 1e-30), 0.0)
    return jnp.clip(rate, 0.0, 1.0).astype(jnp.float32), force


__all__ = [
    "ALIGNMENT_RESOLUTION",
    "aligned_willingness",
    "consumption_and_savings",
    "heuristic_willingness",
    "job_flow_probabilities",
    "monthly_earnings",
    "next_employment",
    "price_update",
    "progressive_tax",
    "redistribute",
    "sum_by_code",
    "unemployment_benefit",
    "unemployment_rate",
    "works_today",
]
