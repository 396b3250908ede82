"""Resumable meta-training: SIGKILL mid-run, restart, and compare with an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, subprocess_env

from l2l_tf import checkpoints

FLAGS = ["--problem=quadratic", "--num_epochs=30", "--num_steps=40", "--unroll_length=20",
         "--validation_every=5", "--validation_runs=2", "--log_every=5", "--checkpoint_every=1", "--seed=3"]


def _command(save_path, *extra):
    return [sys.executable, "-m", "train.meta_train", f"--save_path={save_path}", *FLAGS, *extra]


def _run(save_path, *extra):
    result = subprocess.run(_command(save_path, *extra), check=False, capture_output=True, text=True, cwd=REPO,
                            env=subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _latest_epoch(save_path):
    latest = tf.train.latest_checkpoint(os.path.join(save_path, "train"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _train_state(save_path):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(save_path, "train")))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OPTIMIZER_SLOT" not in name and name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_sigkill_then_restart_resumes_and_matches_an_uninterrupted_run(tmp_path):
    reference = str(tmp_path / "reference")
    _run(reference)

    interrupted = str(tmp_path / "interrupted")
    process = subprocess.Popen(_command(interrupted), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=REPO, env=subprocess_env())
    deadline = time.time() + 300
    while _latest_epoch(interrupted) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _latest_epoch(interrupted)
    if killed_at >= 30:
        pytest.fail("the run finished before it could be killed; make the test run longer")
    assert killed_at >= 3
    checkpoints.load_rule(interrupted)  # the best rule on disk is intact after SIGKILL

    stdout = _run(interrupted)
    resumed_line = next(line for line in stdout.splitlines() if line.startswith("resumed from"))
    resumed_epoch = int(resumed_line.split(": run ")[1].split(",")[0])
    assert killed_at <= resumed_epoch < 30
    assert "best validation" in resumed_line

    final, expected = _train_state(interrupted), _train_state(reference)
    assert final.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(final[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert int(final["epoch/.ATTRIBUTES/VARIABLE_VALUE"]) == 30
    assert float(final["best_score/.ATTRIBUTES/VARIABLE_VALUE"]) == pytest.approx(
        float(expected["best_score/.ATTRIBUTES/VARIABLE_VALUE"]), rel=1e-5)


def test_restart_with_changed_settings_is_refused(tmp_path):
    save = str(tmp_path / "run")
    subprocess.run(_command(save, "--num_epochs=1"), capture_output=True, cwd=REPO, env=subprocess_env(), timeout=600, check=True)
    result = subprocess.run(_command(save, "--num_epochs=2", "--hidden_size=10"), check=False, capture_output=True, text=True,
                            cwd=REPO, env=subprocess_env(), timeout=600)
    assert result.returncode == 2
    assert "hidden_size: 20 -> 10" in result.stderr and "new save_path" in result.stderr and "--save_path=" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_training_checkpoint_written_before_the_seams_restores_whole(tmp_path):
    """tests/data/pre_seams_run (a copy of experiments/conv/run_single at run 135) was written by
    the loop before it was split into an estimator, a trainer pool and a training state: every object of it restores into today's
    state (rule, shared meta-optimizer, counters), and its run config reads back."""
    import json
    import shutil

    from l2l_tf.meta import MetaConfig, make_meta_optimizer
    from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig
    from l2l_tf.run_config import RunConfig
    from l2l_tf.training_state import TrainingState

    old = os.path.join(REPO, "tests", "data", "pre_seams_run")
    save = str(tmp_path / "run")
    shutil.copytree(old, save)
    with open(os.path.join(save, "run_config.json")) as f:
        stored = RunConfig.from_dict(json.load(f))
    computation = stored.computation
    rule = CoordinatewiseLSTM(RuleConfig(momentum_decays=computation.momentum_decays), seed=computation.seed)
    config = MetaConfig(num_steps=computation.num_steps, unroll_length=computation.unroll_length,
                        meta_learning_rate=computation.meta_learning_rate)
    optimizer = make_meta_optimizer(config, rule.trainable_variables)
    state = TrainingState(rule, optimizer, tf.Variable(0, dtype=tf.int64), save, chief=True)
    lines = []
    state.restore(None, os.path.join(save, "best"), lines.append)
    assert lines and lines[-1].startswith(f"resumed from {os.path.join(save, 'train', 'ckpt-135')}: run 135")
    assert int(state.epoch) == 135 and int(optimizer.iterations) > 0
    with open(os.path.join(save, "best", "rule_config.json")) as f:
        best = json.load(f)
    assert int(state.best_epoch) == best["epoch"] and float(state.best_score) == pytest.approx(best["validation_loss"])
    assert not np.allclose(rule.trainable_variables[0].numpy(), CoordinatewiseLSTM(rule.config, seed=0).trainable_variables[0].numpy())
