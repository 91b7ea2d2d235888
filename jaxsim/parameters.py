"""Parameters declared once: default, bounds, units and tables keyed by label.

A model's parameters are a pytree (what ``grad`` differentiates, ``vmap`` batches and
calibration moves); each field is declared with :func:`param`::

    @jaxsim.params
    class SIRParams:
        beta: jax.Array = jaxsim.param(0.3, bounds=(0.0, 5.0), units="per contact per day")
        susceptibility: jax.Array = jaxsim.param({"child": 0.5, "adult": 1.0}, by="age",
                                                 bounds=(0.0, 3.0), units="relative")

:func:`build` resolves a class's declarations for one world: label-keyed tables become
arrays in the world's code order (``by=``), per-period series get their length
(``per="week"``), values are cast and checked against their bounds. What a user
calibrates (:mod:`jaxsim.calibration`) is exactly a declared field the step reads; the
bounds of the fit are the declared ones. :func:`report` writes parameters back keyed by
label, with their units.

Fields declared without :func:`param` (e.g. ``interventions: Any = None``) pass through
:func:`build` unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim.errors import InputError, LabelError
from jaxsim.transfer import to_device_array

_METADATA_KEY = "jaxsim_param"
#: ``per=`` periods a series may be declared over.
PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: the field name (set by :func:`params`).
        default: a number, a sequence, a ``{label: value}`` mapping (with ``by``), a
            function ``fn(world) -> value`` computing it from the world, or ``None`` (the
            value must be given).
        by: the world category whose labels key the table (``[K]``, e.g. ``"age"``).
        per: ``"day"``, ``"week"`` or ``"month"``: a series with one value per period of
            the run (``[P]``, length given to :func:`build`); a scalar default is repeated.
        bounds: ``(low, high)`` valid range (``None`` for unbounded on that side):
            values outside are refused.
        fit_bounds: ``(low, high)`` the range a calibration searches (default ``bounds``);
            a fit keeps the value inside it.
        units: what one unit is, for reports.
        doc: one line.
        dtype: ``"float32"`` or ``"int32"``.
        fit: whether calibration may move it (default: floats with finite bounds).
        labels: fixed labels of the entries of a table not keyed by a world category
            (e.g. disease stages), for reports.
    """

    name: str = ""
    default: Any = None
    by: str | None = None
    per: str | None = None
    bounds: tuple | None = None
    fit_bounds: tuple | None = None
    units: str = ""
    doc: str = ""
    dtype: str = "float32"
    fit: bool | None = None
    labels: tuple | None = None

    @property
    def search_bounds(self) -> tuple | None:
        return self.fit_bounds if self.fit_bounds is not None else self.bounds

    @property
    def fittable(self) -> bool:
        """Calibration may move it: a float with finite search bounds (unless ``fit`` says)."""
        if self.fit is not None:
            return bool(self.fit)
        bounds = self.search_bounds
        return (self.dtype == "float32" and bounds is not None
                and all(b is not None and math.isfinite(b) for b in bounds))

    def low_high(self) -> tuple[float, float]:
        """The valid range, with infinities for open sides."""
        low, high = self.bounds if self.bounds is not None else (None, None)
        return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def param(default=None, *, by: str | None = None, per: str | None = None, bounds: tuple | None = None,
          fit_bounds: tuple | None = None, units: str = "", doc: str = "", dtype: str = "float32",
          fit: bool | None = None, labels: tuple | None = None):
    """Declare a parameter field (see :class:`ParamSpec` for the arguments)."""
    if per is not None and per not in PERIODS:
        raise InputError(f"param per={per!r}: choose one of {PERIODS}")
    if dtype not in ("float32", "int32"):
        raise InputError(f"param dtype={dtype!r}: choose float32 or int32")
    spec = ParamSpec(default=default, by=by, per=per, bounds=None if bounds is None else tuple(bounds),
                     fit_bounds=None if fit_bounds is None else tuple(fit_bounds), units=units, doc=doc,
                     dtype=dtype, fit=fit, labels=None if labels is None else tuple(labels))
    return dataclasses.field(default=None, metadata={_METADATA_KEY: spec})


def params(cls):
    """Class decorator: a parameters pytree (a ``flax.struct`` dataclass) whose
    :func:`param` fields are declared (:func:`specs`)."""
    cls = struct.dataclass(cls)
    found = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_METADATA_KEY)
        if spec is not None:
            found[f.name] = dataclasses.replace(spec, name=f.name)
    cls.__jaxsim_params__ = found
    return cls


def specs(params_or_type) -> dict[str, ParamSpec]:
    """``{name: ParamSpec}`` of a declared parameters class or instance."""
    cls = params_or_type if isinstance(params_or_type, type) else type(params_or_type)
    found = getattr(cls, "__jaxsim_params__", None)
    if found is None:
        raise InputError(f"{cls.__name__} is not a declared parameters class (decorate it with jaxsim.params)")
    return dict(found)


def fittable_specs(params_or_type) -> dict[str, ParamSpec]:
    """``{name: ParamSpec}`` of the declared parameters a calibration may move."""
    return {name: spec for name, spec in specs(params_or_type).items() if spec.fittable}


def spec_of(params_or_type, name: str) -> ParamSpec:
    """The declaration of one parameter; :class:`LabelError` naming the known ones."""
    found = specs(params_or_type)
    if name not in found:
        cls = params_or_type if isinstance(params_or_type, type) else type(params_or_type)
        raise LabelError(f"{cls.__name__} has no declared parameter {name!r}; it has {sorted(found)}")
    return found[name]


