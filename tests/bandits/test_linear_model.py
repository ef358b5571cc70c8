"""The linear posterior: factor and mean equal the closed form, forgetting follows a change, growth is exact."""

import numpy as np
import pytest

from bandits.linear_model import LinearPosterior, draw_joint


def direct(xs, rs, lam, mean0, weights=None):
    """Closed-form ridge posterior: A = λI + Σ w x xᵀ, μ = A⁻¹(λ μ0 + Σ w r x)."""
    w = np.ones(len(rs)) if weights is None else weights
    a = lam * np.eye(xs.shape[1]) + (xs * w[:, None]).T @ xs
    return a, np.linalg.solve(a, lam * mean0 + (xs * (w * rs)[:, None]).sum(axis=0))


def test_rank_one_updates_match_the_closed_form_posterior():
    rng = np.random.default_rng(0)
    xs, rs = rng.normal(size=(400, 6)), rng.normal(size=400)
    mean0 = rng.normal(size=6)
    post = LinearPosterior(6, prior_precision=2.0, prior_mean=mean0)
    for x, r in zip(xs, rs, strict=True):
        post.update(x, r)
    a, mu = direct(xs, rs, 2.0, mean0)
    r_factor = np.asarray(post.snapshot()["r"])
    np.testing.assert_allclose(r_factor.T @ r_factor, a, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(post.mean, mu, rtol=1e-9, atol=1e-10)


def test_predictive_scale_is_the_noise_times_z_inverse_precision_z():
    rng = np.random.default_rng(1)
    post = LinearPosterior(3, prior_precision=1.0, prior_shape=2.0, prior_scale=3.0)
    xs = rng.normal(size=(50, 3))
    for x in xs:
        post.update(x, float(x.sum() + rng.normal()))
    zs = rng.normal(size=(4, 3))
    means, scale, dof = post.predictive_joint(zs)
    a, b = post.noise()
    precision, _ = direct(xs, np.zeros(50), 1.0, np.zeros(3))
    np.testing.assert_allclose(scale, b / a * zs @ np.linalg.solve(precision, zs.T), rtol=1e-9)
    np.testing.assert_allclose(means, zs @ post.mean)
    assert dof == pytest.approx(2 * (2.0 + 25))


def test_forgetting_follows_an_abrupt_change_and_keeps_the_prior():
    rng = np.random.default_rng(2)
    remembers, forgets = LinearPosterior(2), LinearPosterior(2)
    gamma = 2.0 ** (-1 / 200)
    for t in range(4000):
        slope = 1.0 if t < 2000 else -1.0
        x = np.array([1.0, rng.normal()])
        r = slope * x[1] + 0.1 * rng.normal()
        remembers.update(x, r)
        forgets.decay(gamma)
        forgets.update(x, r)
    assert forgets.mean[1] == pytest.approx(-1.0, abs=0.05)
    assert remembers.mean[1] > -0.2  # without forgetting the old regime still weighs half
    # the precision never falls below the prior's: the re-injected pseudo-observations keep it
    r_factor = np.asarray(forgets.snapshot()["r"])
    assert np.linalg.eigvalsh(r_factor.T @ r_factor).min() >= 0.9


def test_growing_adds_an_independent_prior_block():
    rng = np.random.default_rng(3)
    grown, whole = LinearPosterior(2), LinearPosterior(4, prior_precision=1.0)
    for _ in range(30):
        x = rng.normal(size=2)
        grown.update(x, 1.0)
        whole.update(np.concatenate([x, [0.0, 0.0]]), 1.0)
    grown.grow(2)
    np.testing.assert_allclose(grown.mean, whole.mean, atol=1e-12)
    zs = rng.normal(size=(3, 4))
    np.testing.assert_allclose(grown.predictive_joint(zs)[1], whole.predictive_joint(zs)[1], rtol=1e-9)


def test_snapshot_restores_the_same_posterior():
    rng = np.random.default_rng(4)
    post = LinearPosterior(3)
    for _ in range(40):
        post.decay(0.99)
        post.update(rng.normal(size=3), float(rng.normal()))
    twin = LinearPosterior(3)
    twin.restore(post.snapshot())
    assert twin.snapshot() == post.snapshot()
    np.testing.assert_array_equal(twin.mean, post.mean)


def test_joint_draws_have_the_predictive_mean_and_covariance():
    means = np.array([1.0, 2.0, 0.5])
    scale = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.25]])
    draws = draw_joint(means, scale, 1e6, 200_000, np.random.default_rng(5))
    np.testing.assert_allclose(draws.mean(axis=0), means, atol=0.01)
    np.testing.assert_allclose(np.cov(draws.T), scale, atol=0.01)
    heavy = draw_joint(means, scale, 3.0, 200_000, np.random.default_rng(6))
    assert np.cov(heavy.T)[0, 0] == pytest.approx(3.0, rel=0.1)  # a t with 3 dof has variance 3× its scale²
