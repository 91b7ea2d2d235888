"""jaxsim.scoring: weighted interval score and coverage against hand values and the CRPS."""

from __future__ import annotations

import math

import numpy as np
import pytest

import jaxsim
from jaxsim import scoring


def test_interval_score_by_hand():
    # Members 0..10: the central 80% interval (alpha 0.2) is [1, 9] (quantiles 0.1, 0.9).
    members = np.arange(11.0)[:, None]
    assert scoring.interval_score(members, [5.0], 0.2) == pytest.approx([8.0])  # inside: the width
    assert scoring.interval_score(members, [12.0], 0.2) == pytest.approx([8.0 + 10.0 * 3.0])  # 3 above
    assert scoring.interval_score(members, [0.0], 0.2) == pytest.approx([8.0 + 10.0 * 1.0])  # 1 below


def test_point_forecast_wis_is_the_absolute_error():
    """Persistence (every member the same) scores its absolute error: WIS comparable to MAE."""
    point = np.array([[10.0, 20.0, 30.0]])
    observed = np.array([12.0, 20.0, 25.0])
    np.testing.assert_allclose(scoring.weighted_interval_score(point, observed), [2.0, 0.0, 5.0])


def test_wis_approximates_the_crps_of_a_normal_forecast():
    """N(0, 1) members (200,000): with 200 evenly spaced levels the WIS is within 1.5% of
    the closed-form CRPS, sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]; with the
    Hub's 11 uneven levels within 12% (measured: 9% below at y = 0)."""
    members = np.random.default_rng(0).normal(size=(200_000, 1))
    dense = tuple(np.linspace(0.0, 1.0, 202)[1:-1])
    for y in (0.0, 0.7, 2.5):
        phi = math.exp(-y * y / 2) / math.sqrt(2 * math.pi)
        cdf = 0.5 * (1 + math.erf(y / math.sqrt(2)))
        crps = y * (2 * cdf - 1) + 2 * phi - 1 / math.sqrt(math.pi)
        assert float(scoring.weighted_interval_score(members, [y], dense)[0]) == pytest.approx(crps, rel=0.015)
        assert float(scoring.weighted_interval_score(members, [y])[0]) == pytest.approx(crps, rel=0.12)
    # A sharper forecast centred on the truth scores better; one centred off it, worse.
    truth = [0.0]
    assert scoring.weighted_interval_score(members * 0.5, truth)[0] < scoring.weighted_interval_score(members, truth)[0]
    assert scoring.weighted_interval_score(members + 2, truth)[0] > scoring.weighted_interval_score(members, truth)[0]


def test_coverage_of_a_calibrated_ensemble():
    """Observations drawn from the forecast distribution itself: 50% and 90% intervals
    cover about 50% and 90% of them."""
    rng = np.random.default_rng(1)
    periods = 4000
    members = rng.normal(size=(400, periods))
    observed = rng.normal(size=periods)
    scores = scoring.forecast_scores(members, observed)
    assert scores["coverage_50"] == pytest.approx(0.5, abs=0.03)
    assert scores["coverage_90"] == pytest.approx(0.9, abs=0.02)
    assert scoring.coverage(members * 0.1, observed, 0.9) < 0.3  # overconfident: covers little


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: scoring.weighted_interval_score(np.ones((4, 3)), np.ones(2)), r"members \[M, T\] and observed \[T\]"),
        (lambda: scoring.interval_score(np.ones((4, 2)), np.ones(2), 1.5), r"alpha must be in \(0, 1\), got 1.5"),
        (lambda: scoring.coverage(np.ones((4, 2)), np.ones(2), 90), r"coverage level must be in \(0, 1\), got 90"),
        (lambda: scoring.forecast_scores(np.full((4, 2), np.nan), np.ones(2)), r"finite members and observations"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(jaxsim.InputError, match=message):
        call()
