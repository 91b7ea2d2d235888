"""Gradient estimators for discrete events: the estimator specs, the forward values, and
each estimator's mean gradient measured against the true derivative of an expectation.

How the gradient checks work: a model ``f(p, key, estimator)`` returns a scalar built
from one or two draws; ``jax.vmap`` over ``N_SEEDS`` keys gives one gradient per seed,
whose mean and standard error are compared with

- the truth, ``d/dp E[f]``, known in closed form for every model here and confirmed by a
  many-seed central finite difference with common random numbers (exact in expectation
  for the Bernoulli models, whose ``E[f]`` is a polynomial of degree <= 2 in ``p``; for
  the categorical one its O(h^2) error is well below the noise);
- the estimator's own theoretical mean (closed form for straight-through and
  stochastic; a numerical integral over the uniform for Gumbel-softmax).

Unbiased estimators must land within ``K_SE`` standard errors of the truth. Biased ones
must land within ``K_SE`` standard errors of their theoretical mean *and* more than
``K_FAR`` standard errors away from the truth, so a broken estimator, or a bias that is
not there, fails either way. Measured biases appear in the assertion messages.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim import sampling
from jaxsim.sampling import Estimator, bernoulli, categorical

N_SEEDS = 20_000
K_SE = 4.5  # "agrees": within 4.5 standard errors (two-sided p ~ 7e-6 per check)
K_FAR = 8.0  # "certainly biased": more than 8 standard errors from the truth
H = 0.05  # finite-difference step

GRADIENT_ESTIMATORS = ("straight_through", "gumbel_softmax", "stochastic")
ALL_SPECS = (*sampling.ESTIMATORS, "gumbel_softmax:0.1", "gumbel_softmax:2.0")


# --------------------------------------------------------------------------- helpers
def per_seed_gradients(model, p, specs=GRADIENT_ESTIMATORS, n=N_SEEDS, seed=0, h=H):
    """``{spec: per-seed d f / d p}`` plus ``"fd"``: the per-seed central difference
    ``(f(p + h) - f(p - h)) / 2h`` with the same key on both sides (common random
    numbers), all numpy float64 [n], from one jitted ``vmap`` over ``n`` keys."""

    def one_seed(q, key):
        out = {str(spec): jax.grad(model)(q, key, spec) for spec in specs}
        out["fd"] = (model(q + h, key, "none") - model(q - h, key, "none")) / (2 * h)
        return out

    keys = jax.random.split(jax.random.key(seed), n)
    out = jax.jit(jax.vmap(one_seed, in_axes=(None, 0)))(jnp.float32(p), keys)
    return {name: np.asarray(values, dtype=np.float64) for name, values in out.items()}


def mean_se(values):
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


# Numerical integrals over the uniform u for the Gumbel-softmax estimator's mean gradient:
# the relaxed event is s(u) = sigmoid((logit q - logit u) / tau), ds/dq = s (1 - s) / (tau q (1 - q)).
_U_GRID = (np.arange(400_000) + 0.5) / 400_000


def _relaxed_slope(q, tau):
    z = (math.log(q) - math.log1p(-q) - (np.log(_U_GRID) - np.log1p(-_U_GRID))) / tau
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 - s) / (tau * q * (1.0 - q))


def gumbel_slope_split(q, tau):
    """``(E[ds/dq ; u < q], E[ds/dq ; u >= q])``: the mean relaxed slope where the event is
    on and where it is off."""
    slope = _relaxed_slope(q, tau)
    on = _U_GRID < q
    return float(np.sum(slope * on) / _U_GRID.size), float(np.sum(slope * ~on) / _U_GRID.size)


def gumbel_slope(q, tau):
    """``E[ds/dq]``: the mean gradient of one Gumbel-softmax event."""
    return sum(gumbel_slope_split(q, tau))


def check_against_theory(name, grads, truth, theory, fd=None, certain=True):
    """Assert the measured mean agrees with the estimator's theoretical mean, and is near
    the truth when that theory is unbiased and (``certain``) far from it when biased."""
    mean, se = mean_se(grads)
    se = max(se, 1e-6)  # zero-variance estimators (straight-through on affine models)
    message = (
        f"{name}: mean gradient {mean:.4f} +- {se:.4f} (1 s.e.), theory {theory:.4f}, "
        f"truth {truth:.4f}, measured bias {mean - truth:+.4f}"
    )
    if fd is not None:
        fd_mean, fd_se = mean_se(fd)
        message += f", finite difference {fd_mean:.4f} +- {fd_se:.4f}"
    assert abs(mean - theory) < K_SE * se + 1e-5, message
    if abs(theory - truth) < 1e-9:
        assert abs(mean - truth) < K_SE * se + 1e-5, message
    elif certain:
        assert abs(mean - truth) > K_FAR * se, message
        assert np.sign(mean - truth) == np.sign(theory - truth), message
    return mean - truth


# --------------------------------------------------------------------------- specs
def test_estimator_specs_parse_normalise_and_round_trip():
    assert sampling.ESTIMATORS == ("none", "straight_through", "gumbel_softmax", "stochastic")
    for name in sampling.ESTIMATORS:
        spec = sampling.check_estimator(name)
        assert isinstance(spec, Estimator) and spec.name == name
        assert sampling.check_estimator(spec) is spec
    default = sampling.check_estimator("gumbel_softmax")
    assert default.temperature == sampling.DEFAULT_TEMPERATURE == 0.5
    assert default == sampling.gumbel_softmax() == Estimator("gumbel_softmax")
    assert sampling.check_estimator("none").temperature is None
    spec = sampling.check_estimator("gumbel_softmax:0.3")
    assert spec == sampling.gumbel_softmax(0.3) == Estimator("gumbel_softmax", 0.3)
    assert spec.temperature == 0.3 and isinstance(spec.temperature, float)
    assert str(spec) == "gumbel_softmax:0.3" and sampling.check_estimator(str(spec)) == spec
    assert str(sampling.check_estimator("stochastic")) == "stochastic"
    assert len({spec, sampling.gumbel_softmax(0.3), default}) == 2  # hashable, by value
    # A spec object works wherever a name does, inside jit too.
    p = jnp.full((1000,), 0.4)
    key = jax.random.key(3)
    by_name = bernoulli(key, p, "gumbel_softmax:0.3")
    by_spec = jax.jit(lambda q: bernoulli(key, q, spec))(p)
    np.testing.assert_array_equal(np.asarray(by_name), np.asarray(by_spec))


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("magic", "'magic'"),
        ("", "''"),
        (None, "None"),
        ("magic:0.3", "'magic:0.3'"),
        ("straight_through:0.3", "'0.3'"),
        ("stochastic:1", "'1'"),
        ("gumbel_softmax:0", "'0'"),
        ("gumbel_softmax:-1", "'-1'"),
        ("gumbel_softmax:nan", "'nan'"),
        ("gumbel_softmax:inf", "'inf'"),
        ("gumbel_softmax:hot", "'hot'"),
    ],
)
def test_bad_estimator_specs_raise_value_error_naming_the_value(spec, fragment):
    calls = [lambda: sampling.check_estimator(spec)]
    if spec is not None:
        # A draw's ``estimator=None`` now means "the run's estimator" (checked in the
        # None branch below), so only a given spec can be a bad one there.
        calls += [
            lambda: bernoulli(jax.random.key(0), jnp.full((4,), 0.5), spec),
            lambda: categorical(jax.random.key(0), jnp.full((4, 2), 0.5), spec),
        ]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        assert fragment in str(err.value), str(err.value)
    if spec is None:
        # None in a draw is the enclosing run's estimator (sampling.estimator_scope),
        # "none" outside any run: same events, and the scope's gradient.
        p = jnp.full((64,), 0.5)
        key = jax.random.key(0)
        np.testing.assert_array_equal(np.asarray(bernoulli(key, p, spec)), np.asarray(bernoulli(key, p, "none")))
        np.testing.assert_array_equal(
            np.asarray(categorical(key, jnp.full((4, 2), 0.5), spec)),
            np.asarray(categorical(key, jnp.full((4, 2), 0.5), "none")),
        )
        assert float(jnp.abs(jax.grad(lambda q: bernoulli(key, q, spec).sum())(p)).sum()) == 0.0
        with sampling.estimator_scope("straight_through"):
            g = jax.grad(lambda q: bernoulli(key, q, spec).sum())(p)
        np.testing.assert_array_equal(np.asarray(g), np.ones(64))
    if spec in ("magic", "", None, "magic:0.3"):
        with pytest.raises(ValueError, match="unknown gradient estimator"):
            sampling.check_estimator(spec)


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan"), float("inf"), "warm", None])
def test_bad_temperatures_raise_value_error_naming_the_value(temperature):
    if temperature is None:  # None means "the default" for gumbel_softmax ...
        assert Estimator("gumbel_softmax", None).temperature == 0.5
        with pytest.raises(ValueError, match="takes no temperature, got 0.5"):  # ... only
            Estimator("straight_through", 0.5)
        return
    with pytest.raises(ValueError, match="temperature must be a finite number > 0") as err:
        sampling.gumbel_softmax(temperature)
    assert repr(temperature) in str(err.value)
    with pytest.raises(ValueError, match="temperature"):
        Estimator("gumbel_softmax", temperature)


def test_categorical_needs_a_class_axis():
    with pytest.raises(ValueError, match="class axis"):
        categorical(jax.random.key(0), jnp.float32(0.5))


# --------------------------------------------------------------------------- forward values
def test_bernoulli_forward_is_exactly_binary_identical_across_estimators_and_frequent_as_p():
    levels = np.linspace(0.0, 1.0, 21, dtype=np.float32)  # includes 0 and 1 exactly
    p = jnp.asarray(np.repeat(levels, 10_000))
    key = jax.random.key(11)
    reference = np.asarray(sampling.uniform(key, p.shape) < p, dtype=np.float32)
    draws = jax.jit(lambda q: {spec: bernoulli(key, q, spec) for spec in ALL_SPECS})(p)
    for spec in ALL_SPECS:
        x = np.asarray(draws[spec])
        assert x.dtype == np.float32
        assert set(np.unique(x)) <= {0.0, 1.0}
        np.testing.assert_array_equal(x, reference, err_msg=spec)
        freq = x.reshape(len(levels), -1).mean(axis=1)
        assert np.all(np.abs(freq - levels) < 0.015), (spec, freq - levels)
        assert freq[0] == 0.0 and freq[-1] == 1.0
    # Same under jit and under vmap over keys.
    keys = jax.random.split(key, 3)
    for spec in GRADIENT_ESTIMATORS:
        batched = jax.jit(jax.vmap(lambda k: bernoulli(k, p[:2000], spec)))(keys)
        plain = jax.vmap(lambda k: bernoulli(k, p[:2000], "none"))(keys)
        np.testing.assert_array_equal(np.asarray(batched), np.asarray(plain))


def test_categorical_forward_is_one_hot_identical_across_estimators_and_frequent_as_probs():
    rows = 40_000
    probs = jnp.tile(jnp.array([0.1, 0.0, 0.2, 0.3, 0.4], jnp.float32), (rows, 1))
    key = jax.random.key(12)
    reference = None
    draws = jax.jit(lambda q: {spec: categorical(key, q, spec) for spec in ALL_SPECS})(probs)
    for spec in ALL_SPECS:
        x = np.asarray(draws[spec])
        assert x.shape == (rows, 5) and x.dtype == np.float32
        assert set(np.unique(x)) <= {0.0, 1.0}
        np.testing.assert_array_equal(x.sum(axis=1), np.ones(rows))
        if reference is None:
            reference = x
        np.testing.assert_array_equal(x, reference, err_msg=spec)
    freq = reference.mean(axis=0)
    assert freq[1] == 0.0, "a class with probability 0 is never drawn"
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.2, 0.3, 0.4], atol=0.008)
    # Unnormalised rows draw in proportion; a row of zeros draws class 0.
    scaled = np.asarray(categorical(key, probs * 7.0))
    np.testing.assert_array_equal(scaled, reference)
    zeros = np.asarray(categorical(key, jnp.zeros((3, 4)), "stochastic"))
    np.testing.assert_array_equal(zeros, np.eye(4)[[0, 0, 0]])
    # Batch dimensions: [..., K].
    batched = np.asarray(categorical(key, jnp.full((2, 3, 4), 0.25), "gumbel_softmax"))
    assert batched.shape == (2, 3, 4) and np.all(batched.sum(-1) == 1.0)


def test_categorical_uniforms_are_independent_of_bernoulli_with_the_same_key():
    key = jax.random.key(13)
    n = 50_000
    x = np.asarray(bernoulli(key, jnp.full((n, 2), 0.5)))[:, 0]
    c = np.asarray(categorical(key, jnp.full((n, 2), 0.5)))[:, 0]
    assert abs(np.corrcoef(x, c)[0, 1]) < 0.02


def test_raising_probabilities_only_moves_draws_towards_the_raised_class():
    """Common random numbers for categorical: raising probs_j can only move draws to j."""
    key = jax.random.key(14)
    base = jnp.tile(jnp.array([0.2, 0.3, 0.5]), (20_000, 1))
    raised = base.at[:, 1].add(0.1)
    a = np.asarray(categorical(key, base)).argmax(1)
    b = np.asarray(categorical(key, raised)).argmax(1)
    moved = a != b
    assert moved.any() and np.all(b[moved] == 1)


def test_probabilities_outside_the_unit_interval_are_clipped():
    """Documented behaviour: ``p`` is clipped to [0, 1]; the gradient is that of the clipped
    value (0 outside, finite at the ends). Categorical: negative entries count as 0."""
    p = jnp.tile(jnp.array([-0.5, -1e-3, 1.0 + 1e-3, 1.5, 7.0], jnp.float32), 1000)
    probs = jnp.tile(jnp.array([-0.3, 0.5, 0.5]), (5000, 1))

    @jax.jit
    def draw(p, probs):
        x = {}
        for spec in ALL_SPECS:
            x[spec] = jax.value_and_grad(lambda q: bernoulli(jax.random.key(0), q, spec).sum())(p)
            x[spec] += (categorical(jax.random.key(1), probs, spec),)
        return x

    for spec, (_, g, draws) in draw(p, probs).items():
        x = np.asarray(bernoulli(jax.random.key(0), p, spec)).reshape(1000, 5)
        assert np.all(x[:, :2] == 0.0) and np.all(x[:, 2:] == 1.0), spec
        np.testing.assert_array_equal(np.asarray(g), np.zeros(5000), err_msg=spec)
        assert np.asarray(draws)[:, 0].sum() == 0.0, spec


def test_relaxed_event_agrees_with_the_hard_event():
    """The Gumbel-softmax relaxation uses the same uniform: sign(logit p - logit u) is the
    event u < p, except within float rounding of a tie, and is finite at u = 0."""
    u = jnp.asarray((np.arange(4096) * 2.0**-12).astype(np.float32))  # includes u = 0
    p = jnp.asarray(np.concatenate([np.linspace(0.0, 1.0, 257), [2.0**-24, 1 - 2.0**-24]]).astype(np.float32))
    z = np.asarray(sampling._relaxed_bernoulli_logit(p[:, None], u[None, :]))
    assert np.all(np.isfinite(z)) and np.abs(z).max() < 34.5
    hard = np.asarray(u[None, :] < p[:, None])
    agree = (z > 0) == hard
    near_tie = np.abs(np.asarray(p)[:, None] - np.asarray(u)[None, :]) < 1e-6
    # p = 0 is held at 2**-24 in the relaxation, so at u = 0 it reads "on"; the gradient
    # there is 0 (p below 2**-24), and the forward value is the hard event anyway.
    at_zero = (np.asarray(p)[:, None] == 0.0) & (np.asarray(u)[None, :] == 0.0)
    assert np.all(agree | near_tie | at_zero), np.argwhere(~(agree | near_tie | at_zero))[:5]


@pytest.mark.parametrize("spec", ALL_SPECS + ("gumbel_softmax:0.001", "gumbel_softmax:50"))
def test_no_nan_or_infinite_gradients_at_the_ends(spec):
    ends = np.array([0.0, 2.0**-30, 2.0**-24, 1e-4, 0.5, 1 - 1e-4, 1 - 2.0**-24, 1.0], np.float32)
    p = jnp.asarray(np.repeat(ends, 4096))
    # Through a chain (the second probability depends on the first event) and through
    # a logit parametrisation saturated at both ends.
    def chain(theta):
        q = jax.nn.sigmoid(theta)
        first = bernoulli(jax.random.key(6), q, spec)
        return bernoulli(jax.random.key(7), 0.2 + 0.8 * first * q, spec).sum()

    theta = jnp.asarray(np.repeat(np.array([-200.0, -30.0, 0.0, 30.0, 200.0], np.float32), 1024))
    probs = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [2.0**-30, 0.5, 0.5], [1e-4, 0.0, 1 - 1e-4]])
    probs = jnp.tile(probs, (512, 1))
    logits = jnp.tile(jnp.array([[-100.0, 0.0, 100.0], [0.0, 0.0, 0.0]]), (512, 1))
    w = jnp.array([1.0, -2.0, 3.0])

    @jax.jit
    def gradients(p, theta, probs, logits):
        return (
            jax.grad(lambda q: bernoulli(jax.random.key(5), q, spec).sum())(p),
            jax.grad(chain)(theta),
            jax.grad(lambda q: (categorical(jax.random.key(8), q, spec) * w).sum())(probs),
            jax.grad(lambda t: (categorical(jax.random.key(9), jax.nn.softmax(t), spec) * w).sum())(logits),
        )

    g, *others = (np.asarray(x) for x in gradients(p, theta, probs, logits))
    assert np.all(np.isfinite(g)), spec
    for other in others:
        assert np.all(np.isfinite(other)), spec
    g = g.reshape(len(ends), -1)
    if spec == "straight_through":
        assert np.all(g == 1.0)
    if spec == "stochastic":
        assert np.all(g[0] == 1.0), "at p = 0 every event is off: weight 1 / (1 - 0)"
        assert np.all(g[-1] == 0.0), "at p = 1 every event is on: weight 0"


# --------------------------------------------------------------------------- gradients
def linear(p, key, estimator):
    return bernoulli(key, p, estimator)


def test_linear_model_mean_gradient():
    """(a) f = X, X ~ Bern(p): the truth is d/dp E[X] = 1.

    Straight-through returns exactly 1 on every seed. Stochastic is unbiased with variance
    p / (1 - p). Gumbel-softmax is biased at every temperature; at p = 0.3 its mean is
    0.74 (tau = 1), 0.91 (0.5), 0.98 (0.2): the bias is negative and shrinks toward 0 as the
    temperature falls, while the spread grows (sd 0.37, 0.84, 1.7).
    """
    p = 0.3
    temperatures = (1.0, 0.5, 0.2)
    specs = ("straight_through", "stochastic", *(sampling.gumbel_softmax(t) for t in temperatures))
    n = 50_000
    measured = per_seed_gradients(linear, p, specs, n=n)
    fd = measured["fd"]
    fd_mean, fd_se = mean_se(fd)
    assert abs(fd_mean - 1.0) < K_SE * fd_se, (fd_mean, fd_se)

    np.testing.assert_array_equal(measured["straight_through"], np.ones(n))

    stochastic = measured["stochastic"]
    check_against_theory("stochastic", stochastic, 1.0, 1.0, fd)
    assert stochastic.var() == pytest.approx(p / (1 - p), rel=0.05)
    assert set(np.round(np.unique(stochastic), 5)) == {0.0, round(1 / (1 - p), 5)}

    biases = {}
    spreads = {}
    for tau in temperatures:
        grads = measured[str(sampling.gumbel_softmax(tau))]
        # At tau = 0.2 the bias (-0.017) is ~2 s.e.: checked against its theory only.
        biases[tau] = check_against_theory(
            f"gumbel_softmax:{tau}", grads, 1.0, gumbel_slope(p, tau), certain=tau > 0.2
        )
        spreads[tau] = grads.std()
    assert -0.3 < biases[1.0] < -0.2 and -0.12 < biases[0.5] < -0.07, biases
    assert abs(biases[1.0]) > abs(biases[0.5]) > abs(biases[0.2]), biases
    assert spreads[1.0] < spreads[0.5] < spreads[0.2], spreads


def squared(p, key, estimator):
    return (bernoulli(key, p, estimator) - 0.25) ** 2


def cubed(p, key, estimator):
    return bernoulli(key, p, estimator) ** 3


def product(p, key, estimator):
    k1, k2 = jax.random.split(key)
    return bernoulli(k1, p, estimator) * bernoulli(k2, p, estimator)


def test_nonlinear_models_mean_gradient():
    """(b) Nonlinear functions of the draws.

    For f = h(X), X ~ Bern(p), the truth is h(1) - h(0); straight-through's mean is the
    p-weighted slope p h'(1) + (1 - p) h'(0); stochastic's is h'(0) (the slope where the
    event is off); Gumbel-softmax's lies in between and tends to (h'(0) + h'(1)) / 2 as
    the temperature falls (the relaxed slope concentrates at u = p).

    - h(X) = (X - 1/4)^2 at p = 0.3: truth 0.5, straight-through 0.1 (bias -0.4),
      stochastic -0.5 (bias -1.0), Gumbel tau=0.5 0.26 (bias -0.24). All biased;
      straight-through beats stochastic (for any quadratic h it always does: its bias is
      (p - 1/2)(h'(1) - h'(0)), stochastic's -(h'(1) - h'(0)) / 2).
    - h(X) = X^3 at p = 0.8: truth 1, straight-through 2.4 (bias +1.4), stochastic 0
      (bias -1.0), Gumbel tau=0.5 1.95 (bias +0.95). Here stochastic beats straight-
      through, as theory says it does for X^3 whenever p > 2/3.
    - f = X Y, X, Y ~ Bern(p) independent, p = 0.4: truth 2p = 0.8. Multilinear in the
      draws, so straight-through and stochastic are unbiased; Gumbel-softmax (tau=0.5)
      is biased by 2p (E[ds/dp] - 1) = -0.10.
    """
    tau = sampling.DEFAULT_TEMPERATURE
    cases = [
        # model, p, h'(0), h'(1), truth
        (squared, 0.3, -0.5, 1.5, 0.5),
        (cubed, 0.8, 0.0, 3.0, 1.0),
    ]
    for model, p, slope_off, slope_on, truth in cases:
        measured = per_seed_gradients(model, p)
        fd = measured["fd"]
        fd_mean, fd_se = mean_se(fd)
        assert abs(fd_mean - truth) < K_SE * fd_se, (model.__name__, fd_mean, fd_se)
        on, off = gumbel_slope_split(p, tau)
        theory = {
            "straight_through": p * slope_on + (1 - p) * slope_off,
            "stochastic": slope_off,
            "gumbel_softmax": on * slope_on + off * slope_off,
        }
        bias = {}
        for spec in GRADIENT_ESTIMATORS:
            bias[spec] = check_against_theory(
                f"{model.__name__} {spec}", measured[spec], truth, theory[spec], fd
            )
        if model is squared:
            assert abs(bias["straight_through"]) < abs(bias["stochastic"]), bias
            assert bias["straight_through"] < -0.3 and bias["stochastic"] < -0.9, bias
        else:
            assert abs(bias["stochastic"]) < abs(bias["straight_through"]), bias
            assert bias["straight_through"] > 1.3 and bias["stochastic"] < -0.9, bias

    p = 0.4
    measured = per_seed_gradients(product, p)
    theory = {"straight_through": 2 * p, "stochastic": 2 * p, "gumbel_softmax": 2 * p * gumbel_slope(p, tau)}
    for spec in GRADIENT_ESTIMATORS:
        check_against_theory(f"product {spec}", measured[spec], 2 * p, theory[spec], measured["fd"])


A, B = 0.2, 0.5  # linear link: X2 ~ Bern(A + B X1)
ALPHA, BETA = -2.0, 3.0  # logistic link: X2 ~ Bern(sigmoid(ALPHA + BETA X1))


def chain_linear(p, key, estimator):
    k1, k2 = jax.random.split(key)
    first = bernoulli(k1, p, estimator)
    return bernoulli(k2, A + B * first, estimator)


def chain_logistic(p, key, estimator):
    k1, k2 = jax.random.split(key)
    first = bernoulli(k1, p, estimator)
    return bernoulli(k2, jax.nn.sigmoid(ALPHA + BETA * first), estimator)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_two_step_chain_mean_gradient():
    """(c) X1 ~ Bern(p), X2 ~ Bern(q(X1)), f = X2, at p = 0.3.

    - Linear link q = 0.2 + 0.5 X1: truth d/dp E[X2] = 0.5. Straight-through gives 0.5 on
      every seed and stochastic is unbiased (the program is affine in each event);
      Gumbel-softmax (tau=0.5) is biased through both relaxed slopes: mean 0.43.
    - Logistic link q = sigmoid(-2 + 3 X1): truth sigmoid(1) - sigmoid(-2) = 0.612.
      Straight-through's mean is 3 (0.3 sigmoid'(1) + 0.7 sigmoid'(-2)) = 0.398 (bias -0.21);
      stochastic's is 3 sigmoid'(-2) = 0.315 (bias -0.30); Gumbel-softmax is biased too.
    Each is also compared with a many-seed finite difference (common random numbers).
    """
    p = 0.3
    tau = sampling.DEFAULT_TEMPERATURE
    on, off = gumbel_slope_split(p, tau)

    measured = per_seed_gradients(chain_linear, p)
    fd = measured["fd"]
    fd_mean, fd_se = mean_se(fd)
    assert abs(fd_mean - B) < K_SE * fd_se, (fd_mean, fd_se)
    np.testing.assert_allclose(measured["straight_through"], B, rtol=1e-6)
    theory = {
        "straight_through": B,
        "stochastic": B,
        "gumbel_softmax": B * (on * gumbel_slope(A + B, tau) + off * gumbel_slope(A, tau)),
    }
    for spec in GRADIENT_ESTIMATORS:
        check_against_theory(f"chain_linear {spec}", measured[spec], B, theory[spec], fd)

    q_on, q_off = _sigmoid(ALPHA + BETA), _sigmoid(ALPHA)
    dq_on, dq_off = BETA * q_on * (1 - q_on), BETA * q_off * (1 - q_off)
    truth = q_on - q_off
    measured = per_seed_gradients(chain_logistic, p)
    fd = measured["fd"]
    fd_mean, fd_se = mean_se(fd)
    assert abs(fd_mean - truth) < K_SE * fd_se, (fd_mean, fd_se, truth)
    theory = {
        "straight_through": p * dq_on + (1 - p) * dq_off,
        "stochastic": dq_off,
        "gumbel_softmax": on * dq_on * gumbel_slope(q_on, tau) + off * dq_off * gumbel_slope(q_off, tau),
    }
    bias = {}
    for spec in GRADIENT_ESTIMATORS:
        bias[spec] = check_against_theory(
            f"chain_logistic {spec}", measured[spec], truth, theory[spec], fd
        )
    assert bias["straight_through"] < -0.15 and bias["stochastic"] < -0.25, bias


def test_categorical_mean_gradient():
    """f = w . onehot, onehot ~ Cat(probs), with unnormalised weights probs = (0.5, 1, 1.5).

    Truth: d/dprobs_j E[f] = (w_j - E[w]) / S, S = 3. Stochastic ((e_j - onehot) / S per
    draw) is unbiased. Straight-through returns w_j: biased here (it ignores the
    normalisation) but exact under a softmax parametrisation, where stochastic returns the
    same thing. Gumbel-softmax (tau=0.5) is biased.
    """
    w = jnp.array([1.0, -2.0, 4.0])
    probs = np.array([0.5, 1.0, 1.5], np.float32)
    total = probs.sum()
    truth = (np.asarray(w) - float(np.dot(w, probs / total))) / total
    keys = jax.random.split(jax.random.key(21), N_SEEDS)

    def f(q, key, spec):
        return jnp.sum(categorical(key, q, spec) * w)

    steps = H * jnp.eye(3)  # one finite difference per component of probs

    def one_seed(q, key):
        out = {spec: jax.grad(f)(q, key, spec) for spec in GRADIENT_ESTIMATORS}
        out["fd"] = jax.vmap(lambda step: (f(q + step, key, "none") - f(q - step, key, "none")) / (2 * H))(steps)
        return out

    out = jax.jit(jax.vmap(one_seed, in_axes=(None, 0)))(jnp.asarray(probs), keys)
    out = {name: np.asarray(values, np.float64) for name, values in out.items()}
    fd = out["fd"]
    assert np.all(np.abs(fd.mean(0) - truth) < K_SE * fd.std(0) / math.sqrt(N_SEEDS)), (fd.mean(0), truth)

    measured = {}
    for spec in GRADIENT_ESTIMATORS:
        grads = out[spec]
        mean, se = grads.mean(0), np.maximum(grads.std(0) / math.sqrt(N_SEEDS), 1e-6)
        measured[spec] = mean - truth
        message = f"{spec}: mean {mean} +- {se}, truth {truth}, bias {mean - truth}"
        if spec == "stochastic":
            assert np.all(np.abs(mean - truth) < K_SE * se), message
        else:
            assert np.max(np.abs(mean - truth) / se) > K_FAR, message
    np.testing.assert_allclose(measured["straight_through"], np.asarray(w) - truth, rtol=1e-5)

    # Under a softmax parametrisation straight-through and stochastic are both exact.
    theta = jnp.array([0.3, -0.2, 0.1])
    soft = jax.nn.softmax(theta)
    jacobian = jnp.diag(soft) - jnp.outer(soft, soft)
    exact = np.asarray(jacobian.T @ w)
    softmax_grads = jax.jit(jax.vmap(
        lambda t, k: {s: jax.grad(lambda t: f(jax.nn.softmax(t), k, s))(t) for s in ("straight_through", "stochastic")},
        in_axes=(None, 0)))(theta, keys[:2000])
    for spec, grads in softmax_grads.items():
        np.testing.assert_allclose(np.asarray(grads), np.tile(exact, (2000, 1)), atol=1e-5, err_msg=spec)
