"""Meta-training across two local worker processes (MultiWorkerMirroredStrategy, TF_CONFIG).

Each test starts real ``train.meta_train`` processes on loopback ports
(``l2l_tf.local_cluster``); every process is killed when the test ends.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, subprocess_env

from l2l_tf import checkpoints
from l2l_tf.local_cluster import LocalCluster

# unroll_length == num_steps: a meta-batch of one whole run per replica, which is what
# single-process meta-training with --meta_gradient_accumulation=2 computes.
FLAGS = ["--problem=quadratic", "--num_steps=20", "--unroll_length=20", "--validation_runs=2",
         "--log_every=1", "--checkpoint_every=1", "--meta_learning_rate=0.01", "--seed=5"]
EPOCHS = 4


def _command(save_path, *extra):
    return [sys.executable, "-m", "train.meta_train", f"--save_path={save_path}", *FLAGS, *extra]


def _env(tmp_path):
    """Workers' temporary files go to a folder of their own, to check none is left."""
    (tmp_path / "tmp").mkdir(parents=True, exist_ok=True)
    return {**subprocess_env(), "TMPDIR": str(tmp_path / "tmp")}


def _cluster(tmp_path, save_path, *extra):
    command = [*_command(save_path, "--distribution=multi_worker", *extra)]
    return LocalCluster(command, num_workers=2, log_dir=str(tmp_path / "logs"), env=_env(tmp_path))


def _log(tmp_path, worker):
    return (tmp_path / "logs" / f"worker_{worker}.log").read_text()


def _summary(log):
    return json.loads(next(line for line in log.splitlines() if line.startswith("summary: "))[len("summary: "):])


def _rule_weights(save_path):
    """The rule's weights in the latest training checkpoint of ``save_path``."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(save_path, "train")))
    # The rule's kernels and biases are saved under the meta-optimizer's tracked variables.
    prefixes = ("rule/", "meta_optimizer/_trainable_variables/")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name.startswith(prefixes)}


def _latest_epoch(save_path):
    latest = tf.train.latest_checkpoint(os.path.join(save_path, "train"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_two_workers_train_on_disjoint_runs_agree_and_only_the_chief_writes(tmp_path):
    save = tmp_path / "run"
    with _cluster(tmp_path, save, f"--num_epochs={EPOCHS}", "--validation_every=2",
                  f"--export_dir={tmp_path / 'export'}") as cluster:
        assert cluster.wait(timeout=600) == [0, 0], cluster.logs_tail()
        chief_pid = cluster.processes[0].pid
    logs = [_log(tmp_path, worker) for worker in range(2)]

    runs = [[int(seed) for seed in re.findall(r"this worker's runs \[(\d+)\]", log)] for log in logs]
    assert len(runs[0]) == len(runs[1]) == EPOCHS
    assert not set(runs[0]) & set(runs[1]), runs
    assert sorted(runs[0] + runs[1]) == list(range(runs[0][0], runs[0][0] + 2 * EPOCHS))
    summaries = [_summary(log) for log in logs]
    assert summaries[0]["num_replicas"] == summaries[1]["num_replicas"] == 2
    assert summaries[0]["rule_sha256"] == summaries[1]["rule_sha256"]  # identical rule weights

    # Validation once per validation point (epochs 0, 2, 4), on the chief only.
    assert len(re.findall(r"validation after run", logs[0])) == 3
    assert "validation after run" not in logs[1]
    # Files: the chief's run folder and export; the other worker left nothing.
    assert sorted(os.listdir(save)) == ["best", "logs", "run_config.json", "train"]
    events = os.listdir(save / "logs")
    assert events and all(f".{chief_pid}." in name for name in events), events
    assert os.listdir(tmp_path / "tmp") == []
    assert os.path.isfile(tmp_path / "export" / "saved_model.pb")
    checkpoints.load_rule(str(save))

    # The same meta-updates as one process averaging the meta-gradients of 2 runs at a time.
    single = tmp_path / "single"
    subprocess.run(_command(single, f"--num_epochs={2 * EPOCHS}", "--meta_gradient_accumulation=2",
                            "--validation_every=100"),
                   check=True, capture_output=True, cwd=REPO, env=subprocess_env(), timeout=600)
    expected, actual = _rule_weights(single), _rule_weights(save)
    assert expected.keys() == actual.keys() and len(expected) == 6  # 2 LSTM layers + output layer
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_killed_worker_then_restarted_job_resumes_from_the_last_checkpoint(tmp_path):
    epochs = 30
    reference = tmp_path / "reference"
    with _cluster(tmp_path / "ref", reference, f"--num_epochs={epochs}", "--validation_every=10") as cluster:
        assert cluster.wait(timeout=600) == [0, 0], cluster.logs_tail()

    save = tmp_path / "run"
    cluster = _cluster(tmp_path, save, f"--num_epochs={epochs}", "--validation_every=10")
    try:
        cluster.start()
        deadline = time.time() + 300
        while _latest_epoch(save) < 3 and time.time() < deadline and cluster.processes[0].poll() is None:
            time.sleep(0.02)
        cluster.processes[1].send_signal(signal.SIGKILL)
        cluster.processes[1].wait()
        killed_at = _latest_epoch(save)
        # The survivor notices (TensorFlow's collective health check) and exits with an error.
        assert cluster.processes[0].wait(timeout=180) != 0
        assert "restart every worker with the same command" in _log(tmp_path, 0)
        if killed_at >= epochs:
            pytest.fail("the run finished before a worker could be killed; make the test run longer")
        assert killed_at >= 3
        checkpoints.load_rule(str(save))  # the best rule on disk is intact

        cluster.start()  # the same command on both workers
        assert cluster.wait(timeout=600) == [0, 0], cluster.logs_tail()
    finally:
        cluster.kill()
    chief_log, worker_log = _log(tmp_path, 0), _log(tmp_path, 1)
    resumed = int(re.search(r"resumed from \S+: run (\d+)", chief_log).group(1))
    assert killed_at <= resumed < epochs
    assert f"took the chief's training state: epoch {resumed}" in worker_log
    expected, actual = _rule_weights(reference), _rule_weights(save)
    assert _latest_epoch(save) == epochs and expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_mirrored_strategy_on_two_devices_equals_a_meta_batch_and_skips_nan_on_all_replicas(tmp_path):
    """One process, two logical CPU devices: the multi-GPU code path (MirroredStrategy)."""
    script = os.path.join(REPO, "tests", "distributed_meta_mirrored.py")
    result = subprocess.run([sys.executable, script, str(tmp_path)], check=True, capture_output=True, text=True,
                            env=subprocess_env(), timeout=600)
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["replicas"] == 2
    assert values["max_difference_to_single"] < 1e-6
    assert values["max_difference_between_replicas"] == 0.0
    summary = values["poisoned_summary"]
    assert summary["epochs"] == 3 and summary["skipped_updates"] >= 1 and summary["reset_runs"] >= 1
    assert values["poisoned_weights_finite"] and values["poisoned_replicas_identical"]
