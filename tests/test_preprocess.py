import math

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import preprocess


def test_log_sign_large_branch_matches_hand_computed_values():
    # |g| >= exp(-10): (log|g| / 10, sign g)
    out = preprocess.log_sign(tf.constant([1.0, -0.5, 2.0]), p=10.0).numpy()
    np.testing.assert_allclose(out[0], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(out[1], [math.log(0.5) / 10, -1.0], rtol=1e-6)
    np.testing.assert_allclose(out[2], [math.log(2.0) / 10, 1.0], rtol=1e-6)


def test_log_sign_small_branch_and_zero():
    # |g| < exp(-10) = 4.54e-5: (-1, exp(10) g)
    g = tf.constant([1e-6, -2e-5, 0.0])
    out = preprocess.log_sign(g, p=10.0).numpy()
    np.testing.assert_allclose(out[:, 0], [-1.0, -1.0, -1.0])
    np.testing.assert_allclose(out[:, 1], [math.exp(10) * 1e-6, -math.exp(10) * 2e-5, 0.0], rtol=1e-5)


def test_log_sign_threshold_is_continuous_in_the_first_feature():
    threshold = math.exp(-5.0)
    out = preprocess.log_sign(tf.constant([threshold * 1.0001, threshold * 0.9999]), p=5.0).numpy()
    np.testing.assert_allclose(out[:, 0], [-1.0, -1.0], atol=1e-3)
    np.testing.assert_allclose(out[:, 1], [1.0, 0.9999], atol=1e-3)


def test_log_sign_non_finite_inputs_are_documented_behaviour():
    out = preprocess.log_sign(tf.constant([np.inf, -np.inf, np.nan]), p=10.0).numpy()
    assert out[0, 0] == np.inf and out[0, 1] == 1.0
    assert out[1, 0] == np.inf and out[1, 1] == -1.0
    assert out[2, 0] == -1.0 and np.isnan(out[2, 1])  # NaN fails |g| >= exp(-p)


def test_log_sign_gradient_is_finite_at_zero():
    g = tf.constant([0.0, 1e-8, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(g)
        y = tf.reduce_sum(preprocess.log_sign(g))
    assert np.all(np.isfinite(tape.gradient(y, g).numpy()))


def test_preprocess_dispatch_and_errors():
    assert preprocess.preprocess(tf.zeros([3]), "none").shape == (3, 1)
    assert preprocess.preprocess(tf.zeros([3, 4]), "log_sign").shape == (3, 4, 2)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocess.preprocess(tf.zeros([3]), "bogus")
    with pytest.raises(ValueError, match="p must be > 0"):
        preprocess.log_sign(tf.zeros([3]), p=0.0)
