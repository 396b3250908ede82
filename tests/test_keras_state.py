"""Optimizees with state (BatchNormalization) and randomness (Dropout)."""

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.evaluation import RuleRunner, run_batches
from l2l_tf.meta import loss_gradient_and_state, step_batch, unroll_with_state
from l2l_tf.problems import KerasProblem
from l2l_tf.problems.keras_state import ModelState
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.run_config import RunConfig
from l2l_tf.training import TrainingOptions, meta_train


def tiny_conv(dropout: float = 0.0, momentum: float = 0.5) -> keras.Model:
    """A small conv net with BatchNorm (and Dropout if ``dropout``) on flat 28x28 digits."""
    layers = [
        keras.Input((784,)), keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(4, 3, use_bias=False), keras.layers.BatchNormalization(momentum=momentum),
        keras.layers.ReLU(), keras.layers.MaxPooling2D(4), keras.layers.Flatten(),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def problem_of(small_mnist, dropout=0.0, batch_size=32):
    train, test = small_mnist
    return KerasProblem(lambda: tiny_conv(dropout), train, test, batch_size=batch_size, init_stddev=0.1)


def test_batch_norm_statistics_are_carried_as_keras_updates_them(small_mnist):
    problem = problem_of(small_mnist)
    assert problem.state_size == 8  # moving mean and variance of 4 channels
    params = problem.flatten(problem.initial_params(2))
    state = problem.initial_state(2)
    np.testing.assert_array_equal(state.numpy(), [0.0] * 4 + [1.0] * 4)
    model = tiny_conv()
    for variable, value in zip(model.trainable_variables, problem.unflatten(params)):
        variable.assign(value)
    for images, labels in problem.batches(2).take(3):
        _, gradients, state = loss_gradient_and_state(problem, params, state, (images, labels))
        model(images, training=True)  # Keras updates its own moving statistics
        params = params - 0.1 * gradients
        for variable, value in zip(model.trainable_variables, problem.unflatten(params)):
            variable.assign(value)
    keras_state = np.concatenate([v.numpy() for v in model.non_trainable_variables])
    np.testing.assert_allclose(state.numpy(), keras_state, rtol=1e-5, atol=1e-6)
    assert not np.allclose(state.numpy(), problem.initial_state(2).numpy())
    # Test metrics use the carried statistics: other statistics, other test loss.
    unflat = problem.unflatten(params)
    assert problem.metrics(unflat, 2, state)["test_loss"] != problem.metrics(unflat, 2)["test_loss"]


def test_state_carried_across_truncations_equals_one_trajectory(small_mnist):
    problem = problem_of(small_mnist, dropout=0.3)
    rule = CoordinatewiseLSTM(seed=1)
    losses, params, final_state = RuleRunner(rule, problem, 8, jit_compile=False).run_with_state(7)
    batches = run_batches(problem, 7, 8)
    carried_params = problem.flatten(problem.initial_params(7))
    carried_state, rule_state = problem.initial_state(7), rule.init_state(problem.num_coordinates)
    truncated_losses = []
    for start in (0, 4):
        halves = tf.nest.map_structure(lambda b, s=start: b[s : s + 4], batches)
        _, step_losses, carried_params, rule_state, carried_state = unroll_with_state(
            rule, problem, carried_params, rule_state, halves, 4, optimizee_state=carried_state
        )
        truncated_losses.extend(step_losses.numpy())
    np.testing.assert_allclose(truncated_losses, losses[:8], rtol=1e-5)
    np.testing.assert_allclose(carried_params.numpy(), params.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(carried_state.numpy(), final_state.numpy(), rtol=1e-5, atol=1e-7)


def test_dropout_is_seeded_per_step_and_reproducible(small_mnist):
    first, second = problem_of(small_mnist, dropout=0.5), problem_of(small_mnist, dropout=0.5)
    rule = CoordinatewiseLSTM(seed=0)
    a = RuleRunner(rule, first, 6, jit_compile=False).run_with_state(4)
    # A fresh problem (new Keras model, new default SeedGenerator seeds): the same run.
    b = RuleRunner(rule, second, 6, jit_compile=False).run_with_state(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = RuleRunner(rule, first, 6, jit_compile=False).run_with_state(5)
    assert not np.allclose(a[0], other[0])
    # Same parameters and minibatch, another step's seed: another dropout mask.
    params = first.initial_params(4)
    images, labels, step_seed = step_batch(run_batches(first, 4, 2), 0)
    same = [first.loss(params, (images, labels, step_seed)) for _ in range(2)]
    assert float(same[0][0]) == float(same[1][0])
    assert float(first.loss(params, (images, labels, step_seed + [0, 1]))[0]) != float(same[0][0])


def test_resumed_meta_training_equals_an_uninterrupted_run(small_mnist, tmp_path):
    from l2l_tf.meta import MetaConfig

    config = MetaConfig(num_steps=4, unroll_length=2, meta_learning_rate=1e-2)

    def train(save_path, epochs):
        rule = CoordinatewiseLSTM(seed=3)
        options = TrainingOptions(num_epochs=epochs, validation_every=100, validation_runs=1, checkpoint_every=1,
                                  log_every=100, seed=0)
        meta_train(rule, problem_of(small_mnist, dropout=0.3, batch_size=16), config, options, str(save_path),
                   RunConfig(), log=lambda line: None)
        return [v.numpy() for v in rule.trainable_variables]

    train(tmp_path / "resumed", 2)
    resumed = train(tmp_path / "resumed", 4)
    uninterrupted = train(tmp_path / "straight", 4)
    for x, y in zip(resumed, uninterrupted):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert not np.allclose(uninterrupted[0], CoordinatewiseLSTM(seed=3).trainable_variables[0].numpy())


def test_batch_norm_state_is_not_differentiated(small_mnist):
    problem = problem_of(small_mnist)
    params = problem.flatten(problem.initial_params(1))
    batch = step_batch(run_batches(problem, 1, 1), 0)
    with tf.GradientTape() as tape:
        tape.watch(params)
        _, state = problem.flat_loss_and_state(params, problem.initial_state(1), batch)
        total = tf.reduce_sum(state)
    assert tape.gradient(total, params) is None


def test_recomputed_segments_carry_the_state_too(small_mnist):
    problem = problem_of(small_mnist, dropout=0.3)
    rule = CoordinatewiseLSTM(seed=2)
    params = problem.flatten(problem.initial_params(3))
    batches = tf.nest.map_structure(lambda b: b[:4], run_batches(problem, 3, 4))

    @tf.function  # as MetaTrainer runs it: recompute_grad needs a graph here
    def meta_gradient(segment):
        with tf.GradientTape() as tape:
            out = unroll_with_state(rule, problem, params, rule.init_state(problem.num_coordinates), batches, 4,
                                    recompute_segment=segment, optimizee_state=problem.initial_state(3))
        return out, tape.gradient(out[0], rule.trainable_variables)

    (plain, plain_grads), (recomputed, recomputed_grads) = meta_gradient(0), meta_gradient(2)
    assert not np.allclose(plain[4].numpy(), problem.initial_state(3).numpy())
    for x, y in zip(plain, recomputed):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
    for x, y in zip(plain_grads, recomputed_grads):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-6)


def test_xla_trajectories_carry_the_same_state(small_mnist):
    """train.evaluate compiles trajectories with XLA by default: the same BatchNorm state and values."""
    problem = problem_of(small_mnist)
    rule = CoordinatewiseLSTM(seed=4)
    graph = RuleRunner(rule, problem, 5, jit_compile=False).run_with_state(9)
    xla = RuleRunner(rule, problem, 5, jit_compile=True).run_with_state(9)
    for x, y in zip(graph, xla):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_dropout_under_xla_is_reproducible(small_mnist):
    # XLA draws other masks than the graph executor (TensorFlow's auto-selected stateless RNG
    # algorithm differs there), but as deterministically: the same seed, the same run.
    problem = problem_of(small_mnist, dropout=0.5)
    runner = RuleRunner(CoordinatewiseLSTM(seed=4), problem, 4, jit_compile=True)
    first, again, other = runner.run(9), runner.run(9), runner.run(10)
    np.testing.assert_array_equal(first[0], again[0])
    assert np.all(np.isfinite(first[0])) and not np.allclose(first[0], other[0])


def test_nested_models_and_other_random_layers_are_classified():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
                              keras.layers.GaussianNoise(0.1)])
    inputs = keras.Input((784,))
    outputs = keras.layers.Dense(10)(keras.layers.Dropout(0.2)(inner(keras.layers.Dense(8)(inputs))))
    state = ModelState(keras.Model(inputs, outputs))
    assert (state.size, state.num_seeds, state.stochastic) == (16, 2, True)
