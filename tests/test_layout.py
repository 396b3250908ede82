"""The per-tensor layout and the optional rule inputs (``l2l_tf.layout``)."""

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import layout
from l2l_tf.layout import LayoutError, TensorLayout
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig


def test_per_tensor_mean_and_broadcast_match_numpy_for_static_and_tensor_sizes():
    values = np.arange(1.0, 10.0, dtype=np.float32).reshape(9, 1) ** 2
    expected = np.array([values[:2].mean(), values[2:7].mean(), values[7:].mean()], np.float32)
    for sizes in ((2, 5, 2), tf.constant([2, 5, 2])):
        means = TensorLayout(sizes).mean(tf.constant(values))
        np.testing.assert_allclose(means.numpy()[:, 0], expected, rtol=1e-6)
        spread = TensorLayout(sizes).broadcast(means)[:, 0].numpy()
        np.testing.assert_allclose(spread, np.repeat(expected, [2, 5, 2]), rtol=1e-6)


def test_from_shapes_and_size_checks():
    assert TensorLayout.from_shapes([[3, 4], [4], []]).sizes == (12, 4, 1)
    TensorLayout([2, 3]).check(5)
    with pytest.raises(LayoutError, match="add up to 5 coordinates but 6"):
        TensorLayout([2, 3]).check(6)
    with pytest.raises(LayoutError, match="ints >= 0"):
        TensorLayout([2, -1])


class _NeedsLayout(CoordinatewiseLSTM):
    needs_layout = True
    needs_params = True

    def step(self, gradients, state, layout=None, params=None):
        update, state = super().step(gradients, state)
        return update + layout.broadcast(layout.mean(params[:, None]))[:, 0], state


def test_rule_step_passes_declared_inputs_only_and_refuses_missing_ones():
    lstm = CoordinatewiseLSTM(RuleConfig(num_layers=1, hidden_size=2))
    gradients, state = tf.ones([3]), lstm.init_state(3)
    plain, _ = layout.rule_step(lstm, gradients, state, TensorLayout([1, 2]), tf.zeros([3]))  # ignored
    np.testing.assert_allclose(plain.numpy(), lstm.step(gradients, state)[0].numpy())
    rule = _NeedsLayout(lstm.config)
    rule.set_weights(lstm.get_weights())
    update, _ = layout.rule_step(rule, gradients, state, TensorLayout([1, 2]), tf.constant([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(update.numpy() - plain.numpy(), [1.0, 3.0, 3.0], rtol=1e-5)
    with pytest.raises(ValueError, match="needs layout="):
        layout.rule_step(rule, gradients, state)
    with pytest.raises(ValueError, match="coordinate_block_size=8 cuts the coordinates into blocks"):
        LearnedOptimizer(rule, coordinate_block_size=8)
