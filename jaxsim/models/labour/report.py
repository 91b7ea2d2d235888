"""Reports of a labour run: parameters keyed by label, with the derived monthly flows."""

from __future__ import annotations

import numpy as np

from jaxsim import parameters
from jaxsim.models.labour.params import LabourParams, describe_stimulus


def params_report(params: LabourParams, world) -> dict:
    """Parameters as JSON-friendly values: per-age tables keyed by age labels, per-region
    tables by region, the derived monthly layoff and hiring probabilities, the stimulus
    described."""
    report = parameters.report(params, world)
    regions = world.category_labels("region")
    p = {name: np.asarray(getattr(params, name)) for name in ("separation_logit", "hiring_logit")}
    report["monthly_layoff_probability_at_no_cases"] = {
        b: float(1 / (1 + np.exp(-v))) for b, v in zip(regions, p["separation_logit"])
    }
    report["monthly_hiring_probability_at_no_claims"] = {
        b: float(1 / (1 + np.exp(-v))) for b, v in zip(regions, p["hiring_logit"])
    }
    report["stimulus"] = None if params.stimulus is None else describe_stimulus(params.stimulus)
    return report


__all__ = ["params_report"]
