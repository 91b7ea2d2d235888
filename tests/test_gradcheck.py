"""jaxsim.gradcheck: autodiff gradients against common-random-number finite differences.

Losses with a known derivative (one right, one wrong by a factor), a real SIR run whose
estimator gives no gradient (flagged, with the parameter named), tables checked per entry,
and bad input.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsim
from jaxsim import generators, gradcheck
from jaxsim.models import sir


@pytest.fixture(scope="module")
def params():
    return sir.default_params(tau=0.1, gamma=0.2)


def noisy_quadratic(key, p):
    """3 tau^2 + gamma * noise(key): derivatives 6 tau and noise(key), exactly."""
    noise = jax.random.normal(key, ())
    return 3.0 * p.tau**2 + p.gamma * noise


@jax.custom_jvp
def doubled_slope(x):
    return x


@doubled_slope.defjvp
def _doubled_slope_jvp(primals, tangents):
    return primals[0], 2.0 * tangents[0]


def test_a_right_gradient_is_ok_and_its_numbers_are_the_derivatives(params):
    with warnings.catch_warnings():
        warnings.simplefilter("error", gradcheck.GradientWarning)
        report = gradcheck.check_gradients(noisy_quadratic, params, ["tau", "gamma"], seeds=64, key=3)
    assert report.ok
    tau, gamma = report["tau"], report["gamma"]
    assert tau.verdict == gamma.verdict == "ok"
    assert tau.autodiff_mean == pytest.approx(0.6, rel=1e-5)
    assert tau.fd_mean == pytest.approx(0.6, rel=1e-3)  # central difference of a quadratic: exact up to float32
    assert tau.autodiff_se == pytest.approx(0.0, abs=1e-6)
    # d/d gamma is the seed's noise: a spread over seeds, equal on both sides seed by seed.
    noise = np.asarray(jax.vmap(lambda k: jax.random.normal(k, ()))(jax.random.split(jax.random.key(3), 64)))
    assert gamma.autodiff_mean == pytest.approx(noise.mean(), abs=1e-5)
    assert gamma.autodiff_se == pytest.approx(noise.std(ddof=1) / 8, rel=1e-4)
    assert abs(gamma.bias) < 1e-3 and gamma.bias_se < 1e-3
    assert report.finite_difference_evaluations == 4 and report.seeds == 64
    assert report.forward_seconds > 0 and report.gradient_seconds > 0 and np.isfinite(report.cost_ratio)
    table = report.table()
    assert "tau" in table and "gamma" in table and "64 seeds" in table


def test_a_wrong_gradient_is_flagged_with_the_parameter_and_its_error(params):
    def loss(key, p):
        return doubled_slope(p.tau) * 10.0 + 0.0 * p.gamma

    with pytest.warns(gradcheck.GradientWarning, match=r"SIRParams\.tau is biased: autodiff 20 .* finite differences 10"):
        report = gradcheck.check_gradients(loss, params, ["tau"], seeds=4)
    assert not report.ok
    assert report["tau"].verdict == "biased"
    assert report["tau"].relative_error == pytest.approx(1.0, rel=1e-3)
    # Within a tolerance that allows it, the same gradient passes.
    assert gradcheck.check_gradients(loss, params, ["tau"], seeds=4, tolerance=1.5, warn=False).ok


def test_a_noisy_disagreement_is_uncertain_not_biased(params):
    """Autodiff off by 50% but the finite differences' noise much larger: no verdict."""

    def loss(key, p):
        noise = jax.random.normal(key, ())
        return doubled_slope(p.tau) * 0.5 + 0.75 * p.tau + jax.lax.stop_gradient(p.tau) * 40.0 * noise

    report = gradcheck.check_gradients(loss, params, ["tau"], seeds=4, warn=False)
    c = report["tau"]
    assert c.autodiff_mean == pytest.approx(1.75, rel=1e-5)
    assert c.relative_error > 0.2 and c.verdict == "uncertain", c


@pytest.fixture(scope="module")
def small_sir():
    n = 3000
    population = generators.population(n, {"contacts": generators.erdos_renyi(n, 8.0, seed=1)})
    world = sir.build_world(population)
    model = sir.sir_model(contact_method="dense")
    params = sir.default_params(world, tau=0.06, gamma=0.2, initial_infected_share=0.01)
    state = model.init(jax.random.key(0), params, world)
    return model, world, params, state


def test_a_run_without_an_estimator_is_flagged_on_a_real_model(small_sir):
    """``estimator="none"`` differentiates nothing through the draws: autodiff 0 against a
    clearly positive effect of ``tau`` on the infections by finite differences."""
    model, world, params, state = small_sir

    def infections(key, p):
        _, metrics = jaxsim.simulate(model, key, state, p, world, 30, estimator="none")
        return metrics["recovered"][-1].astype(jnp.float32) + metrics["infectious"][-1].astype(jnp.float32)

    with pytest.warns(gradcheck.GradientWarning, match=r"SIRParams\.tau is biased: autodiff 0 "):
        report = gradcheck.check_gradients(infections, params, ["tau"], seeds=8, relative_step=0.2)
    c = report["tau"]
    assert c.autodiff_mean == 0.0
    assert c.fd_mean > 5 * c.fd_se > 0, c  # more transmission, more infections, beyond the noise
    assert c.verdict == "biased"


