"""docs/theory/identities.md §8 identities 1-2: partition cancellation, score and covariance by finite differences."""
import numpy as np

from simlab.policy import feature_covariance, kl_to, log_policy, policy, score


def _instance(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 5, 4)), rng.standard_normal(4)


def test_partition_cancellation():
    for seed in range(5):
        phi, theta = _instance(seed)
        lp = log_policy(theta, phi)
        for a in range(5):
            for b in range(5):
                expected = (phi[:, a] - phi[:, b]) @ theta
                np.testing.assert_allclose(lp[:, a] - lp[:, b], expected, atol=1e-12)


def test_log_softmax_is_stable_for_huge_logits():
    phi, _ = _instance(0)
    lp = log_policy(np.full(4, 1e4), phi)
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-12)


def test_score_and_covariance_match_finite_differences():
    for seed in range(5):
        phi, theta = _instance(seed)
        h = 1e-6
        fd = np.empty((3, 5, 4))
        fd_hess = np.empty((3, 4, 4))
        for k in range(4):
            e = np.zeros(4)
            e[k] = h
            fd[:, :, k] = (log_policy(theta + e, phi) - log_policy(theta - e, phi)) / (2 * h)
            fd_hess[:, :, k] = (score(theta + e, phi)[:, 0, :] - score(theta - e, phi)[:, 0, :]) / (2 * h)
        np.testing.assert_allclose(score(theta, phi), fd, atol=1e-6)
        np.testing.assert_allclose(-feature_covariance(theta, phi), fd_hess, atol=1e-6)


def test_kl_is_zero_at_itself_and_positive_elsewhere():
    phi, theta = _instance(1)
    assert abs(kl_to(theta, theta, phi)) < 1e-14
    assert kl_to(theta, theta + 0.5, phi) > 0
    np.testing.assert_allclose(policy(theta, phi).sum(axis=1), 1.0)
