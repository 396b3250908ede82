import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO

from l2l_tf import export, sharding
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rules import CoordinatewiseLSTM

SHIPPED_MNIST = os.path.join(REPO, "saved_optimizers", "mnist_lstm")


@pytest.fixture(scope="module")
def random_rule_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rule") / "rule")
    export.export_rule(CoordinatewiseLSTM(seed=4), path)
    return path


def _two_variables():
    return [keras.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)), keras.Variable(np.ones(4, np.float32))]


def test_update_equals_one_fused_rule_step(random_rule_path):
    frozen = export.load(random_rule_path)
    optimizer = LearnedOptimizer(frozen)
    variables = _two_variables()
    before = np.concatenate([v.numpy().ravel() for v in variables])
    grads = [tf.constant([[0.1, -2.0, 0.0], [1e-7, 3.0, -0.5]]), tf.constant([1.0, -1.0, 0.25, 5.0])]
    optimizer.apply_gradients(zip(grads, variables))
    flat = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
    expected, state = frozen.step(flat, frozen.init_state(10))
    after = np.concatenate([v.numpy().ravel() for v in variables])
    np.testing.assert_allclose(after - before, expected.numpy(), atol=1e-6)
    states = np.concatenate([s.numpy() for s in optimizer._rule_states])
    np.testing.assert_allclose(states, state.numpy(), atol=1e-6)


def test_chunked_rule_calls_give_the_values_of_one_call(random_rule_path):
    grads = [tf.constant([[0.1, -2.0, np.nan], [1e-7, 3.0, -0.5]]), tf.constant([1.0, -np.inf, 0.25, 5.0])]
    results = []
    for block_size in (0, 3, 4):
        optimizer = LearnedOptimizer.load(random_rule_path, coordinate_block_size=block_size)
        variables = _two_variables()
        for _ in range(3):
            optimizer.apply_gradients(zip(grads, variables))
        results.append(np.concatenate([v.numpy().ravel() for v in variables]
                                      + [s.numpy().ravel() for s in optimizer._rule_states]))
    assert sharding.block_sizes(10, optimizer.coordinate_block_size) == [4, 3, 3]
    np.testing.assert_allclose(results[1], results[0], atol=1e-6)
    np.testing.assert_allclose(results[2], results[0], atol=1e-6)
    for bad in (-1, 2.5, True, None):
        with pytest.raises(ValueError, match="coordinate_block_size must be 0"):
            LearnedOptimizer.load(random_rule_path, coordinate_block_size=bad)
    # The name it had before still works, with a deprecation warning.
    with pytest.warns(DeprecationWarning, match=r"chunk_size=\.\.\.\) is deprecated; use coordinate_block_size"):
        assert LearnedOptimizer.load(random_rule_path, chunk_size=3).coordinate_block_size == 3
    with pytest.raises(ValueError, match="pass coordinate_block_size only"), pytest.warns(DeprecationWarning):
        LearnedOptimizer.load(random_rule_path, chunk_size=3, coordinate_block_size=4)


def test_learning_rate_multiplies_the_update(random_rule_path):
    deltas = []
    for lr in (1.0, 0.25):
        optimizer = LearnedOptimizer.load(random_rule_path, learning_rate=lr)
        variables = [keras.Variable(np.zeros((2, 3), np.float32)), keras.Variable(np.zeros(4, np.float32))]
        before = [v.numpy() for v in variables]
        optimizer.apply_gradients(zip([tf.ones([2, 3]), -tf.ones([4])], variables))
        deltas.append(np.concatenate([(v.numpy() - b).ravel() for v, b in zip(variables, before)]))
    np.testing.assert_allclose(deltas[1], 0.25 * deltas[0], rtol=1e-5, atol=1e-8)


def test_non_finite_gradients_skip_only_their_coordinates(random_rule_path):
    optimizer = LearnedOptimizer.load(random_rule_path)
    variable = keras.Variable(np.zeros(4, np.float32))
    optimizer.apply_gradients([(tf.constant([1.0, 1.0, 1.0, 1.0]), variable)])
    value, state = variable.numpy().copy(), optimizer._rule_states[0].numpy().copy()
    optimizer.apply_gradients([(tf.constant([np.nan, 1.0, np.inf, -np.inf]), variable)])
    new_value, new_state = variable.numpy(), optimizer._rule_states[0].numpy()
    assert new_value[0] == value[0] and new_value[2] == value[2] and new_value[3] == value[3]
    np.testing.assert_array_equal(new_state[[0, 2, 3]], state[[0, 2, 3]])
    assert new_value[1] != value[1] and np.all(np.isfinite(new_value))


def test_sparse_embedding_gradients_match_their_dense_equivalent(random_rule_path):
    results = []
    for densify in (False, True):
        optimizer = LearnedOptimizer.load(random_rule_path)
        table = keras.Variable(np.ones((5, 3), np.float32))
        grad = tf.IndexedSlices(tf.constant([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]),
                                tf.constant([0, 3, 0]), tf.constant([5, 3]))
        optimizer.apply_gradients([(tf.convert_to_tensor(grad) if densify else grad, table)])
        results.append(table.numpy())
    np.testing.assert_allclose(results[0], results[1], atol=1e-7)


def test_unsupported_dtype_and_bad_rule_errors(random_rule_path):
    with pytest.raises(TypeError, match="dtype int32"):
        LearnedOptimizer.load(random_rule_path).build([keras.Variable(np.zeros(3, np.int32), trainable=False)])
    with pytest.raises(TypeError, match="must be a CoordinatewiseLSTM"):
        LearnedOptimizer("not a rule")


