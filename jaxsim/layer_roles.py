"""Contact layers by role: which of a population's layers is the household, which the
community.

Models and scenarios refer to a contact layer by its ROLE, the setting it stands for:

- ``"household"``: the people an agent lives with;
- ``"community"``: everyone else it meets (neighbours, transit, shops, work; the field
  calls these contacts *mobility*);
- any other name a model asks for (``counterfactual_isolation`` closes ``"school"`` where a
  population has one).

jaxsim's synthetic populations name their layers by role (``household``, ``community``).
A population directory names each layer by its file, ``mobility_networks_<layer>.csv``
(:mod:`jaxsim.population_io`), and the field's reference tool (AgentTorch) numbers them:
``mobility_networks_0.csv``, ``mobility_networks_1.csv`` (in its own tree
``mobility_networks/0.csv``, ``1.csv``; both layouts load). A *role map* says which file
layer plays which role: ``{layer: role}``, or as text (the ``--layer-roles`` flag of the
NYC scenarios) ``"0=household,1=community"``.

- A layer mapped to ``-`` is left out: no contacts are simulated on it.
- A layer the map does not name keeps its own name (and stays a contact layer).
- Each role names one layer; a role may not be the name of a layer the map leaves as it is.
- ``"keep"`` (an empty map) keeps every name as it is, defaults included.

Defaults (:data:`FIELD_LAYER_ROLES`). With no map given, a population whose layers are all
numbered (the field's files) gets: layer ``0`` is the ``community``; every other numbered
layer is left out. A population with any named layer gets no default. The evidence, from
how the field's files are built and read (AgentTorch's repository):

1. Its network builder (``mobility_network_wrapper`` in its census data processing) writes
   one file per simulation step ``t``, ``<t>.csv``: each agent draws a negative-binomial
   number of contacts for its age band, and the contact stubs of all agents are shuffled
   and paired. Every numbered file is such a random mixing network over the whole
   population; none is built from households (the edges of its shipped ``sample``
   population's ``0.csv`` and ``1.csv`` join agents with unrelated ids, not cliques of
   housemates). The stub list is not emptied between steps, so file ``t`` holds the
   contacts drawn for steps ``0..t``: the shipped ``1.csv`` has about twice the edges of
   ``0.csv`` (2.3 MB against 1.2 MB).
2. Its COVID model reads one network for every step, ``mobility_networks/0.csv``
   (``infection_network_file`` in ``models/covid/yamls/config.yaml``); households are an
   agent attribute (``household.pickle``), not a network.

So file 0 is the community (mobility) layer the field's model runs on, and the later files
re-draw it (cumulatively) for steps its model does not read: adding them as more layers
would count the same kind of contact again, and closing ``community`` would leave them
open. The tempting reading "0 = household, 1 = community" does not fit the field's files; a
directory built that way says so with ``--layer-roles 0=household,1=community``.

Every bad map raises one :class:`~jaxsim.errors.InputError` line naming the flag (or
argument) and its value.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from jaxsim.errors import InputError
from jaxsim.population import Population

__all__ = [
    "COMMUNITY",
    "FIELD_LAYER_ROLES",
    "HOUSEHOLD",
    "KEEP",
    "LAYER_ROLES_FLAG",
    "UNUSED",
    "apply_layer_roles",
    "field_layer_roles",
    "format_layer_roles",
    "parse_layer_roles",
]

HOUSEHOLD = "household"
COMMUNITY = "community"
#: The role of a layer that is left out.
UNUSED = "-"
#: The text of an empty map: keep every layer's name (no defaults either).
KEEP = "keep"
#: The command-line flag that takes a role map (named in error messages).
LAYER_ROLES_FLAG = "--layer-roles"
#: Roles of the field's numbered layers (see the module docstring for the evidence); the
#: numbered layers not listed are left out.
FIELD_LAYER_ROLES: Mapping[str, str] = {"0": COMMUNITY}

_LAYER_RE = re.compile(r"[A-Za-z0-9_-]+\Z")  # as population_io's file layer names
_ROLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_EXAMPLE = "0=household,1=community"


# ------------------------------------------------------------------------------ parse
def parse_layer_roles(text: str, *, flag: str = LAYER_ROLES_FLAG) -> dict[str, str]:
    """``"0=household,1=community"`` as ``{"0": "household", "1": "community"}``;
    ``"keep"`` as ``{}``.

    Raises:
        InputError: one line naming ``flag`` and ``text``: an item that is not
            ``layer=role``, a bad layer or role name, a layer given twice, or a role given
            to two layers.
    """
    where = f"{flag} {text!r}"
    stripped = str(text).strip()
    if stripped.lower() == KEEP:
        return {}
    items = [item.strip() for item in stripped.split(",")]
    if not stripped or not any(items):
        raise InputError(f"{where}: give layer=role pairs such as {_EXAMPLE}, or {KEEP!r}")
    roles: dict[str, str] = {}
    for item in items:
        if not item:
            raise InputError(f"{where}: an empty item between commas; write layer=role pairs such as {_EXAMPLE}")
        layer, sep, role = (part.strip() for part in item.partition("="))
        if not sep:
            raise InputError(f"{where}: {item!r} is not layer=role (e.g. {_EXAMPLE})")
        _add_role(roles, layer, role, where)
    return roles


def _add_role(roles: dict[str, str], layer: str, role: str, where: str) -> None:
    """Add ``layer -> role`` to ``roles``, checking the names (messages start with ``where``)."""
    if not _LAYER_RE.match(layer):
        raise InputError(
            f"{where}: layer {layer!r} is not a layer name (letters, digits, '_' or '-': the <layer> "
            "of mobility_networks_<layer>.csv)"
        )
    if role != UNUSED and not _ROLE_RE.match(role):
        raise InputError(
            f"{where}: role {role!r} of layer {layer!r} is not a role name (a letter, then letters, digits, "
            f"'_' or '-', e.g. household or community; {UNUSED!r} leaves the layer out)"
        )
    if layer in roles:
        raise InputError(f"{where}: layer {layer!r} is mapped twice ({roles[layer]!r} and {role!r})")
    if role != UNUSED:
        for other, taken in roles.items():
            if taken == role:
                raise InputError(
                    f"{where}: role {role!r} is given to layers {other!r} and {layer!r}; a role names one "
                    f"layer (leave the others out with {UNUSED!r}, e.g. {layer}={UNUSED})"
                )
    roles[layer] = role


def format_layer_roles(roles: Mapping[str, str]) -> str:
    """A role map as the flag's text (``"0=community,1=-"``; ``"keep"`` when empty)."""
    return ",".join(f"{layer}={role}" for layer, role in roles.items()) or KEEP


