"""The divergence criterion of the past-the-horizon evaluations (l2l_tf.stability)."""

import numpy as np
import pytest

from l2l_tf.stability import diverged_runs


def test_divergence_flags_non_finite_and_worse_than_start_runs():
    steps = np.arange(1001, dtype=np.float64)
    converging = 2.0 * np.exp(-steps / 100.0)
    late_blow_up = np.where(steps > 950, 5.0, converging)  # tail mean 2.5+ > 2.0 at step 0
    brief_spike = np.where((steps > 500) & (steps < 520), 50.0, converging)  # recovered by the tail
    with_nan = converging.copy()
    with_nan[300] = np.nan
    curves = np.stack([converging, late_blow_up, brief_spike, with_nan])
    assert diverged_runs(curves).tolist() == [False, True, False, True]


def test_divergence_tail_is_the_last_tenth():
    curve = np.ones(101)
    curve[-11] = 100.0  # step 90: just outside the last 10 steps
    assert not diverged_runs(curve[None, :])[0]
    curve[-10] = 100.0  # step 91: inside
    assert diverged_runs(curve[None, :])[0]


@pytest.mark.parametrize("bad", [np.ones(5), np.ones((3, 1))])
def test_divergence_rejects_what_is_not_a_set_of_curves(bad):
    with pytest.raises(ValueError, match="shape"):
        diverged_runs(bad)