def test_array_parameters_are_checked_entry_by_entry():
    @jaxsim.params
    class TableParams:
        rate: jax.Array = jaxsim.param((0.5, 2.0), bounds=(0.0, 10.0))

    p = jaxsim.parameters.build(TableParams)
    report = gradcheck.check_gradients(lambda key, q: jnp.sum(q.rate**3), p, ["rate"], seeds=2, warn=False)
    assert [c.name for c in report.coordinates] == ["rate[0]", "rate[1]"]
    assert report["rate[0]"].autodiff_mean == pytest.approx(0.75, rel=1e-5)
    assert report["rate[1]"].fd_mean == pytest.approx(12.0, rel=1e-2)
    assert report.ok


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"names": ["beta"]}, r"SIRParams has no declared parameter 'beta'"),
        ({"names": []}, r"name at least one parameter"),
        ({"names": ["tau"], "seeds": 1}, r"seeds must be a whole number >= 2, got 1"),
        ({"names": ["tau"], "steps": {"tau": 0.5}}, r"SIRParams.tau = 0.1 \+- step 0.5 leaves its bounds \[0.0, 1.0\]"),
        ({"names": ["tau"], "steps": {"gamma": 0.01}}, r"steps given for \['gamma'\]"),
        ({"names": ["tau"], "tolerance": -1}, r"tolerance must be a finite number > 0"),
    ],
)
def test_bad_input_is_named(params, kwargs, message):
    names = kwargs.pop("names")
    with pytest.raises(jaxsim.InputError, match=message):
        gradcheck.check_gradients(noisy_quadratic, params, names, **kwargs)


def test_a_loss_that_is_not_a_finite_scalar_is_refused(params):
    with pytest.raises(jaxsim.InputError, match=r"the loss is not finite at the given parameters \(seed 0: "):
        gradcheck.check_gradients(lambda key, p: jnp.log(p.tau - 0.1), params, ["tau"], seeds=2)
    with pytest.raises(jaxsim.InputError, match=r"the loss must be a scalar, got shape \(2,\)"):
        gradcheck.check_gradients(lambda key, p: jnp.stack([p.tau, p.gamma]), params, ["tau"], seeds=2)


# ------------------------------------------------- Sim.calibrate checks a user's gradients
@jaxsim.params
class GrowthParams:
    rate: jax.Array = jaxsim.param(0.05, bounds=(0.0, 1.0), units="probability per agent per day")


@jaxsim.state
class GrowthState:
    active: jax.Array


def growth_model(draw):
    """Each inactive agent turns active with probability ``rate`` a day, drawn by ``draw``."""

    def init(key, params, world):
        return GrowthState(active=jnp.zeros(world.num_slots, jnp.float32))

    def turn(key, state, params, t, world):
        p = jnp.full(world.num_slots, params.rate) * (1.0 - state.active) * world.real_agents()
        new = draw(key, p)
        return state.replace(active=state.active + new), {"new_active": new.sum()}

    return jaxsim.Model(name=f"growth_{draw.__name__}", substeps=[turn], init=init,
                        observe=lambda s, p, w: {"active": s.active.sum()}, params_type=GrowthParams,
                        metrics=[jaxsim.Metric("active", "count", "agents"),
                                 jaxsim.Metric("new_active", "flow", "agents")])


def plain_bernoulli(key, p):
    """A user's draw straight from jax.random: no gradient reaches ``p``."""
    return jax.random.bernoulli(key, p).astype(jnp.float32)


def library_bernoulli(key, p):
    return jaxsim.bernoulli(key, p)


def test_sim_calibrate_warns_naming_a_parameter_whose_gradient_is_wrong():
    from jaxsim.calibration import Observation

    population = generators.population(3000, {"contacts": generators.erdos_renyi(3000, 4.0, seed=1)})
    observation = Observation("new_active", 7)
    observed = np.asarray([600.0, 450.0])
    broken = jaxsim.Sim(growth_model(plain_bernoulli), population, days=14, seed=0)
    with pytest.warns(gradcheck.GradientWarning, match=r"GrowthParams\.rate is biased: autodiff 0 .*relative error 100%"):
        result = broken.calibrate(observed, fit=["rate"], observation=observation, steps=2)
    assert result.gradient_check["rate"].verdict == "biased"
    right = jaxsim.Sim(growth_model(library_bernoulli), population, days=14, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gradcheck.GradientWarning)
        result = right.calibrate(observed, fit=["rate"], observation=observation, steps=2)
    assert result.gradient_check["rate"].verdict == "ok"
    skipped = right.calibrate(observed, fit=["rate"], observation=observation, steps=2, gradient_check=0)
    assert skipped.gradient_check is None
    with pytest.raises(jaxsim.InputError, match="gradient_check must be 0"):
        right.calibrate(observed, fit=["rate"], observation=observation, steps=2, gradient_check=1)
