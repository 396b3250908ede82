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


def test_momentum_features_keep_running_gradient_averages_in_the_state():
    config = RuleConfig(momentum_decays=(0.5, 0.9))
    rule = CoordinatewiseLSTM(config, seed=3)
    assert rule.state_size == 82 and config.num_inputs == 6
    assert RuleConfig.from_dict(config.to_dict()) == config  # JSON lists come back as tuples
    gradients = [tf.random.stateless_normal([30], seed=[5, t]) for t in range(3)]
    state = rule.init_state(30)
    expected = np.zeros((30, 2))
    for g in gradients:
        update, state = rule.step(g, state)
        expected = np.array([0.5, 0.9]) * expected + np.array([0.5, 0.1]) * g.numpy()[:, None]
        assert update.shape == (30,)
    np.testing.assert_allclose(state.numpy()[:, 80:], expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="momentum_decays"):
        RuleConfig(momentum_decays=(1.0,))


def test_warm_start_with_added_momentum_inputs_preserves_the_rule(tmp_path):
    from l2l_tf import export
    from l2l_tf.rules import warm_start

    source = CoordinatewiseLSTM(seed=4)
    source.kernels[0].assign(source.kernels[0] * 3.0)  # not the init: a "trained" rule
    rule = CoordinatewiseLSTM(RuleConfig(momentum_decays=(0.5, 0.9, 0.99)), seed=5)
    warm_start(rule, source)
    state, expanded_state = source.init_state(40), rule.init_state(40)
    for t in range(4):
        g = tf.random.stateless_normal([40], seed=[6, t]) * 0.1
        update, state = source.step(g, state)
        expanded_update, expanded_state = rule.step(g, expanded_state)
        np.testing.assert_allclose(expanded_update.numpy(), update.numpy(), rtol=1e-5, atol=1e-8)
    # The exported momentum rule computes the same as in memory.
    export.export_rule(rule, str(tmp_path / "m"))
    frozen = export.load(str(tmp_path / "m"))
    frozen_update, frozen_state = frozen.step(g, frozen.init_state(40))
    fresh_update, fresh_state = rule.step(g, rule.init_state(40))
    np.testing.assert_allclose(frozen_update.numpy(), fresh_update.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(frozen_state.numpy(), fresh_state.numpy(), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="architectures"):
        warm_start(CoordinatewiseLSTM(RuleConfig(hidden_size=10)), source)


def test_python_loaded_and_sharded_rules_share_one_rule_interface(tmp_path):
    from l2l_tf import export
    from l2l_tf.rules import CellRule, Rule, RuleWeightsError
    from l2l_tf.sharding import CoordinateShards

    rule = CoordinatewiseLSTM(RuleConfig(momentum_decays=(0.9,)), seed=7)
    export.export_rule(rule, str(tmp_path / "r"))
    loaded = export.load(str(tmp_path / "r"))
    sharded = CoordinateShards(rule, 50, 3)
    gradients = tf.random.stateless_normal([50], seed=[1, 2])
    reference, reference_state = rule.step(gradients, rule.init_state(50))
    for other in (loaded, sharded):
        assert isinstance(other, Rule) and isinstance(other, CellRule)
        assert other.config == rule.config and other.state_size == rule.state_size == 81
        update, state = other.step(gradients, other.init_state(50))
        np.testing.assert_allclose(update.numpy(), reference.numpy(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(state.numpy(), reference_state.numpy(), rtol=1e-6, atol=1e-8)
        for mine, theirs in zip(other.get_weights(), rule.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert not isinstance("not a rule", Rule)
    # Weights (de)serialise with the rule: a round trip through plain lists, and checked values.
    copy = CoordinatewiseLSTM(rule.config, seed=8)
    copy.set_weights([w.tolist() for w in rule.get_weights()])
    np.testing.assert_array_equal(copy.step(gradients, copy.init_state(50))[0].numpy(), reference.numpy())
    assert rule.config.weight_names()[:2] == ["kernels/0", "kernels/1"]
    bad = rule.get_weights()
    bad[0] = bad[0][:3]
    with pytest.raises(RuleWeightsError, match="weight rule/kernels/0 has shape"):
        copy.set_weights(bad, "test weights")
    bad = rule.get_weights()
    bad[-1] = np.array([np.nan], np.float32)
    with pytest.raises(RuleWeightsError, match="rule/output_bias holds NaN"):
        copy.set_weights(bad)