def _resolve(spec: ParamSpec, value, world, periods: Mapping[str, int], owner: str) -> np.ndarray:
    what = f"{owner}.{spec.name}"
    if callable(value) and not isinstance(value, (np.ndarray, jax.Array)):
        value = value(world)
    if value is None:
        raise InputError(f"{what}: no value given and no default")
    dtype = np.float32 if spec.dtype == "float32" else np.int32
    if spec.by is not None:
        if world is None:
            raise InputError(f"{what}: a table by {spec.by!r} needs the world whose labels key it")
        array = world.table_by_label(spec.by, value, what=what, dtype=np.float64)
    elif isinstance(value, Mapping):
        if spec.labels is None:
            raise InputError(f"{what}: a {{label: value}} table needs by=... or fixed labels in its declaration")
        unknown = sorted(set(value) - set(spec.labels))
        missing = [label for label in spec.labels if label not in value]
        if unknown or missing:
            raise LabelError(f"{what}: needs one value per {list(spec.labels)}; missing {missing}, unknown {unknown}")
        array = np.asarray([value[label] for label in spec.labels], np.float64)
    else:
        try:
            array = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{what}: not a number or an array of numbers: {value!r}") from None
    if spec.per is not None:
        length = periods.get(spec.per)
        if length is None:
            raise InputError(f"{what}: one value per {spec.per}; give the number of {spec.per}s "
                             f"({spec.per}s=...) to build")
        if array.ndim == 0:
            array = np.full(int(length), float(array))
        elif array.shape[-1:] != (int(length),):
            raise InputError(f"{what}: needs one value per {spec.per} ({length}), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what}: non-finite value in {array.tolist()}")
    low, high = spec.low_high()
    if np.any(array < low) or np.any(array > high):
        raise InputError(f"{what}: {shown(array)} is outside its bounds [{low}, {high}]")
    if spec.dtype == "int32" and not np.all(array == np.round(array)):
        raise InputError(f"{what}: must be a whole number, got {array.tolist()}")
    return array.astype(dtype)


def shown(values, limit: int = 12) -> str:
    """Numbers for an error message: each at float32 precision (``0.9``, not
    ``0.8999999761581421``), nested like ``tolist()``, at most ``limit`` per row."""
    array = np.asarray(values)
    if array.ndim == 0:
        return str(np.float32(array)) if np.issubdtype(array.dtype, np.floating) else str(array.item())
    parts = [shown(row, limit) for row in array[:limit]]
    if array.shape[0] > limit:
        parts.append(f"... ({array.shape[0]} in all)")
    return "[" + ", ".join(parts) + "]"


def build(cls, world=None, *, periods: Mapping[str, int] | None = None, **values):
    """An instance of the declared class ``cls`` for ``world``.

    Each declared field takes ``values[name]`` if given, else its default; tables keyed
    by label resolve to the world's codes, per-period series are sized by ``periods``
    (e.g. ``{"week": 5}``), every value is checked against its bounds. Undeclared fields
    take ``values[name]`` or their dataclass default.

    Raises:
        InputError / LabelError: an unknown parameter, a missing or unknown label, a
            value outside its bounds or of the wrong shape; the message names the class,
            the field and the value.
    """
    declared = specs(cls)
    periods = dict(periods or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise LabelError(f"{cls.__name__} has no parameters {unknown}; it has {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in declared:
            spec = declared[f.name]
            raw = values[f.name] if f.name in values else spec.default
            if isinstance(raw, (jax.Array,)) and f.name in values:
                raw = np.asarray(raw)
            kwargs[f.name] = to_device_array(_resolve(spec, raw, world, periods, cls.__name__))
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def check(params, world=None) -> None:
    """Check every declared field of ``params`` against its bounds (and finiteness);
    :class:`InputError` naming the class, field and value."""
    owner = type(params).__name__
    for name, spec in specs(params).items():
        value = getattr(params, name)
        if value is None:
            raise InputError(f"{owner}.{name}: missing")
        array = np.asarray(value, np.float64)
        if not np.all(np.isfinite(array)):
            raise InputError(f"{owner}.{name}: non-finite value in {array.tolist()}")
        low, high = spec.low_high()
        if np.any(array < low) or np.any(array > high):
            raise InputError(f"{owner}.{name}: {shown(array)} is outside its bounds [{low}, {high}]")
        if spec.by is not None and world is not None:
            k = world.num_categories(spec.by)
            if array.shape[-1:] != (k,):
                raise InputError(f"{owner}.{name}: needs one value per {spec.by!r} code ({k}), got shape {array.shape}")


def report(params, world=None) -> dict:
    """JSON-friendly values of the declared fields: tables keyed by label (the world's for
    ``by=``, the declared ones for fixed labels), series and scalars as lists/numbers."""
    out = {}
    for name, spec in specs(params).items():
        value = np.asarray(getattr(params, name))
        labels = None
        if spec.by is not None and world is not None:
            labels = world.category_labels(spec.by)
        elif spec.labels is not None:
            labels = spec.labels
        if labels is not None and value.shape == (len(labels),):
            out[name] = {str(label): float(v) for label, v in zip(labels, value)}
        else:
            out[name] = value.tolist()
    return out


def units(params_or_type) -> dict[str, str]:
    """``{name: units}`` of the declared fields."""
    return {name: spec.units for name, spec in specs(params_or_type).items()}


__all__ = ["PERIODS", "ParamSpec", "build", "check", "param", "params", "report", "fittable_specs", "spec_of", "specs", "units"]
