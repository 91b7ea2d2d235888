"""Schelling's segregation model: households of two types on a 2-D grid move away when
too few of their neighbours are like them (Schelling, J. Math. Sociology 1, 1971; the
NetLogo "Segregation" model, Wilensky 1997).

A model package on the public jaxsim API only (``jaxsim``, :mod:`jaxsim.kernels.grid`,
:mod:`jaxsim.generators`, :mod:`jaxsim.world`, :mod:`jaxsim.parameters`)::

    import jax, jaxsim
    from jaxsim.models import schelling

    model = schelling.schelling_model()                  # Moore neighbourhood on a torus
    sim = jaxsim.Sim(model, schelling.grid_population(80, 80), days=60, threshold=0.3)
    result = sim.run(seed=0)
    result.metrics["segregation"][-1]                    # ~0.75 from ~0.5 at the start

    world = schelling.grid_world(80, 80)                 # or step by step
    params = schelling.default_params(world, threshold=0.3, density=0.9)
    state = model.init(jax.random.key(1), params, world)
    run = jaxsim.run(model, jax.random.key(0), state, params, world, days=60)

The grid's size is the shape of ``world.inputs["grid"]`` (int8 ``[H, W]``, 1 for cells
households may live on); the world has one agent slot per cell, vacant slots hold no
household. See :mod:`.model` for the state, the day and the metrics.
"""

from jaxsim.models.schelling.model import (
    CLOSED,
    DEFAULT_DENSITY,
    DEFAULT_THRESHOLD,
    EMPTY,
    METRICS,
    NUM_TYPES,
    VACANT,
    SchellingParams,
    SchellingState,
    build_world,
    check_params,
    default_params,
    grid_population,
    grid_shape,
    grid_world,
    initial_state,
    move_probability,
    relocate_substep,
    schelling_model,
    segregation_metrics,
)

__all__ = [
    "CLOSED",
    "DEFAULT_DENSITY",
    "DEFAULT_THRESHOLD",
    "EMPTY",
    "METRICS",
    "NUM_TYPES",
    "SchellingParams",
    "SchellingState",
    "VACANT",
    "build_world",
    "check_params",
    "default_params",
    "grid_population",
    "grid_shape",
    "grid_world",
    "initial_state",
    "move_probability",
    "relocate_substep",
    "schelling_model",
    "segregation_metrics",
]