def test_float64_variables_are_supported(random_rule_path):
    variable = keras.Variable(np.zeros(3), dtype="float64")
    LearnedOptimizer.load(random_rule_path).apply_gradients([(tf.constant([1.0, -1.0, 0.5], tf.float64), variable)])
    assert variable.dtype == "float64" and np.all(variable.numpy() != 0)


def _mlp(inputs=784):
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(20, activation="sigmoid"), keras.layers.Dense(10)])


def _compile(model, optimizer, jit_compile=False):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


@pytest.fixture(scope="module")
def trained_rule_path():
    if not os.path.isfile(os.path.join(SHIPPED_MNIST, "saved_model.pb")):
        pytest.fail(f"the shipped MNIST optimizer is missing at {SHIPPED_MNIST}")
    return SHIPPED_MNIST


@pytest.mark.parametrize("jit_compile", [True, False, "auto"])
def test_fit_with_the_shipped_mnist_optimizer_reduces_loss(trained_rule_path, small_mnist, jit_compile):
    train, _ = small_mnist
    keras.utils.set_random_seed(0)
    model = _compile(_mlp(), LearnedOptimizer.load(trained_rule_path), jit_compile)
    history = model.fit(train.images, train.labels, batch_size=128, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_custom_training_loop_with_apply_gradients(trained_rule_path, small_mnist):
    train, _ = small_mnist
    keras.utils.set_random_seed(1)
    model, optimizer = _mlp(), LearnedOptimizer.load(trained_rule_path)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    losses = [float(step(train.images[i:i + 128], train.labels[i:i + 128])) for i in range(0, 1280, 128) for _ in range(3)]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_keras_file_round_trip_continues_identically(trained_rule_path, small_mnist, tmp_path):
    train, _ = small_mnist
    x, y = train.images[:512], train.labels[:512]
    keras.utils.set_random_seed(2)
    model = _compile(_mlp(), LearnedOptimizer.load(trained_rule_path, learning_rate=0.8, coordinate_block_size=5000))
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.optimizer, LearnedOptimizer)
    assert float(restored.optimizer.learning_rate) == pytest.approx(0.8)
    assert restored.optimizer.coordinate_block_size == 5000
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    restored.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "options", [{"clipnorm": 1e-3}, {"global_clipnorm": 1e-3}, {"clipvalue": 1e-4}, {"weight_decay": 0.1}, {"use_ema": True}]
)
def test_standard_keras_options_take_effect(random_rule_path, options):
    def run(**kwargs):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer=LearnedOptimizer.load(random_rule_path, **kwargs), loss="mse")
        model.fit(np.ones((32, 4), np.float32) * 3, np.full((32, 3), 50.0, np.float32), epochs=2, verbose=0)
        return np.concatenate([w.ravel() for w in model.get_weights()])

    assert not np.allclose(run(**options), run()), f"{options} had no effect"


def test_mixed_precision_training_reduces_loss(trained_rule_path, small_mnist):
    train, _ = small_mnist
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(4)
        model = keras.Sequential([
            keras.Input((784,)), keras.layers.Dense(20, activation="sigmoid"), keras.layers.Dense(10, dtype="float32"),
        ])
        optimizer = keras.optimizers.LossScaleOptimizer(LearnedOptimizer.load(trained_rule_path))
        _compile(model, optimizer)
        history = model.fit(train.images, train.labels, batch_size=128, epochs=3, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[0].compute_dtype == "float16"
    assert all(w.dtype == "float32" for w in model.trainable_weights)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]


def test_conv_net_trains_with_finite_updates(trained_rule_path, small_mnist):
    train, _ = small_mnist
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="sigmoid"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(10),
    ])
    before = [w.copy() for w in model.get_weights()]
    _compile(model, LearnedOptimizer.load(trained_rule_path), jit_compile=True)
    history = model.fit(train.images[:1024].reshape(-1, 28, 28, 1), train.labels[:1024], batch_size=128, epochs=3, verbose=0)
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert all(np.any(a != b) for a, b in zip(after, before))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_bfloat16_state_halves_memory_and_tracks_float32_training(trained_rule_path, small_mnist, tmp_path):
    train, _ = small_mnist

    def fit(state_dtype):
        keras.utils.set_random_seed(6)
        model = _compile(_mlp(), LearnedOptimizer.load(trained_rule_path, state_dtype=state_dtype))
        history = model.fit(train.images, train.labels, batch_size=128, epochs=3, verbose=0, shuffle=False)
        return model, history.history["loss"]

    full_model, full = fit("float32")
    half_model, half = fit("bfloat16")
    states = half_model.optimizer._rule_states
    assert all(s.dtype == "bfloat16" for s in states)
    state_bytes = {
        name: sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in m.optimizer._rule_states)
        for name, m in (("float32", full_model), ("bfloat16", half_model))
    }
    assert state_bytes["bfloat16"] * 2 == state_bytes["float32"]
    # Rounding the state changes the trajectory (by 10% after 3 epochs with Keras 3.15), not the training.
    assert half[-1] < 0.6 * half[0], half
    assert abs(half[-1] - full[-1]) < 0.2 * full[-1], (half, full)
    half_model.save(tmp_path / "half.keras")
    assert keras.models.load_model(tmp_path / "half.keras").optimizer.state_dtype == "bfloat16"
    with pytest.raises(ValueError, match="state_dtype"):
        LearnedOptimizer.load(trained_rule_path, state_dtype="int8")


def test_optimizer_configs_written_with_chunk_size_still_load(random_rule_path):
    config = LearnedOptimizer.load(random_rule_path, coordinate_block_size=7).get_config()
    config["chunk_size"] = config.pop("coordinate_block_size")  # as .keras files written before the rename hold it
    assert LearnedOptimizer.from_config(config).coordinate_block_size == 7
