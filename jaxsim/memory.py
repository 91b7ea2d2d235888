"""Memory estimates, checked before allocating, so that a population too large for the
device is refused with the numbers instead of an out-of-memory crash.

The estimates follow the array layout of :mod:`jaxsim.graph` and the model's own shapes:

- world: the bytes of its per-agent arrays per slot (1 per coded attribute below 127
  categories), and per contact layer 8 bytes per directed edge (source, destination), 4
  more if weighted, plus 4 bytes per slot of row offsets, plus its inputs
  (:func:`world_bytes`);
- state: the bytes of the model's initial state, from its shapes (:func:`state_bytes`,
  ``jax.eval_shape`` of ``model.init``: nothing is allocated), per ensemble member;
- working memory of a day: the model's ``working_bytes_per_agent`` per slot per member
  (float temporaries: infectiousness, sums, probabilities, uniforms, masks; 48 measured
  for the COVID step, :data:`WORKING_BYTES_PER_SLOT`);
- gradients (``differentiable=True``): the state at each checkpoint (one per week) and
  one float per agent per day for the saved neighbour sums.
"""

from __future__ import annotations

import os

import numpy as np

from jaxsim.engine import padded_size
from jaxsim.errors import InputError
from jaxsim.population import Population

#: Working bytes per agent slot in a day of the COVID step (measured); the default of
#: ``Model.working_bytes_per_agent``.
WORKING_BYTES_PER_SLOT = 48
#: Headroom kept free on the device (allocator slack, the runtime itself).
HEADROOM = 0.9


class InsufficientMemoryError(InputError, MemoryError):
    """A run would not fit in the device's memory; the message gives both figures."""


def tree_bytes(tree) -> int:
    """Bytes of the array leaves of a pytree (shapes only; works on abstract values)."""
    import jax

    return int(sum(np.prod(np.shape(x), dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(tree) if hasattr(x, "dtype")))


def world_bytes(
    population: Population,
    layers: list[str] | None = None,
    *,
    per_slot_bytes: int = 0,
    input_bytes: int = 0,
) -> int:
    """Bytes of the device arrays of a world on ``population``: ``per_slot_bytes`` of
    per-agent arrays per slot, the contact layers ``layers`` (default all) and
    ``input_bytes`` of inputs (see :func:`jaxsim.world.make_world`)."""
    slots = padded_size(population.size)
    total = int(per_slot_bytes) * slots + int(input_bytes)
    for name in layers if layers is not None else population.networks:
        edges = population.networks[name]
        directed = 2 * edges.num_edges
        total += directed * (8 + (4 if edges.weight is not None else 0)) + 4 * (slots + 1)
    return total


def state_bytes(model, params, world) -> int:
    """Bytes of one member's state: the shapes of ``model.init(key, params, world)``
    (evaluated abstractly, nothing allocated)."""
    import jax

    from jaxsim import engine

    # The key is made inside the abstract evaluation: made outside, it would run (and load) programs.
    shape = jax.eval_shape(lambda: engine.initial_state(model, jax.random.key(0), params, world))
    return tree_bytes(shape)


def run_bytes(
    model,
    params,
    world,
    days: int,
    *,
    members: int = 1,
    differentiable: bool = False,
) -> int:
    """Estimated peak device bytes of ``members`` runs of ``model`` for ``days`` days
    sharing ``world``: the world, and per member its state, the model's working memory of
    a day and, with gradients, a state per checkpointed week and the saved sums."""
    slots = world.num_slots
    state = state_bytes(model, params, world)
    per_member = state + int(model.working_bytes_per_agent) * slots
    if differentiable:
        weeks = -(-int(days) // 7)
        per_member += weeks * state + int(days) * 4 * slots
    return tree_bytes(world) + int(members) * per_member


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
