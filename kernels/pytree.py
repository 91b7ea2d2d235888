"""Pytree dataclasses: frozen dataclasses whose fields JAX maps over, with ``.replace``.

The same contract as ``flax.struct`` (``dataclass``, and ``field(pytree_node=False)`` for
static fields that are part of the tree's structure, not leaves), without importing flax:
``from flax import struct`` imports ``flax.linen`` too, about 0.2 s of every start-up on a
2-core CPU. Classes made with either work together (both read the field metadata
``pytree_node``), and a user's ``@flax.struct.dataclass`` subclass of one of ours is a
pytree as before. One difference: these classes are not registered with
``flax.serialization`` (``to_state_dict``/``to_bytes``); save them with
:mod:`jaxsim.checkpoint` or any pytree tool.
"""

from __future__ import annotations

import dataclasses
import functools

import jax


def field(pytree_node: bool = True, **kwargs):
    """A dataclass field; ``pytree_node=False`` makes it static (part of the treedef, hashed
    by ``jit``; not traced, not differentiated)."""
    metadata = dict(kwargs.pop("metadata", None) or {}, pytree_node=pytree_node)
    return dataclasses.field(metadata=metadata, **kwargs)


def _replace(self, **updates):
    """A copy with the given fields replaced."""
    return dataclasses.replace(self, **updates)


def dataclass(cls=None, **kwargs):
    """Class decorator: a frozen dataclass (unless ``frozen=False`` is given) registered as
    a pytree whose children are the fields with ``pytree_node`` true (the default)."""
    if cls is None:
        return functools.partial(dataclass, **kwargs)
    if "_pytree_dataclass" in cls.__dict__ or "_flax_dataclass" in cls.__dict__:
        return cls
    kwargs.setdefault("frozen", True)
    data_cls = dataclasses.dataclass(**kwargs)(cls)
    data_fields, meta_fields = [], []
    for info in dataclasses.fields(data_cls):
        (data_fields if info.metadata.get("pytree_node", True) else meta_fields).append(info.name)
    data_cls.replace = _replace
    jax.tree_util.register_dataclass(data_cls, data_fields, meta_fields)
    data_cls._pytree_dataclass = True
    return data_cls


__all__ = ["dataclass", "field"]
