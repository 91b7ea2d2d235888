"""Transition kernels for jaxsim: small pure functions over agent arrays.

Installed as ``jaxsim.kernels``. Each module holds one mechanism; each function states the
units and shapes of its arguments. Kernels see only arrays: labels are resolved to codes
on the host before a run (see :class:`jaxsim.population.Population`).
"""

from jaxsim.kernels.contact_infection import (
    agent_infectiousness,
    contact_pressure,
    contact_tier,
    exposure_probability,
)
from jaxsim.kernels.infectiousness import gamma_infectiousness_profile
from jaxsim.kernels.isolation import heuristic_isolation_probability, weekly_case_signal
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.progression import seirm_progression

__all__ = [
    "agent_infectiousness",
    "contact_pressure",
    "contact_tier",
    "exposure_probability",
    "gamma_infectiousness_profile",
    "heuristic_isolation_probability",
    "weekly_case_signal",
    "lookup",
    "seirm_progression",
]