# ---------------------------------------------------------------------------- defaults
def _is_numbered(name: str) -> bool:
    return name.isascii() and name.isdigit()


def field_layer_roles(layers: Iterable[str]) -> dict[str, str]:
    """The default map for these layer names: :data:`FIELD_LAYER_ROLES` (the other
    numbered layers left out) when every layer is numbered as the field's files are, else
    ``{}`` (names kept)."""
    names = list(layers)
    if not names or not all(_is_numbered(name) for name in names):
        return {}
    return {name: FIELD_LAYER_ROLES.get(str(int(name)), UNUSED) for name in names}


# ------------------------------------------------------------------------------ apply
def apply_layer_roles(
    population: Population,
    roles: Mapping[str, str] | str | None = None,
    *,
    flag: str = LAYER_ROLES_FLAG,
) -> Population:
    """``population`` with its contact layers named by role.

    Args:
        population: any population (its other fields are shared, not copied).
        roles: a role map ``{layer: role}``, its text (``"0=household,1=community"``,
            ``"keep"``), or ``None`` for the defaults (:func:`field_layer_roles`).
        flag: what gave ``roles``, for error messages.

    Returns:
        A new :class:`Population` whose ``networks`` are renamed (layers mapped to
        ``-`` removed), in the original layer order; ``metadata["layer_roles"]`` records
        the map applied (``{layer: role}``) when it changed anything. The population
        itself is returned when nothing changes.

    Raises:
        InputError: one line naming ``flag`` and the map: a bad map (see
            :func:`parse_layer_roles`), a layer the population lacks, a role that is also
            the name of a layer left as it is, or a map that leaves out every layer.
    """
    layers = list(population.networks)
    if roles is None:
        mapping = field_layer_roles(layers)
        where = f"default layer roles {format_layer_roles(mapping)!r}"
    elif isinstance(roles, str):
        mapping = parse_layer_roles(roles, flag=flag)
        where = f"{flag} {roles!r}"
    elif isinstance(roles, Mapping):
        where = f"{flag} {format_layer_roles({str(k): str(v) for k, v in roles.items()})!r}"
        mapping = {}
        for layer, role in roles.items():
            if not isinstance(layer, str) or not isinstance(role, str):
                raise InputError(f"{where}: layers and roles must be strings, got {layer!r}: {role!r}")
            _add_role(mapping, layer.strip(), role.strip(), where)
    else:
        raise InputError(f"{flag}: expected a {{layer: role}} map or its text, got {type(roles).__name__}")

    listed = ", ".join(layers) if layers else "none"
    unknown = [layer for layer in mapping if layer not in population.networks]
    if unknown:
        raise InputError(
            f"{where}: the population has no contact layer {unknown[0]!r}; its layers are {listed} "
            "(one per mobility_networks_<layer>.csv file)"
        )
    renamed = {layer: mapping.get(layer, layer) for layer in layers}
    for layer, name in renamed.items():
        if layer not in mapping and name in mapping.values():
            raise InputError(
                f"{where}: role {name!r} is also the name of layer {layer!r}, which the map leaves as it is; "
                f"map {layer!r} too (e.g. {layer}={UNUSED} to leave it out)"
            )
    if layers and all(name == UNUSED for name in renamed.values()):
        raise InputError(f"{where}: leaves out every contact layer ({listed}); give at least one a role")
    if all(name == layer for layer, name in renamed.items()):
        return population
    networks = {name: population.networks[layer] for layer, name in renamed.items() if name != UNUSED}
    applied = {layer: renamed[layer] for layer in layers if renamed[layer] != layer}
    return Population(
        attributes=population.attributes,
        labels=population.labels,
        strings=population.strings,
        networks=networks,
        initial_states=population.initial_states,
        metadata={**population.metadata, "layer_roles": applied},
        user_ids=population.user_ids,
    )
