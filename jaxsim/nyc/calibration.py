"""The ``calibration.json`` of a COVID fit to a NYC neighbourhood's weekly cases: its owner.

``scenarios/calibrate_covid.py`` writes it (:func:`write_calibration`); later runs read the
fitted parameters back (:func:`read_calibration`, :func:`calibrated_values`), e.g. the
counterfactual scenario's ``--calibration``. The weekly transmission rate is stored by
epiweek, so a run over other weeks takes each of its weeks' fitted rate (weeks after the
fitted window repeat its last one); tables keyed by label are stored by label.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from jaxsim import outputs, parameters
from jaxsim.errors import InputError
from jaxsim.models.covid import CovidParams


def fitted_report(params: CovidParams, world, names: Sequence[str]) -> dict:
    """The fitted parameters as JSON-friendly values keyed by label (the world's)."""
    report = parameters.report(params, world)
    return {name: report[name] for name in names}


def write_calibration(path: str | Path, info: Mapping) -> None:
    """Write a calibration's record (``info`` must hold ``fitted_parameters`` and
    ``epiweeks``; everything else is kept as it is), never half-written."""
    if "fitted_parameters" not in info or "epiweeks" not in info:
        raise InputError("a calibration record needs 'fitted_parameters' and 'epiweeks'")
    outputs.write_json(dict(info), Path(path))


def read_calibration(path: str | Path) -> dict:
    """A calibration file's content, checked: ``fitted_parameters`` (fittable parameters of
    the COVID model) and ``epiweeks``. Raises :class:`InputError` (or ``FileNotFoundError``)
    naming the file and field."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--calibration {path}: no such file")
    try:
        info = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(info, dict) or not isinstance(info.get("fitted_parameters"), dict):
        raise InputError(f"{path}: no 'fitted_parameters' object (write it with scenarios/calibrate_covid.py)")
    fitted = info["fitted_parameters"]
    if not fitted:
        raise InputError(f"{path}: 'fitted_parameters' is empty")
    # From jaxsim.parameters, not jaxsim.calibration: that brings optax and flax, which a run
    # that only reads a fit needs not.
    from jaxsim import parameters

    unknown = sorted(set(fitted) - set(parameters.fittable_specs(CovidParams)))
    if unknown:
        raise InputError(f"{path}: fitted_parameters {unknown} are not fittable parameters of the COVID model")
    weeks = info.get("epiweeks")
    if not isinstance(weeks, list) or not weeks or not all(isinstance(w, int) for w in weeks):
        raise InputError(f"{path}: 'epiweeks' must be a non-empty list of epiweeks, got {weeks!r}")
    rates = fitted.get("transmission_rate")
    if rates is not None and (not isinstance(rates, list) or len(rates) != len(weeks)):
        raise InputError(
            f"{path}: fitted_parameters.transmission_rate needs one value per epiweek ({len(weeks)}), got {rates!r}"
        )
    return info


def calibrated_values(info: dict, path: str | Path, world, run_epiweeks: Sequence[int | None]) -> dict:
    """``{parameter: value for this run}`` from a checked calibration file, for the world
    ``world`` over the epiweeks ``run_epiweeks`` (``None`` where unknown).

    The weekly transmission rate maps by epiweek (weeks after the file's last repeat its
    last value; a run starting before the file's first week is refused); label-keyed
    tables become tables of the world's codes.
    """
    fitted = info["fitted_parameters"]
    weeks = info["epiweeks"]
    specs = parameters.specs(CovidParams)
    values = {}
    for name, value in fitted.items():
        try:
            if name == "transmission_rate":
                rates = np.asarray(value, np.float64)
                if not np.all(np.isfinite(rates)) or np.any(rates < 0):
                    raise InputError(f"must be finite and >= 0, got {value}")
                if run_epiweeks[0] is not None and run_epiweeks[0] < weeks[0]:
                    raise InputError(
                        f"covers epiweeks {weeks[0]}..{weeks[-1]}; the run starts earlier, at {run_epiweeks[0]}"
                    )
                per_week = [rates[weeks.index(w)] if w is not None and w in weeks else rates[-1]
                            for w in run_epiweeks]
                values[name] = np.asarray(per_week, np.float32)
            elif isinstance(value, dict):
                by = specs[name].by or "age"
                values[name] = world.table_by_label(by, {str(k): float(v) for k, v in value.items()}, what=name)
            else:
                number = float(value)
                if not math.isfinite(number):
                    raise InputError(f"must be finite, got {value}")
                values[name] = np.float32(number)
        except (ValueError, TypeError, KeyError) as err:
            raise InputError(f"{path}: fitted_parameters.{name}: {err}") from None
    return values


__all__ = ["calibrated_values", "fitted_report", "read_calibration", "write_calibration"]


# ------------------------------------------------------------------ the shipped default fit
#: The calibration the flagship scenario runs with by default: R(t) of Astoria (QN0103)
#: fitted to its reported cases of epiweeks 202047-202049, the rise of its second wave
#: (the file's ``how_fitted`` gives the command, data, settings and fit quality).
DEFAULT_FIT_FILE = Path(__file__).resolve().parent / "data" / "default_fit_QN0103.json"


def default_calibration() -> dict:
    """The shipped default fit (:data:`DEFAULT_FIT_FILE`), checked like any calibration file."""
    return read_calibration(DEFAULT_FIT_FILE)
