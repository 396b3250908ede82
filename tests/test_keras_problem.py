import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.meta import MetaConfig, MetaTrainer, loss_and_gradient
from l2l_tf.problems import KerasProblem, make_problem
from l2l_tf.problems.mnist import mlp
from l2l_tf.rules import CoordinatewiseLSTM


@pytest.mark.parametrize("init_stddev", [0.01, None])
def test_stateless_path_matches_calling_the_model(small_mnist, init_stddev):
    train, test = small_mnist
    problem = KerasProblem(lambda: mlp((20, 20), "sigmoid"), train, test, init_stddev=init_stddev)
    params = problem.initial_params(3)
    model = mlp((20, 20), "sigmoid")
    for variable, value in zip(model.trainable_variables, params):
        variable.assign(value)
    images, labels = next(iter(problem.batches(3)))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        expected_loss = loss_fn(labels, model(images, training=True))
    expected_grads = tape.gradient(expected_loss, model.trainable_variables)
    losses, flat_grad = loss_and_gradient(problem, problem.flatten(params), (images, labels))
    np.testing.assert_allclose(losses.numpy(), [expected_loss.numpy()], rtol=1e-6)
    for got, want in zip(problem.unflatten(flat_grad), expected_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def test_initial_params_are_seeded(small_mnist):
    train, _ = small_mnist
    for init in (0.01, None):
        problem = KerasProblem(lambda: mlp((20,), "sigmoid"), train, init_stddev=init)
        a, b, c = problem.initial_params(1), problem.initial_params(1), problem.initial_params(2)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_unsupported_non_trainable_state_is_rejected_naming_the_layer(small_mnist):
    train, _ = small_mnist

    def with_frozen_layer():
        frozen = keras.layers.Dense(8, name="frozen_dense")
        frozen.trainable = False
        return keras.Sequential([keras.Input((784,)), frozen, keras.layers.Dense(10)])

    with pytest.raises(ValueError, match=r"layer 'frozen_dense' \(Dense\) has non-trainable variable"):
        KerasProblem(with_frozen_layer, train)


def test_variants_have_the_paper_architectures(mnist_data_dir):
    sizes = {name: make_problem(name, "idx", mnist_data_dir).num_coordinates
             for name in ("mnist", "mnist_40", "mnist_2layer", "mnist_relu")}
    assert sizes == {"mnist": 784 * 20 + 20 + 210, "mnist_40": 784 * 40 + 40 + 410,
                     "mnist_2layer": 784 * 20 + 20 + 420 + 210, "mnist_relu": 784 * 20 + 20 + 210}


def test_tiny_end_to_end_meta_training_on_mnist(small_mnist):
    train, test = small_mnist
    problem = KerasProblem(lambda: mlp((20,), "sigmoid"), train, test, init_stddev=0.01)
    rule = CoordinatewiseLSTM(seed=0)
    trainer = MetaTrainer(rule, problem, MetaConfig(num_steps=10, unroll_length=5, meta_learning_rate=1e-2))
    before = [v.numpy().copy() for v in rule.trainable_variables]
    results = [r for i in range(3) for r in trainer.unrolls(seeds.training_seed(i))]
    assert len(results) == 6 and all(bool(r.applied) for r in results)
    assert all(np.isfinite(float(r.meta_loss)) for r in results)
    assert any(np.any(a != b.numpy()) for a, b in zip(before, rule.trainable_variables))
    metrics = problem.metrics(problem.unflatten(results[-1].params), 0)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])
