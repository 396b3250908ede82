import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import checkpoints
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig


def test_step_is_shape_preserving_and_finite():
    rule = CoordinatewiseLSTM(RuleConfig(num_layers=2, hidden_size=20), seed=1)
    assert rule.state_size == 80
    assert rule.num_meta_parameters() == 5141  # the paper's "about 5.1k"
    for n in (1, 7, 1000):
        update, state = rule.step(tf.random.normal([n]), rule.init_state(n))
        assert update.shape == (n,) and update.dtype == tf.float32
        assert state.shape == (n, 80)
        assert np.all(np.isfinite(update.numpy()))


def test_step_is_independent_of_coordinate_order():
    rule = CoordinatewiseLSTM(seed=2)
    gradients = tf.random.stateless_normal([50], seed=[1, 2])
    state = tf.random.stateless_normal([50, rule.state_size], seed=[3, 4])
    _, state = rule.step(gradients, state)  # a non-trivial state
    perm = np.random.default_rng(0).permutation(50)
    update, new_state = rule.step(gradients, state)
    p_update, p_state = rule.step(tf.gather(gradients, perm), tf.gather(state, perm))
    np.testing.assert_allclose(p_update.numpy(), update.numpy()[perm], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p_state.numpy(), new_state.numpy()[perm], rtol=1e-6, atol=1e-7)


def test_each_coordinate_only_sees_its_own_gradient():
    rule = CoordinatewiseLSTM(seed=3)
    g = tf.constant([0.1, -2.0, 3.0])
    update, _ = rule.step(g, rule.init_state(3))
    alone, _ = rule.step(g[1:2], rule.init_state(1))
    np.testing.assert_allclose(alone.numpy()[0], update.numpy()[1], rtol=1e-6)


def test_config_variants_and_validation():
    rule = CoordinatewiseLSTM(RuleConfig(num_layers=1, hidden_size=8, preprocessing="none", output_scale=1.0))
    update, state = rule.step(tf.ones([4]), rule.init_state(4))
    assert update.shape == (4,) and state.shape == (4, 16)
    with pytest.raises(ValueError, match="hidden_size"):
        RuleConfig(hidden_size=0)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        RuleConfig(preprocessing="tanh")
    with pytest.raises(ValueError, match="unknown rule config keys"):
        RuleConfig.from_dict({"layers": 3})


def test_checkpoint_round_trip(tmp_path):
    rule = CoordinatewiseLSTM(RuleConfig(hidden_size=12), seed=5)
    checkpoints.save_rule(rule, str(tmp_path / "r"))
    restored = checkpoints.load_rule(str(tmp_path / "r"))
    g, s = tf.random.normal([9]), rule.init_state(9)
    np.testing.assert_array_equal(rule.step(g, s)[0].numpy(), restored.step(g, s)[0].numpy())
    assert restored.config == rule.config
    with pytest.raises(FileNotFoundError, match="no trained rule"):
        checkpoints.load_rule(str(tmp_path / "missing"))
