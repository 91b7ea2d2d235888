"""The counter-based uniform generator and the Bernoulli estimators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsim import sampling


def test_uniform_is_uniform_and_bits_are_balanced():
    u = np.asarray(sampling.uniform(jax.random.key(1), (200_000,)))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    bits = (u * 2**24).astype(np.uint32)
    means = np.array([((bits >> b) & 1).mean() for b in range(24)])
    assert np.all(np.abs(means - 0.5) < 0.006)


def test_neighbouring_agents_and_consecutive_days_are_independent():
    n = 100_000
    u = np.asarray(sampling.uniform(jax.random.key(2), (n,)))
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    pairs, _, _ = np.histogram2d(u[:-1], u[1:], bins=16)
    assert stats.chisquare(pairs.ravel()).pvalue > 1e-3
    base = jax.random.key(3)
    days = np.stack([np.asarray(sampling.uniform(jax.random.fold_in(base, t), (n,))) for t in range(10)])
    corr = np.corrcoef(days) - np.eye(10)
    assert np.abs(corr).max() < 0.015
    # The same agent's draws on consecutive days are not related either.
    joint, _, _ = np.histogram2d(days[0], days[1], bins=16)
    assert stats.chisquare(joint.ravel()).pvalue > 1e-3


def test_uniform_depends_only_on_key_and_index():
    key = jax.random.key(4)
    whole = np.asarray(sampling.uniform(key, (1000,)))
    part = np.asarray(sampling.uniform(key, (300,), offset=500))
    np.testing.assert_array_equal(part, whole[500:800])
    np.testing.assert_array_equal(
        np.asarray(sampling.uniform(key, (10, 100))).ravel(), whole
    )
    other = np.asarray(sampling.uniform(jax.random.key(5), (1000,)))
    assert np.mean(other == whole) < 0.01


def test_bernoulli_frequency_and_forward_is_discrete():
    p = jnp.full((100_000,), 0.3)
    for estimator in sampling.ESTIMATORS:
        x = np.asarray(sampling.bernoulli(jax.random.key(6), p, estimator))
        assert set(np.unique(x)) == {0.0, 1.0}
        assert abs(x.mean() - 0.3) < 0.01
    with pytest.raises(ValueError, match="unknown gradient estimator"):
        sampling.bernoulli(jax.random.key(0), p, "magic")
    with pytest.raises(ValueError, match="unknown gradient estimator"):
        sampling.check_estimator("magic")


def test_bernoulli_draws_do_not_depend_on_probability_values():
    """Common random numbers: raising p only adds events, never moves them."""
    key = jax.random.key(7)
    low = np.asarray(sampling.bernoulli(key, jnp.full((10_000,), 0.2)))
    high = np.asarray(sampling.bernoulli(key, jnp.full((10_000,), 0.4)))
    assert np.all(high >= low)


def test_straight_through_gradient_is_gradient_of_p_and_none_blocks():
    key = jax.random.key(8)

    def total(theta, estimator):
        return sampling.bernoulli(key, jax.nn.sigmoid(theta) * jnp.ones(1000), estimator).sum()

    theta = jnp.float32(0.2)
    g_st = jax.grad(total)(theta, "straight_through")
    s = jax.nn.sigmoid(theta)
    assert float(g_st) == pytest.approx(1000 * float(s * (1 - s)), rel=1e-5)
    assert float(jax.grad(total)(theta, "none")) == 0.0
