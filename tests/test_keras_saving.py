"""LearnedOptimizer in .keras files: a small config (the rule's weights travel in the weights
file), a bit-for-bit round trip (also in a fresh process and under LossScaleOptimizer), and
old .keras files whose config inlines the weights still load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from conftest import REPO, subprocess_env

from l2l_tf import LearnedOptimizer

OLD_FILE = os.path.join(REPO, "tests", "data", "old_inline_weights.keras")
X = np.linspace(-1, 1, 256, dtype=np.float32).reshape(64, 4)
Y = np.stack([X.sum(1), X[:, 0] * X[:, 1], np.sin(X[:, 2])], axis=1)


def trained_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    return model


def rule_weights(optimizer):
    return [np.asarray(w) for w in optimizer.rule.weights()]


def test_config_is_small_and_holds_no_weights():
    config = LearnedOptimizer.load("mnist_lstm_momentum", learning_rate=0.5).get_config()
    assert "weights" not in config["rule"] and config["rule"]["config"]["momentum_decays"] == [0.5, 0.9, 0.99]
    assert len(json.dumps(config)) < 1000


def test_keras_file_round_trips_bit_for_bit_and_continues_identically(tmp_path):
    model = trained_model(LearnedOptimizer.load("mnist_lstm_momentum", learning_rate=0.7, coordinate_block_size=50))
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("config.json").file_size < 4000
    restored = keras.models.load_model(path)
    assert restored.optimizer.coordinate_block_size == 50 and float(restored.optimizer.learning_rate) == pytest.approx(0.7)
    for a, b in zip(rule_weights(model.optimizer), rule_weights(restored.optimizer)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for m in (model, restored):
        m.fit(X, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_fresh_process_continues_a_saved_model_identically(tmp_path):
    model = trained_model(LearnedOptimizer.load("mnist_lstm"))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "data.npz", x=X, y=Y)
    script = textwrap.dedent(f"""
        import l2l_tf, keras, numpy as np
        data = np.load({str(tmp_path / "data.npz")!r})
        model = keras.models.load_model({str(tmp_path / "m.keras")!r})
        model.fit(data["x"], data["y"], batch_size=16, epochs=1, verbose=0, shuffle=False)
        np.savez({str(tmp_path / "after.npz")!r}, *model.get_weights())
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    after = np.load(tmp_path / "after.npz")
    for index, weight in enumerate(model.get_weights()):
        np.testing.assert_array_equal(after[f"arr_{index}"], weight)


def test_loss_scale_optimizer_keeps_the_rule_weights(tmp_path):
    model = trained_model(keras.optimizers.LossScaleOptimizer(LearnedOptimizer.load("mnist_lstm")))
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    inner = restored.optimizer.inner_optimizer
    assert not inner._rule_weights_pending
    for a, b in zip(rule_weights(model.optimizer.inner_optimizer), rule_weights(inner)):
        np.testing.assert_array_equal(a, b)


def test_old_keras_files_with_inlined_weights_still_load():
    with zipfile.ZipFile(OLD_FILE) as archive:
        assert "weights" in json.loads(archive.read("config.json"))["compile_config"]["optimizer"]["config"]["rule"]
    restored = keras.models.load_model(OLD_FILE)
    shipped = LearnedOptimizer.load("quadratic_lstm")
    for a, b in zip(rule_weights(shipped), rule_weights(restored.optimizer)):
        np.testing.assert_array_equal(a, b)
    assert int(restored.optimizer.iterations) == 2 and float(restored.optimizer.learning_rate) == 0.5
    restored.fit(X[:16], Y[:16], batch_size=8, epochs=1, verbose=0)


def test_a_config_without_its_weights_refuses_to_train():
    optimizer = LearnedOptimizer.from_config(LearnedOptimizer.load("mnist_lstm").get_config())
    with pytest.raises(ValueError, match="without its rule's weights.*keras.models.load_model"):
        trained_model(optimizer)


def test_load_model_without_import_fails_with_a_short_message(tmp_path):
    trained_model(LearnedOptimizer.load("quadratic_lstm")).save(tmp_path / "m.keras")
    script = f"import keras\ntry:\n    keras.models.load_model({str(tmp_path / 'm.keras')!r})\nexcept TypeError as e:\n    print(len(str(e)))"
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            env=subprocess_env(), timeout=300)
    assert result.returncode == 0 and 0 < int(result.stdout) < 2000, (result.stdout, result.stderr[-2000:])
