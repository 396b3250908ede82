"""Rule sets (l2l_tf.rule_sets): assignment, one call per rule, joint meta-training,
checkpoints and LearnedOptimizer with model.fit and .keras saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import checkpoints, rule_sets
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems.conv import conv_net
from l2l_tf.problems.keras_problem import KerasProblem
from l2l_tf.rule_sets import RuleSet, RuleSetError
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig

CONFIG = RuleConfig(hidden_size=4)


def tiny_conv_model() -> keras.Model:
    return conv_net((8, 8, 1), 3, channels=(4,), kernel_size=3, hidden=8)


def tiny_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    return rng.rand(n, 64).astype("float32"), rng.randint(0, 3, n)


def tiny_problem() -> KerasProblem:
    return KerasProblem(tiny_conv_model, tiny_data(), batch_size=16, init_stddev=0.1, name="tiny_conv")


def distinct_pair(assignment: rule_sets.Assignment = rule_sets.CONV_FC) -> RuleSet:
    """Two rules with different weights (the second one's output scaled up 3x)."""
    fc = CoordinatewiseLSTM(CONFIG, seed=1, name="fc")
    fc.output_kernel.assign(fc.output_kernel * 3.0)
    return RuleSet({"conv": CoordinatewiseLSTM(CONFIG, seed=0, name="conv"), "fc": fc}, assignment)


def test_conv_fc_assigns_conv_kernels_to_conv_and_everything_else_to_fc():
    problem = tiny_problem()
    names = distinct_pair().assign(problem.param_names(), problem.param_shapes())
    expected = {
        weight.path: "conv" if isinstance(layer, keras.layers.Conv2D) and weight is layer.kernel else "fc"
        for layer in problem.model.layers for weight in layer.trainable_weights
    }
    assert dict(zip(problem.param_names(), names)) == expected
    assert sorted(names) == ["conv", "fc", "fc", "fc", "fc", "fc"]  # conv kernel; BN offsets, dense kernels, bias


def test_pattern_and_callable_assignments_and_their_errors():
    paths, shapes = ["m/dense/kernel", "m/dense/bias"], [(3, 2), (2,)]
    assert distinct_pair({"*bias": "conv", "*": "fc"}).assign(paths, shapes) == ["fc", "conv"]
    assert distinct_pair(lambda path, shape: "conv" if len(shape) == 2 else "fc").assign(paths, shapes) == ["conv", "fc"]
    with pytest.raises(RuleSetError, match="'m/dense/bias' is assigned to rule 'other'"):
        distinct_pair({"*kernel": "fc", "*": "other"}).assign(paths, shapes)
    with pytest.raises(RuleSetError, match="no pattern .* matches variable 'm/dense/bias'; add '\\*'"):
        distinct_pair({"*kernel": "fc"}).assign(paths, shapes)
    with pytest.raises(RuleSetError, match="callable, which cannot be stored"):
        distinct_pair(lambda path, shape: "fc").to_dict()


def test_each_rule_steps_exactly_its_own_coordinates():
    problem, rule_set = tiny_problem(), distinct_pair()
    bound = rule_set.bind(problem.param_names(), problem.param_shapes())
    gradients = tf.random.stateless_normal([problem.num_coordinates], [1, 2])
    update, state = bound.step(gradients, bound.init_state(problem.num_coordinates))
    assigned = rule_set.assign(problem.param_names(), problem.param_shapes())
    for name, g, u in zip(assigned, problem.unflatten(gradients), problem.unflatten(update)):
        rule = rule_set.rules[name]
        flat = tf.reshape(g, [-1])
        expected, _ = rule.step(flat, rule.init_state(flat.shape[0]))
        np.testing.assert_allclose(tf.reshape(u, [-1]), expected, rtol=1e-6, atol=1e-9)
    # The cell interface (meta-training's) computes the same step.
    cell_update, cells = bound.step_cells(gradients, bound.split_state(bound.init_state(problem.num_coordinates)))
    np.testing.assert_allclose(cell_update, update, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(bound.join_state(cells), state, rtol=1e-6, atol=1e-9)


def test_untrained_conv_fc_pair_computes_what_the_single_rule_of_its_seed_does():
    problem = tiny_problem()
    single = RuleRunner(rule_sets.make("single", CONFIG, seed=3), problem, 6, jit_compile=False).run(0)[0]
    pair = RuleRunner(rule_sets.make("conv_fc", CONFIG, seed=3), problem, 6, jit_compile=False).run(0)[0]
    np.testing.assert_array_equal(single, pair)


def test_meta_training_trains_both_rules_jointly_also_in_coordinate_blocks():
    problem, config = tiny_problem(), MetaConfig(num_steps=4, unroll_length=2)
    gradients = {}
    for shards in (1, 3):
        rule_set = rule_sets.make("conv_fc", CONFIG, seed=0)
        trainer = MetaTrainer(rule_set, problem, MetaConfig(num_steps=4, unroll_length=2,
                                                            schedule=MetaSchedule(coordinate_shards=shards)))
        batches = next(iter(trainer.run_batches(5)))
        gradients[shards] = trainer.estimator.estimate(
            trainer.estimator.initial_carry(5), batches, tf.ones([config.unroll_length])
        ).gradients
    conv_grads, fc_grads = np.split(np.array(gradients[1], dtype=object), 2)
    assert all(np.any(g.numpy() != 0) for g in gradients[1])  # both rules get meta-gradient
    assert not np.allclose(conv_grads[0].numpy(), fc_grads[0].numpy())  # and not the same one
    for a, b in zip(gradients[1], gradients[3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    weights_before = [w.numpy() for w in rule_set.weights()]
    list(trainer.unrolls(6))
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(weights_before, rule_set.weights()))


def test_rule_set_checkpoint_round_trip(tmp_path):
    rule_set = distinct_pair({"*conv*": "conv", "*": "fc"})
    checkpoints.save_rule(rule_set, str(tmp_path / "best"), {"epoch": 3})
    loaded = checkpoints.load_rule(str(tmp_path))
    assert isinstance(loaded, RuleSet) and loaded.names == ["conv", "fc"]
    assert loaded.assignment == {"*conv*": "conv", "*": "fc"}
    for a, b in zip(rule_set.weights(), loaded.weights()):
        np.testing.assert_array_equal(a, b)


def test_warm_start_of_a_pair_from_a_single_rule_and_its_refusals():
    single = CoordinatewiseLSTM(CONFIG, seed=7)
    pair = rule_sets.make("conv_fc", CONFIG, seed=0)
    rule_sets.warm_start(pair, single)
    for rule in pair.rules.values():
        for a, b in zip(rule.weights(), single.weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(RuleSetError, match="cannot initialise a single rule from the rule set"):
        rule_sets.warm_start(single, pair)
    with pytest.raises(RuleSetError, match="the names must match"):
        rule_sets.warm_start(pair, RuleSet({"a": single}, {"*": "a"}))


def test_learned_optimizer_with_a_rule_set_fits_and_round_trips_through_keras_files(tmp_path):
    x, y = tiny_data()
    model = tiny_conv_model()
    optimizer = LearnedOptimizer(distinct_pair())
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x[:16], y=y[:16], y_pred=model(x[:16], training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    model.train_on_batch(x[:16], y[:16])
    for variable, start, grad in zip(model.trainable_variables, before, grads):
        rule = optimizer.rule_of(variable)
        assert rule.name == ("conv" if len(variable.shape) == 4 else "fc")
        flat = tf.reshape(grad, [-1])
        expected, _ = rule.step(flat, rule.init_state(flat.shape[0]))
        np.testing.assert_allclose(variable.numpy() - start, tf.reshape(expected, start.shape), rtol=1e-4, atol=1e-7)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.optimizer.rule.names == ["conv", "fc"]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    restored.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.trainable_variables, restored.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
