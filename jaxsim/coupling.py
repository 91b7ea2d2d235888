"""Composing models: several models' substeps on one combined state, in one scan.

A combined state (and params) is a :class:`Parts` pytree with one named part per model,
e.g. ``Parts(covid=CovidState, economy=LabourState)``, read as ``state.covid``.
:func:`compose` runs each part's substeps on its own part, in the order given, keeping
their names (hence their random numbers: see :func:`jaxsim.engine.substep_id`) and their
metrics, and links the parts through *declared bridges*: a model lists what it needs from
others in ``Model.requires`` (with a default used when it runs alone) and what it offers
in ``Model.provides``; a required name that another part provides is computed from that
part's state and handed to the requiring substeps as ``world.inputs[name]``. Neither model
imports the other, and each runs alone.

Because substep keys come from names, a model composed with one that does not feed back
draws exactly the numbers it draws alone.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import jax

from jaxsim.engine import Model, Substep, World, as_substep
from jaxsim.errors import InputError, InputTypeError


@jax.tree_util.register_pytree_node_class
class Parts(Mapping):
    """A pytree of named parts (states or params of composed models), read as attributes:
    ``parts.covid``. Immutable; :meth:`replace` returns a copy."""

    def __init__(self, **parts):
        object.__setattr__(self, "_parts", dict(parts))

    def __getattr__(self, name):
        parts = object.__getattribute__(self, "_parts")
        if name in parts:
            return parts[name]
        raise AttributeError(f"no part {name!r}; parts are {list(parts)}")

    def __setattr__(self, name, value):
        raise AttributeError("Parts is immutable: use .replace(name=value)")

    def __getitem__(self, name):
        return self._parts[name]

    def __iter__(self):
        return iter(self._parts)

    def __len__(self):
        return len(self._parts)

    def __repr__(self):
        return f"Parts({', '.join(f'{k}={type(v).__name__}' for k, v in self._parts.items())})"

    def replace(self, **changes) -> "Parts":
        unknown = sorted(set(changes) - set(self._parts))
        if unknown:
            raise InputError(f"Parts.replace: no parts {unknown}; parts are {list(self._parts)}")
        return Parts(**{**self._parts, **changes})

    def tree_flatten(self):
        return tuple(self._parts.values()), tuple(self._parts)

    @classmethod
    def tree_unflatten(cls, names, values):
        return cls(**dict(zip(names, values)))


def _links(parts: Mapping[str, Model], name: str, model: Model, links: Mapping[str, str] | None):
    """``{required name: providing part}`` for part ``name``: explicit ``links`` first
    (``{"economy.alive": "covid"}``), else the one other part that provides it."""
    found = {}
    for need in model.requires:
        explicit = (links or {}).get(f"{name}.{need}")
        if explicit is not None:
            if explicit not in parts or need not in parts[explicit].provides:
                raise InputError(f"link {name}.{need} -> {explicit}: part {explicit!r} provides no {need!r}")
            found[need] = explicit
            continue
        providers = [other for other, m in parts.items() if other != name and need in m.provides]
        if len(providers) > 1:
            raise InputError(
                f"part {name!r} needs {need!r}, which several parts provide {providers}: "
                f"name one with links={{'{name}.{need}': ...}}"
            )
        if providers:
            found[need] = providers[0]
    return found


def lift_substep(substep: Substep, part: str, provided: Mapping[str, tuple[str, Model]] | None = None,
                 defaults: Mapping | None = None) -> Substep:
    """``substep`` acting on ``state.<part>`` with ``params.<part>``; other parts pass
    through. ``provided`` maps a required name to ``(providing part, its model)``; the
    values (and ``defaults`` for the others) reach the substep as ``world.inputs``."""
    fn = substep.fn
    provided = dict(provided or {})
    defaults = dict(defaults or {})

    def lifted(key, state, params, t, world: World):
        own_state, own_params = state[part], params[part]
        values = {}
        for need, (other, model) in provided.items():
            values[need] = model.provides[need](state[other], params[other], t, world)
        for need, default in defaults.items():
            if need not in values and need not in world.inputs:
                values[need] = default(own_state, own_params, t, world)
        linked = world.with_inputs(**values) if values else world
        new_part, metrics = fn(key, own_state, own_params, t, linked)
        return state.replace(**{part: new_part}), metrics

    lifted.__name__ = f"{part}.{substep.name}"
    return Substep(substep.name, lifted, substep.day_key)


def _lift_policy(policy, part: str, provided: Mapping, defaults: Mapping):
    """A part's policy input read from the combined state: its signals and prior see the
    part's state and params and a world holding the bridge values the part requires."""
    import dataclasses

    def adapter(state, params, t, world):
        own_state, own_params = state[part], params[part]
        values = {need: model.provides[need](state[other], params[other], t, world)
                  for need, (other, model) in provided.items()}
        for need, default in defaults.items():
            if need not in values and need not in world.inputs:
                values[need] = default(own_state, own_params, t, world)
        return own_state, own_params, (world.with_inputs(**values) if values else world)

    return dataclasses.replace(policy, adapter=adapter)


