"""Memory estimates, checked before allocating, so that a population too large for the
device is refused with the numbers instead of an out-of-memory crash.

The estimates follow the array layout of :mod:`jaxsim.graph` and :mod:`jaxsim.covid`:

- world: 2 bytes per agent slot (age and isolation-group codes), and per contact layer 8
  bytes per directed edge (source, destination), 4 more if weighted, plus 4 bytes per
  slot of row offsets;
- state: 7 bytes per slot (stage, day of infection, isolating) per ensemble member;
- working memory of a day: about :data:`WORKING_BYTES_PER_SLOT` bytes per slot per member
  (float temporaries: infectiousness, pressure, probabilities, uniforms, masks);
- gradients (``differentiable=True``): the state at each checkpoint (one per week) and
  one float per agent per day for the saved contact sums.
"""

from __future__ import annotations

import os

from jaxsim.engine import padded_size
from jaxsim.population import Population

WORKING_BYTES_PER_SLOT = 48
STATE_BYTES_PER_SLOT = 7
#: Headroom kept free on the device (allocator slack, the runtime itself).
HEADROOM = 0.9


class InsufficientMemoryError(MemoryError):
    """A run would not fit in the device's memory; the message gives both figures."""


def world_bytes(population: Population, layers: list[str] | None = None) -> int:
    """Bytes of the device arrays :func:`jaxsim.covid.build_world` allocates."""
    slots = padded_size(population.size)
    total = 2 * slots
    for name in layers if layers is not None else population.networks:
        edges = population.networks[name]
        directed = 2 * edges.num_edges
        total += directed * (8 + (4 if edges.weight is not None else 0)) + 4 * (slots + 1)
    return total


def run_bytes(
    population: Population,
    days: int,
    *,
    members: int = 1,
    differentiable: bool = False,
    layers: list[str] | None = None,
) -> int:
    """Estimated peak device bytes of ``members`` runs of ``days`` days sharing one world."""
    slots = padded_size(population.size)
    per_member = (STATE_BYTES_PER_SLOT + WORKING_BYTES_PER_SLOT) * slots
    if differentiable:
        weeks = -(-int(days) // 7)
        per_member += weeks * STATE_BYTES_PER_SLOT * slots + int(days) * 4 * slots
    return world_bytes(population, layers) + int(members) * per_member


def device_capacity_bytes(device=None) -> int | None:
    """Memory the device can still give: the accelerator's limit less what is in use, or
    for the CPU the host's available memory; ``None`` when unknown."""
    import jax

    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # not every backend reports
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"


def check_fits(needed: int, what: str, device=None, capacity: int | None = None) -> None:
    """Raise :class:`InsufficientMemoryError` when ``needed`` bytes exceed the device's
    usable capacity (``HEADROOM`` of what it can still give)."""
    import jax

    device = device or jax.devices()[0]
    capacity = device_capacity_bytes(device) if capacity is None else capacity
    if capacity is None:
        return
    if needed > HEADROOM * capacity:
        raise InsufficientMemoryError(
            f"{what} needs about {_gib(needed)} on {device.platform}:{device.id}, which has "
            f"{_gib(capacity)} available ({int(HEADROOM * 100)}% usable): use fewer agents or "
            "ensemble members, or a device with more memory"
        )
