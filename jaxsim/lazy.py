"""Packages whose names import on first use (PEP 562), so importing them is cheap."""

from __future__ import annotations

import importlib
from typing import Callable, Iterable, Mapping


def lazy_attributes(namespace: dict, exports: Mapping[str, str],
                    modules: Iterable[str] = ()) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``:
    ``exports`` maps a name to the module that defines it (imported, and the name kept in
    the package, on first use); ``modules`` are submodules reachable as attributes."""
    package = namespace["__name__"]
    submodules = frozenset(modules)

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list:
        return sorted(set(namespace) | set(exports) | submodules)

    return __getattr__, __dir__


__all__ = ["lazy_attributes"]
