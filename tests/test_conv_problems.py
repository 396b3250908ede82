"""The paper's conv net on digits (10/5/2 classes) and on CIFAR-10 (TFDS, mock data here)."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO, subprocess_env

from l2l_tf.evaluation import BaselineRunner, RuleRunner, evaluate_baseline
from l2l_tf.problems import PROBLEM_NAMES, make_problem
from l2l_tf.problems.data import load_idx_split
from l2l_tf.rules import CoordinatewiseLSTM


def expected_coordinates(channels_in: int, classes: int) -> int:
    conv = 5 * 5 * channels_in * 16 + 2 * (5 * 5 * 16 * 16)  # kernels, no biases (BatchNorm follows)
    batch_norm_offsets = 3 * 16 + 32
    dense = 4 * 4 * 16 * 32 + (32 * classes + classes)  # 28 -> 14 -> 7 -> 4 (and 32 -> 16 -> 8 -> 4)
    return conv + batch_norm_offsets + dense


def test_conv_net_has_the_paper_architecture(mnist_data_dir):
    problem = make_problem("mnist_conv", "idx", mnist_data_dir)
    assert problem.num_coordinates == expected_coordinates(1, 10) == 21802
    assert problem.state_size == 2 * (3 * 16 + 32)  # moving mean and variance of every BatchNorm
    layers = problem.model.layers
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(16, (5, 5))] * 3
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in layers) == 3
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in layers) == 4
    assert [d.units for d in layers if isinstance(d, keras.layers.Dense)] == [32, 10]


@pytest.mark.parametrize("name,classes", [("mnist_conv5", 5), ("mnist_conv2", 2)])
def test_label_subsets_keep_the_first_classes(mnist_data_dir, name, classes):
    problem = make_problem(name, "idx", mnist_data_dir)
    for split, kept in (("train", problem.train), ("test", problem.test)):
        full = load_idx_split(mnist_data_dir, split)
        assert sorted(set(kept.labels.tolist())) == list(range(classes))
        assert len(kept.labels) == int(np.sum(full.labels < classes))
    assert problem.num_coordinates == expected_coordinates(1, classes)
    assert problem.describe()["classes"] == list(range(classes))


def test_cifar_problems_on_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=1024):
        problem = make_problem("cifar2", "tfds")
    assert problem.train.images.shape[1:] == (32 * 32 * 3,)
    assert set(problem.train.labels.tolist()) <= {0, 1} and set(problem.test.labels.tolist()) <= {0, 1}
    assert problem.num_coordinates == expected_coordinates(3, 2)
    losses, params, state = RuleRunner(CoordinatewiseLSTM(), problem, 2, jit_compile=False).run_with_state(0)
    assert np.all(np.isfinite(losses)) and state.shape == [problem.state_size]
    assert 0.0 <= problem.metrics(problem.unflatten(params), 0, state)["test_accuracy"] <= 1.0
    adam = evaluate_baseline(BaselineRunner("adam", problem, 2, jit_compile=False), [0, 1], 0.01).summary()
    assert adam["runs"] == 2 and np.isfinite(adam["final_loss_mean"]) and 0.0 <= adam["test_accuracy_mean"] <= 1.0


def test_cifar_from_idx_files_is_refused_with_the_fix():
    assert {"mnist_conv", "mnist_conv5", "mnist_conv2", "cifar10", "cifar5", "cifar2"} <= set(PROBLEM_NAMES)
    with pytest.raises(ValueError, match="use data_source 'tfds'"):
        make_problem("cifar10", "idx", "unused")


def test_meta_train_binary_runs_the_conv_problem(mnist_data_dir, tmp_path):
    command = [sys.executable, "-m", "train.meta_train", "--problem=mnist_conv2", "--data_source=idx",
               f"--data_dir={mnist_data_dir}", f"--save_path={tmp_path / 'run'}", "--num_epochs=1", "--num_steps=2",
               "--unroll_length=2", "--validation_runs=1", "--log_every=1"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on mnist_conv2 (21538 coordinates)" in result.stdout
    assert '"epochs": 1' in result.stdout
    assert (tmp_path / "run" / "best").is_dir()
