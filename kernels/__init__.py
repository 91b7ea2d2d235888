"""Kernels: small pure array functions over agent arrays, the layer below every model.

Installed as ``jaxsim.kernels``. Each module holds one mechanism and imports nothing from
jaxsim but other kernels; each function states the units and shapes of its arguments.
Kernels see only arrays: labels are resolved to codes on the host before a run.

- :mod:`~jaxsim.kernels.neighbour_sums`: sums over neighbours on contact layers (push,
  pull, batched under ``vmap``, custom gradients); :mod:`~jaxsim.kernels.sharded_contacts`
  the same with the agents split over devices; :mod:`~jaxsim.kernels.layers` the layer arrays.
- :mod:`~jaxsim.kernels.edge_pairs`: random matchings of an edge list and pairwise updates
  of the matched agents (bounded-confidence opinion dynamics).
- :mod:`~jaxsim.kernels.grid`: neighbourhood counts on 2-D grids, moves to free cells.
- :mod:`~jaxsim.kernels.lookup`: per-agent values from small per-category tables.
- :mod:`~jaxsim.kernels.contact_infection`, :mod:`~jaxsim.kernels.infectiousness`,
  :mod:`~jaxsim.kernels.progression`, :mod:`~jaxsim.kernels.isolation`: infection,
  infectiousness profiles, SEIRM progression and isolation behaviour.
- :mod:`~jaxsim.kernels.labour`: the labour market, earnings, taxes and consumption.
"""

from jaxsim.kernels.contact_infection import (
    agent_infectiousness,
    exposure_probability,
    infectiousness_window,
)
from jaxsim.kernels.infectiousness import gamma_infectiousness_profile
from jaxsim.kernels.isolation import heuristic_isolation_probability, weekly_case_signal
from jaxsim.kernels.layers import ContactLayer
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.neighbour_sums import layer_sum, neighbour_sum, sparse_tier
from jaxsim.kernels.progression import seirm_progression

__all__ = [
    "ContactLayer",
    "agent_infectiousness",
    "exposure_probability",
    "gamma_infectiousness_profile",
    "heuristic_isolation_probability",
    "infectiousness_window",
    "layer_sum",
    "lookup",
    "neighbour_sum",
    "seirm_progression",
    "sparse_tier",
    "weekly_case_signal",
]