def compose(parts: Mapping[str, Model] | Iterable[tuple[str, Model]], *, name: str | None = None,
            extra: Iterable[Model | Substep] = (), links: Mapping[str, str] | None = None) -> Model:
    """One model from named parts, run in order each day, linked by their bridges.

    Args:
        parts: ``{part name: model}`` (or pairs): the combined state and params are
            :class:`Parts` with these names; ``init`` splits its key over the parts in order.
        extra: models or substeps written for the combined state (e.g. checks), run after
            the parts; their metrics join the day's.
        links: explicit bridges ``{"<part>.<name>": "<providing part>"}`` where several
            parts provide a name.

    Substep and metric names must stay unique across parts (checked).
    """
    parts = dict(parts)
    if not parts:
        raise InputError("compose: give at least one part")
    for part, model in parts.items():
        if not isinstance(model, Model):
            raise InputTypeError(f"compose: part {part!r} is a {type(model).__name__}, not a Model "
                                 "(expected a Model or a Substep)")
    substeps: list[Substep] = []
    observers, validators, metrics, outcomes, signals, policies = [], [], [], {}, {}, []
    provides = {}
    for part, model in parts.items():
        found = _links(parts, part, model, links)
        provided = {need: (other, parts[other]) for need, other in found.items()}
        defaults = {need: fn for need, fn in model.requires.items() if need not in found}
        substeps.extend(lift_substep(s, part, provided, defaults) for s in model.substeps)
        if model.observe is not None:
            observers.append((part, model.observe))
        if model.validate is not None:
            validators.append((part, model.validate))
        metrics.extend(model.metrics)
        outcomes.update(model.outcomes)
        policies.extend(_lift_policy(policy, part, provided, defaults) for policy in model.policies)
        for signal, fn in model.signals.items():
            signals[signal] = (lambda s, p, t, w, fn=fn, part=part: fn(s[part], p[part], t, w))
        for export, fn in model.provides.items():
            provides.setdefault(export, lambda s, p, t, w, fn=fn, part=part: fn(s[part], p[part], t, w))
    extra_observers = []
    for item in extra:
        if isinstance(item, Model):
            substeps.extend(item.substeps)
            if item.observe is not None:
                extra_observers.append(item.observe)
            if item.validate is not None:
                validators.append((None, item.validate))
            metrics.extend(item.metrics)
        else:
            substeps.append(as_substep(item))
    name = name or " + ".join(model.name for model in parts.values())
    order = tuple(parts)

    def init(key, params, world):
        keys = jax.random.split(key, len(order))
        states = {}
        for k, part in zip(keys, order):
            if parts[part].init is None:
                raise InputError(f"part {part!r} ({parts[part].name}) declares no init")
            states[part] = parts[part].init(k, params[part], world)
        return Parts(**states)

    def observe(state, params, world):
        out = {}
        for part, fn in observers:
            produced = fn(state[part], params[part], world)
            clash = set(produced) & set(out)
            if clash:
                raise InputError(f"model {name!r}: observations {sorted(clash)} reported twice")
            out.update(produced)
        for fn in extra_observers:
            produced = fn(state, params, world)
            clash = set(produced) & set(out)
            if clash:
                raise InputError(f"model {name!r}: observations {sorted(clash)} reported twice")
            out.update(produced)
        return out

    def validate(state, params, world):
        if not isinstance(state, Parts) or not isinstance(params, Parts):
            raise InputError(f"model {name!r} runs on Parts states and params with parts {list(order)}")
        for part, fn in validators:
            if part is None:
                fn(state, params, world)
            else:
                fn(state[part], params[part], world)

    return Model(
        name=name,
        substeps=tuple(substeps),
        init=init,
        observe=observe if (observers or extra_observers) else None,
        validate=validate,
        metrics=tuple(metrics),
        outcomes=outcomes,
        provides=provides,
        signals=signals,
        policies=tuple(policies),
        working_bytes_per_agent=sum(m.working_bytes_per_agent for m in parts.values()),
    )


__all__ = ["Parts", "compose", "lift_substep"]
