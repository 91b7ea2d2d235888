"""Coupling models: run several models' substeps on one combined state, in one scan.

A combined state (and params) is a pytree with one field per part, e.g.
``CoupledState(covid=CovidState, economy=EconomyState)``. :func:`lift_model` turns a
model written for one part into a model of the combined state: each substep reads and
writes only its part's field, keeps its name (hence its random numbers: see
:func:`jaxsim.engine.substep_id`), and its metrics; :func:`compose` concatenates the
substeps of several models (and substeps written for the combined state, which may read
every part) into one :class:`~jaxsim.engine.Model`.

Because substep keys come from names, a lifted model draws exactly the numbers it draws
alone: an epidemic coupled to an economy that does not feed back is the plain epidemic,
draw for draw.
"""

from __future__ import annotations

from typing import Iterable

from jaxsim.engine import Model, Substep


def lift_substep(substep: Substep, state_field: str, params_field: str | None = None) -> Substep:
    """``substep`` acting on ``state.<state_field>`` with ``params.<params_field>``
    (default the same name); other fields pass through unchanged."""
    params_field = params_field or state_field
    fn = substep.fn

    def lifted(state, params, key, t, world):
        part, metrics = fn(getattr(state, state_field), getattr(params, params_field), key, t, world)
        return state.replace(**{state_field: part}), metrics

    lifted.__name__ = f"{state_field}.{substep.name}"
    return Substep(substep.name, lifted)


def lift_model(model: Model, state_field: str, params_field: str | None = None) -> Model:
    """``model`` on the field ``state_field`` of a combined state (see :func:`lift_substep`);
    its ``observe`` and ``validate`` read the same field."""
    params_field = params_field or state_field
    inner_observe, inner_validate = model.observe, model.validate

    def observe(state, world):
        return inner_observe(getattr(state, state_field), world)

    def validate(state, params, world):
        inner_validate(getattr(state, state_field), getattr(params, params_field), world)

    return Model(
        substeps=tuple(lift_substep(s, state_field, params_field) for s in model.substeps),
        observe=None if inner_observe is None else observe,
        name=model.name,
        validate=None if inner_validate is None else validate,
    )


def compose(parts: Iterable[Model | Substep], name: str) -> Model:
    """One model from ``parts`` in order: the substeps of each model (already lifted onto
    the combined state) and single substeps. Observations and validations run in order;
    substep and metric names must stay unique (checked by :class:`~jaxsim.engine.Model`
    and at trace time)."""
    substeps: list[Substep] = []
    observers, validators = [], []
    for part in parts:
        if isinstance(part, Substep):
            substeps.append(part)
            continue
        if not isinstance(part, Model):
            raise TypeError(f"compose: expected a Model or a Substep, got {type(part).__name__}")
        substeps.extend(part.substeps)
        if part.observe is not None:
            observers.append(part.observe)
        if part.validate is not None:
            validators.append(part.validate)

    def observe(state, world):
        metrics = {}
        for fn in observers:
            produced = fn(state, world)
            clash = set(produced) & set(metrics)
            if clash:
                raise ValueError(f"model {name!r}: observations {sorted(clash)} reported twice")
            metrics.update(produced)
        return metrics

    def validate(state, params, world):
        for fn in validators:
            fn(state, params, world)

    return Model(
        substeps=tuple(substeps),
        observe=observe if observers else None,
        name=name,
        validate=validate if validators else None,
    )


__all__ = ["compose", "lift_model", "lift_substep"]
