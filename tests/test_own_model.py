"""Meta-training on a user's own Keras model: KerasProblem from (x, y) arrays or a
tf.data.Dataset, and the binaries' --problem_fn=MODULE:FUNCTION."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import subprocess_env

from l2l_tf import KerasProblem
from l2l_tf.problems.data import Split, as_split

RNG = np.random.default_rng(0)
X = RNG.random((96, 6), dtype=np.float32)
Y = RNG.integers(0, 3, 96)


def small_model():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)])


def first_loss(problem):
    params = problem.initial_params(7)
    batch = next(iter(problem.batches(7)))
    return float(tf.reduce_mean(problem.loss(params, batch)))


@pytest.mark.parametrize("make_data", [
    lambda: (X, Y),
    lambda: tf.data.Dataset.from_tensor_slices((X, Y)),
    lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(10),
], ids=["arrays", "dataset", "batched_dataset"])
def test_keras_problem_takes_arrays_and_datasets_like_a_split(make_data):
    reference = KerasProblem(small_model, Split(X, Y), batch_size=16)
    problem = KerasProblem(small_model, make_data(), make_data(), batch_size=16)
    np.testing.assert_array_equal(problem.train.images, X)
    np.testing.assert_array_equal(problem.train.labels, Y)
    assert first_loss(problem) == first_loss(reference)
    assert set(problem.metrics(problem.initial_params(0), 0)) >= {"test_accuracy"}


def test_bad_data_is_named():
    with pytest.raises(TypeError, match=r"train must be \(x, y\) arrays, a tf.data.Dataset"):
        KerasProblem(small_model, {"x": X, "y": Y})
    with pytest.raises(ValueError, match="infinite"):
        as_split(tf.data.Dataset.from_tensor_slices((X, Y)).repeat())
    with pytest.raises(TypeError, match=r"\(x, y\) pairs"):
        as_split(tf.data.Dataset.from_tensor_slices(X))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        as_split((X[:3], Y[:2]))


PROBLEM_MODULE = """
import keras
import numpy as np
import l2l_tf

def make():
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 8), dtype=np.float32), rng.integers(0, 2, 256)
    model = lambda: keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="sigmoid"), keras.layers.Dense(2)])
    return l2l_tf.KerasProblem(model, (x, y), (x[:64], y[:64]), batch_size=32, name="my_model")

def not_a_problem():
    return 3
"""


def run_in(folder, binary, *args):
    return subprocess.run([sys.executable, "-m", f"train.{binary}", *args], check=False, capture_output=True, text=True,
                          cwd=folder, env=subprocess_env(), timeout=600)


def test_binaries_meta_train_and_evaluate_a_user_model(tmp_path):
    (tmp_path / "my_problem.py").write_text(textwrap.dedent(PROBLEM_MODULE))
    trained = run_in(tmp_path, "meta_train", "--problem_fn=my_problem:make", "--save_path=run", "--num_runs=2",
                     "--num_steps=10", "--unroll_length=5", "--validation_every=2", "--validation_runs=1",
                     "--export_dir=rule")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "on my_model (46 coordinates)" in trained.stdout and "run 2/2" in trained.stdout
    evaluated = run_in(tmp_path, "evaluate", "--problem_fn=my_problem:make", "--optimizer=rule", "--num_steps=10",
                       "--num_seeds=2", "--tuning_seeds=1", "--learning_rates=0.1", "--baselines=adam",
                       "--output_dir=eval", "--nojit_compile")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "my_model: loss at step 10" in evaluated.stdout


@pytest.mark.parametrize("spec, message", [
    ("my_problem", "expected MODULE:FUNCTION"),
    ("missing_module:make", "cannot import 'missing_module'"),
    ("my_problem:nothing", "has no function 'nothing'"),
    ("my_problem:not_a_problem", "returned a int, not an l2l_tf Problem"),
])
def test_bad_problem_fn_is_a_one_line_usage_error(tmp_path, spec, message):
    (tmp_path / "my_problem.py").write_text(textwrap.dedent(PROBLEM_MODULE))
    result = run_in(tmp_path, "meta_train", f"--problem_fn={spec}", "--save_path=run", "--num_runs=1")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
