"""LSTM+GAC (RuleConfig.gac_cells): the global cells read their mean over all coordinates,
also when the coordinates are stepped in blocks; trains, exports and runs in LearnedOptimizer."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_export import _signature_in_fresh_process, _two_steps
from test_rule_sets import tiny_conv_model, tiny_data, tiny_problem

from l2l_tf import export, rule_sets
from l2l_tf.estimators import RunCarry
from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig, RuleConfigError

GAC = RuleConfig(hidden_size=6, gac_cells=2, momentum_decays=(0.9,))


def random_state(rule: CoordinatewiseLSTM, n: int, seed: int = 0) -> tf.Tensor:
    return tf.random.stateless_normal([n, rule.state_size], [seed, 1])


def test_config_checks_and_files_of_rules_without_gac_unchanged():
    with pytest.raises(RuleConfigError, match="gac_cells must be in \\[0, hidden_size=6\\), got 6"):
        RuleConfig(hidden_size=6, gac_cells=6)
    assert "gac_cells" not in RuleConfig().to_dict()
    assert RuleConfig.from_dict(GAC.to_dict()) == GAC


def test_the_global_cells_read_their_mean_over_all_coordinates():
    rule = CoordinatewiseLSTM(GAC, seed=1)
    plain = CoordinatewiseLSTM(RuleConfig(hidden_size=6, momentum_decays=(0.9,)), seed=1)  # same weights
    gradients, state = tf.random.stateless_normal([50], [2, 2]), random_state(rule, 50)
    cells = rule.split_state(state)
    means = [cells[2 * layer].numpy()[:, -2:].mean(axis=0) for layer in range(GAC.num_layers)]
    np.testing.assert_allclose(rule.global_context([cells]), np.stack(means), rtol=1e-6)
    # The GAC rule's step is the plain LSTM's on the state whose global cells hold those means.
    averaged = list(cells)
    for layer, mean in enumerate(means):
        h = cells[2 * layer].numpy()
        h[:, -2:] = mean
        averaged[2 * layer] = tf.constant(h)
    update, new_state = rule.step(gradients, state)
    expected_update, expected_state = plain.step(gradients, plain.join_state(averaged))
    np.testing.assert_allclose(update, expected_update, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(new_state, expected_state, rtol=1e-6, atol=1e-9)
    # Another coordinate's global cells change this coordinate's update; its other cells do not.
    other = state.numpy()
    other[7, GAC.hidden_size - 1] += 1.0
    assert rule.step(gradients, tf.constant(other))[0][0] != update[0]
    other = state.numpy()
    other[7, 0] += 1.0
    assert rule.step(gradients, tf.constant(other))[0][0] == update[0]


def test_context_of_uneven_blocks_is_the_mean_over_all_of_them():
    rule = CoordinatewiseLSTM(GAC, seed=1)
    state = random_state(rule, 30)
    whole = rule.global_context([rule.split_state(state)])
    blocks = [rule.split_state(part) for part in tf.split(state, [3, 20, 7])]
    np.testing.assert_allclose(rule.global_context(blocks), whole, rtol=1e-5, atol=1e-7)
    # Block-local means would differ: the test above can fail.
    assert not np.allclose(rule.global_context(blocks[:1]), whole)


def test_learned_optimizer_gives_the_same_training_with_and_without_coordinate_blocks():
    x, y = tiny_data()
    rule = CoordinatewiseLSTM(GAC, seed=1)
    rule.output_kernel.assign(rule.output_kernel * 30.0)  # large enough updates to tell apart
    weights = {}
    for block_size in (0, 37):
        keras.utils.set_random_seed(4)
        model = tiny_conv_model()
        optimizer = LearnedOptimizer(rule, coordinate_block_size=block_size)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
        weights[block_size] = [v.numpy() for v in model.trainable_variables]
    assert not np.allclose(weights[0][0], tiny_conv_model().trainable_variables[0].numpy())
    for a, b in zip(weights[0], weights[37]):
        # Same values up to float32 rounding: the blocked schedule sums the GAC average in another order,
        # and 2 epochs of amplified updates carry that rounding (seen: 3.6e-7 on 1 of 512 weights).
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule_set", ["single", "conv_fc"])
def test_meta_training_gives_the_same_meta_gradients_with_and_without_coordinate_blocks(rule_set):
    problem, results = tiny_problem(), {}
    for shards in (1, 3):
        rule = rule_sets.make(rule_set, GAC, seed=2)
        trainer = MetaTrainer(rule, problem, MetaConfig(num_steps=4, unroll_length=2,
                                                        schedule=MetaSchedule(coordinate_shards=shards)))
        estimator = trainer.estimator
        state = tf.random.stateless_normal([problem.num_coordinates, estimator.unroll_rule.state_size], [3, 3])
        batches = next(iter(trainer.run_batches(5)))
        params = problem.flatten(problem.initial_params(5))
        results[shards] = estimator.estimate(RunCarry(params, state, problem.initial_state(5)), batches, tf.ones([2]))
    meta_loss, _, grads, (params, state, _) = results[1]
    assert all(np.any(g.numpy() != 0) for g in grads)
    np.testing.assert_allclose(results[3].meta_loss, meta_loss, rtol=1e-5)
    for a, b in zip(results[3].gradients, grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(results[3].carry.params, params, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(results[3].carry.state, state, rtol=1e-5, atol=1e-6)


def test_gac_rule_exports_and_its_signature_matches_in_a_fresh_process(tmp_path):
    rule = CoordinatewiseLSTM(GAC, seed=5)
    path = export.export_rule(rule, str(tmp_path / "gac"))
    loaded = export.load(path)
    assert loaded.config == GAC
    g = np.random.default_rng(0).normal(size=200).astype(np.float32) * np.logspace(-6, 1, 200).astype(np.float32)
    info, updates = _signature_in_fresh_process(path, g, tmp_path)
    assert info["state_sizes"] == {"": rule.state_size}
    fresh = updates[""]
    in_memory = _two_steps(rule.step, rule.init_state, g)[0].numpy()
    np.testing.assert_allclose(fresh, in_memory, atol=1e-6)
    np.testing.assert_allclose(_two_steps(loaded.step, loaded.init_state, g)[0].numpy(), in_memory, atol=1e-6)
