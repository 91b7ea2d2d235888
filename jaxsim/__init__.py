"""jaxsim: a fast, differentiable simulator of large populations on JAX.

A model is an ordered list of substeps ``fn(key, state, params, t, world) -> (state,
metrics)`` with its own ``init(key, params, world)``; a run is one ``lax.scan``; ensembles
are a ``vmap``, calibration a ``grad``, scale a split of the agents over devices. The
curated surface:

- building models: :class:`Model`, :class:`Substep`, :class:`Metric`, :func:`params` and
  :func:`param` (declared parameters), :func:`state` (a state pytree), :func:`compose`;
- running them: :class:`Sim` (run, ensemble, calibrate, compare, frame, plot, save),
  :func:`simulate`, :func:`run`, :func:`initial_state`;
- populations and worlds: :class:`Population`, :class:`EdgeList`, :class:`World`,
  :func:`make_world`, and :mod:`jaxsim.generators`;
- random draws with a selectable gradient estimator: :func:`bernoulli`,
  :func:`categorical`, :func:`uniform`, and :func:`differentiable` (whether the run
  being traced wants gradients); sums over neighbours: :func:`neighbour_sum`;
- errors: :class:`JaxsimError`, :class:`InputError`.

Layers (imports point down only; ``tests/test_architecture.py`` checks it):
``scenarios`` -> :mod:`jaxsim.nyc` (New York City data and setup) -> :mod:`jaxsim.models`
(covid, labour, sir, opinion, schelling) -> the core (this package's modules) ->
:mod:`jaxsim.kernels`.

Names are imported on first use, so ``import jaxsim`` is cheap.
"""

from __future__ import annotations

from jaxsim.lazy import lazy_attributes

__version__ = "0.2.0"

_EXPORTS = {
    "Model": "jaxsim.engine",
    "Substep": "jaxsim.engine",
    "Metric": "jaxsim.engine",
    "World": "jaxsim.engine",
    "simulate": "jaxsim.engine",
    "run": "jaxsim.engine",
    "initial_state": "jaxsim.engine",
    "params": "jaxsim.parameters",
    "param": "jaxsim.parameters",
    "compose": "jaxsim.coupling",
    "Sim": "jaxsim.sim",
    "Population": "jaxsim.population",
    "EdgeList": "jaxsim.population",
    "make_world": "jaxsim.world",
    "bernoulli": "jaxsim.sampling",
    "categorical": "jaxsim.sampling",
    "uniform": "jaxsim.sampling",
    "differentiable": "jaxsim.sampling",
    "neighbour_sum": "jaxsim.kernels.neighbour_sums",
    "JaxsimError": "jaxsim.errors",
    "InputError": "jaxsim.errors",
}

#: Modules reachable as attributes (``jaxsim.generators.erdos_renyi``), imported on first use.
_MODULES = {
    "behaviour", "calibration", "coupling", "engine", "ensemble", "generators", "gradcheck", "interventions",
    "kernels",
    "memory", "models", "outputs", "parameters", "population_io", "sampling", "scoring", "sharding", "sim", "world",
}

__all__ = sorted(_EXPORTS) + ["state"]


def state(cls):
    """Class decorator for a model's state: a pytree dataclass of flat ``[N]`` agent arrays
    and small per-run arrays, with ``.replace(...)`` (:func:`jaxsim.kernels.pytree.dataclass`,
    the contract of ``flax.struct.dataclass``)."""
    from jaxsim.kernels import pytree as struct

    return struct.dataclass(cls)


__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS, _MODULES)
