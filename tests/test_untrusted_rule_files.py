"""Rule files from someone else: loading and using one never executes anything from it.

Each attack class of issue 13 is built here (tests/malicious_rules.py); every one makes
plain TensorFlow write a marker file (checked in a fresh process), and none does so
through ``export.load``, ``LearnedOptimizer.load`` + a training step, ``train.evaluate``
or ``train.fit_keras``: each file either works as a plain rule (its weights read as
data) or is refused with a one-line error.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, subprocess_env
from malicious_rules import ATTACKS

from l2l_tf import export
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rules import CoordinatewiseLSTM

# What l2l_tf does with each: "plain" = loads the genuine weights, "refused" = RuleLoadError.
EXPECTED = {
    "forbidden_op": "plain",
    "restore_function": "refused",  # its restore function's tensor is not a rule weight
    "resource_initializer": "plain",
    "tf1_main_op": "refused",  # no rule weights at all
    "api_implements_twin": "plain",
    "signature_def_cleared": "plain",
    "signature_def_dangling": "plain",
    "serving_default_repointed": "refused",  # a second rule's weights beside the first
    "node_named_like_function": "plain",
}

PLAIN_TF_LOAD_AND_CALL = r"""
import json, os, sys
import tensorflow as tf
report = {}
for path, marker in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        loaded = tf.saved_model.load(path)
        loaded.signatures["serving_default"](gradients=tf.ones([3]), state=tf.zeros([3, 80]))
    except Exception as error:
        pass
    report[os.path.basename(path)] = os.path.exists(marker)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("attacks")
    files = {}
    for name, build in ATTACKS.items():
        path, marker = str(base / name), str(base / f"{name}.marker")
        build(path, marker)
        assert not os.path.exists(marker)
        files[name] = (path, marker)
    return files


def test_every_attack_file_runs_its_op_under_plain_tensorflow(attack_files):
    """The control: the files really are malicious (so the other tests can fail)."""
    args = [part for path, marker in attack_files.values() for part in (path, marker)]
    try:
        result = subprocess.run([sys.executable, "-c", PLAIN_TF_LOAD_AND_CALL, *args], check=False,
                                capture_output=True, text=True, env=subprocess_env(), timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {name: True for name in ATTACKS}
    finally:
        for _, marker in attack_files.values():
            if os.path.exists(marker):
                os.remove(marker)


def _reference_update(gradients):
    rule = CoordinatewiseLSTM(seed=1)  # every attack file carries these weights
    return rule.step(gradients, rule.init_state(len(gradients)))[0].numpy()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_loading_and_training_execute_nothing_from_the_file(attack_files, name):
    path, marker = attack_files[name]
    gradients = tf.constant([0.5, -1e-3, 2.0])
    if EXPECTED[name] == "refused":
        with pytest.raises(export.RuleLoadError, match="not an l2l_tf rule export"):
            export.load(path)
        with pytest.raises(export.RuleLoadError):
            LearnedOptimizer.load(path)
    else:
        rule = export.load(path)
        np.testing.assert_allclose(rule.step(gradients, rule.init_state(3))[0].numpy(),
                                   _reference_update(gradients), atol=1e-7)
        optimizer = LearnedOptimizer.load(path)
        variable = keras.Variable(np.zeros(3, np.float32))
        optimizer.apply_gradients([(gradients, variable)])
        np.testing.assert_allclose(variable.numpy(), _reference_update(gradients), atol=1e-7)
    assert not os.path.exists(marker), f"{name}: an op from the file ran"


def _run_binary(name, *args):
    return subprocess.run([sys.executable, "-m", f"train.{name}", *args], check=False, capture_output=True,
                          text=True, cwd=REPO, env=subprocess_env(), timeout=600)


def _check_binary_outcome(name, result, marker):
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if EXPECTED[name] == "refused":
        assert result.returncode == 2 and "not an l2l_tf rule export" in result.stderr
    else:
        assert result.returncode == 0, result.stderr[-2000:]
    assert not os.path.exists(marker), f"{name}: an op from the file ran in the binary"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_evaluate_binary_executes_nothing_from_the_file(attack_files, name):
    path, marker = attack_files[name]
    result = _run_binary("evaluate", "--problem=quadratic", f"--optimizer={path}", "--num_steps=2", "--num_seeds=1",
                         "--tuning_seeds=1", "--baselines=sgd", "--learning_rates=0.1", "--nojit_compile")
    _check_binary_outcome(name, result, marker)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_fit_keras_binary_executes_nothing_from_the_file(attack_files, name, mnist_data_dir):
    path, marker = attack_files[name]
    result = _run_binary("fit_keras", f"--optimizer={path}", "--data_source=idx", f"--data_dir={mnist_data_dir}",
                         "--epochs=1", "--batch_size=1000")
    _check_binary_outcome(name, result, marker)


def test_saved_model_pb_is_never_read(tmp_path):
    """Garbage, or a sparse multi-GB saved_model.pb, loads the same rule: the graph file
    is not parsed (nor executed)."""
    path = str(tmp_path / "rule")
    rule = CoordinatewiseLSTM(seed=2)
    export.export_rule(rule, path)
    gradients = tf.constant([1.0, -2.0])
    expected = rule.step(gradients, rule.init_state(2))[0].numpy()
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"not a protobuf")
    np.testing.assert_array_equal(export.load(path).step(gradients, rule.init_state(2))[0].numpy(), expected)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.truncate(3 << 30)  # 3 GiB, sparse
    np.testing.assert_array_equal(export.load(path).step(gradients, rule.init_state(2))[0].numpy(), expected)
