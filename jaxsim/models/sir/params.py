"""The SIR/SEIR model's parameters: declared once, with defaults, units, bounds and the
ranges a calibration searches.

All four are scalars (one value for every agent and contact). Probabilities are per day:
the model runs in whole days (see :mod:`jaxsim.models.sir.model` for the order of events).

Defaults and why:

- ``gamma = 0.2`` per day: a geometric infectious period of mean ``1 / gamma = 5`` days,
  the mean duration of viral shedding in human influenza (4.8 days; Carrat et al., "Time
  lines of infection and disease in human influenza: a review of volunteer challenge
  studies", Am. J. Epidemiol. 167, 775-785, 2008) and about the infectious window of
  SARS-CoV-2 (He et al., Nature Medicine 26, 672-675, 2020).
- ``tau = 0.06`` per infectious contact per day: with ``gamma = 0.2`` an infectious contact
  transmits over the whole infectious period with probability
  ``T = tau / (tau + gamma - tau gamma) = 0.242`` (:func:`.theory.transmissibility`), so on
  a contact network of mean degree 10 (the order of the 13.4 daily contacts per person of
  the POLYMOD survey; Mossong et al., PLoS Medicine 5, e74, 2008) the basic reproduction
  number is ``R0 = 10 T = 2.4``: near the 2.2 (95 % CI 1.4-3.9) estimated for early
  SARS-CoV-2 (Li et al., NEJM 382, 1199-1207, 2020) and within the 2-3 of 1918 pandemic
  influenza (Mills, Robins & Lipsitch, Nature 432, 904-906, 2004). A generic respiratory pathogen, not a fitted value:
  calibrate ``tau`` to data.
- ``sigma = 1/3`` per day (SEIR only): a geometric latent period of mean ``1 / sigma = 3``
  days from infection to the first infectious day, the SARS-CoV-2 incubation period (5.2
  days; Li et al. 2020) less the 2-3 days of pre-symptomatic transmission (He et al. 2020).
- ``initial_infected_share = 0.001``: 0.1 % of the agents infectious on day 0. An
  assumption, not data: enough seeds (100 per 100 000 agents) that a major outbreak is all
  but certain when ``R0 > 1``.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxsim
from jaxsim import parameters

#: Per-contact daily transmission probability (see the module docstring).
DEFAULT_TAU = 0.06
#: Daily recovery probability; mean infectious period ``1 / gamma = 5`` days.
DEFAULT_GAMMA = 0.2
#: Daily probability that a latent (exposed) agent becomes infectious; mean 3 days.
DEFAULT_SIGMA = 1.0 / 3.0
#: Share of agents infectious on day 0.
DEFAULT_INITIAL_INFECTED_SHARE = 0.001


@jaxsim.params
class SIRParams:
    """What calibration moves; every field a float32 scalar.

    Attributes:
        tau: probability that one infectious contact (an edge of weight 1 to an infectious
            agent) infects a susceptible agent on a given day. A susceptible agent with
            infectious neighbours of total weight ``k`` (the weighted sum over its contact
            layers) is infected that day with probability ``1 - (1 - tau)^k``.
        gamma: probability per day that an infectious agent recovers at the end of the day
            (infectious period geometric on ``1, 2, ...`` days, mean ``1 / gamma``).
        sigma: SEIR only: probability per day that an exposed agent becomes infectious at
            the end of the day (latent period, infection day to first infectious day,
            geometric on ``1, 2, ...`` days, mean ``1 / sigma``); ignored by the SIR model
            (there every infection is infectious from the next day on, ``sigma = 1``).
        initial_infected_share: probability that an agent is infectious on day 0 (the
            others are susceptible).
    """

    tau: jax.Array = jaxsim.param(
        DEFAULT_TAU, bounds=(0.0, 1.0), fit_bounds=(0.0, 0.5),
        units="probability per infectious contact per day",
        doc="per-contact daily transmission probability; default gives R0 = 2.4 at mean degree 10")
    gamma: jax.Array = jaxsim.param(
        DEFAULT_GAMMA, bounds=(0.0, 1.0), fit_bounds=(0.02, 1.0), units="probability per day",
        doc="daily recovery probability; mean infectious period 5 days (Carrat et al. 2008)")
    sigma: jax.Array = jaxsim.param(
        DEFAULT_SIGMA, bounds=(0.0, 1.0), fit_bounds=(0.05, 1.0), units="probability per day",
        doc="SEIR: daily probability latent -> infectious; mean latent period 3 days (Li et al. 2020)")
    initial_infected_share: jax.Array = jaxsim.param(
        DEFAULT_INITIAL_INFECTED_SHARE, bounds=(0.0, 1.0), fit_bounds=(0.0, 0.05),
        units="share of agents", doc="share of agents infectious on day 0 (an assumption)")


#: The declared fields, in order.
PARAM_NAMES: tuple[str, ...] = tuple(parameters.specs(SIRParams))


def default_params(world=None, **values) -> SIRParams:
    """The declared defaults with ``values`` replacing them, checked against their bounds.

    Raises:
        InputError: a value outside its bounds, not finite, or not a scalar; the message
            names the field (e.g. ``SIRParams.tau: [1.5] is outside its bounds [0.0, 1.0]``).
        LabelError: an unknown parameter name.
    """
    params = parameters.build(SIRParams, world, **values)
    validate_params(params)
    return params


def validate_params(params) -> None:
    """Raise :class:`jaxsim.InputError` naming the field when a parameter is unusable:
    not :class:`SIRParams`, outside its bounds, not finite, or not a scalar."""
    if not isinstance(params, SIRParams):
        raise jaxsim.InputError(f"the SIR model needs SIRParams, got {type(params).__name__}")
    for name in PARAM_NAMES:
        value = getattr(params, name)
        if value is None:
            raise jaxsim.InputError(f"SIRParams.{name}: missing")
        if np.shape(value) != ():
            raise jaxsim.InputError(
                f"SIRParams.{name}: must be a scalar (one value for every agent and contact), "
                f"got shape {np.shape(value)}"
            )
    parameters.check(params)


__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_INITIAL_INFECTED_SHARE",
    "DEFAULT_SIGMA",
    "DEFAULT_TAU",
    "PARAM_NAMES",
    "SIRParams",
    "default_params",
    "validate_params",
]
