"""Meta-training progress: the printed meta-loss's scale, per-run reports with elapsed time
and ETA, and TensorBoard summaries (curves, hyper-parameters, no repeated steps on resume)."""

from __future__ import annotations

import collections
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.compat.proto import event_pb2

from l2l_tf import progress, seeds, summaries
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaTrainer
from l2l_tf.problems import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.training import TrainingOptions, meta_train, validation_score

NUM_STEPS = 10


def _events(logdir):
    """(tag, step) of every summary value in ``logdir``'s event files."""
    found = []
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            found += [(value.tag, event.step) for value in event.summary.value]
    return found


def _train(save_path, num_runs, reports=None):
    return meta_train(
        CoordinatewiseLSTM(seed=0), Quadratic(dims=4, batch_size=4),
        MetaConfig(num_steps=NUM_STEPS, unroll_length=5),
        TrainingOptions(num_epochs=num_runs, validation_every=2, validation_runs=1, checkpoint_every=4, log_every=2),
        save_path, {"problem": "quadratic", "momentum_decays": []}, log=lambda line: None,
        on_run_end=None if reports is None else reports.append,
    )


def test_printed_meta_loss_is_on_the_validation_scale():
    problem, rule = Quadratic(dims=5, batch_size=8), CoordinatewiseLSTM(seed=1)
    config = MetaConfig(num_steps=20, unroll_length=20)  # one unroll: the rule is fixed during it
    seed = seeds.training_seed(0)
    runner = RuleRunner(rule, problem, 20, jit_compile=False)
    curve, score = runner.run(seed)[0], validation_score(runner, [seed], config)
    printed = progress.per_step_meta_loss(list(MetaTrainer(rule, problem, config).unrolls(seed)), config.unroll_length)
    # The meta-loss per step averages steps 1..T; the validation score steps 0..T.
    np.testing.assert_allclose(printed * 20 + curve[0], score * 21, rtol=1e-4)


def test_run_reports_count_runs_with_elapsed_time_and_eta(tmp_path):
    reports = []
    summary = _train(str(tmp_path / "run"), 3, reports)
    assert [r.run for r in reports] == [1, 2, 3] and all(r.num_runs == 3 for r in reports)
    assert summary.runs == 3 and reports[-1].eta_seconds == 0.0
    assert all(r.elapsed_seconds > 0 and np.isfinite(r.final_loss) for r in reports)
    assert reports[0].eta_seconds == pytest.approx(2 * reports[0].elapsed_seconds)


def test_clock_and_durations():
    now = iter([0.0, 30.0, 30.0])
    clock = progress.Clock(first_run=10, num_runs=20, now=lambda: next(now))
    assert clock.elapsed() == 30.0 and clock.eta(13) == pytest.approx(70.0)  # 3 runs in 30 s, 7 left
    assert progress.format_duration(3 * 3600 + 62.4) == "3:01:02" and progress.format_duration(float("nan")) == "?"


def test_progbar_callback_draws_the_runs(capsys):
    on_run_end = progress.progbar(2)
    for run in (1, 2):
        on_run_end(progress.RunReport(run, 2, 0.5, 0.25, 1.0, float(run), 2.0 - run))
    assert "2/2" in capsys.readouterr().out


def test_tensorboard_has_curves_and_hparams_and_no_repeated_steps_after_a_resume(tmp_path):
    save = str(tmp_path / "run")
    _train(save, 6)  # checkpoints after runs 4 and 6
    for path in glob.glob(os.path.join(save, "train", "ckpt-6.*")):
        os.remove(path)  # as if killed after logging run 6 but before its checkpoint
    tf.compat.v1.train.update_checkpoint_state(os.path.join(save, "train"), os.path.join(save, "train", "ckpt-4"))
    _train(save, 8)  # resumes after run 4: runs 5-8 are logged again
    events = _events(os.path.join(save, "logs"))
    repeated = [key for key, count in collections.Counter(events).items() if count > 1]
    assert repeated == []
    steps = collections.defaultdict(list)
    for tag, step in events:
        steps[tag].append(step)
    for tag in ("meta_loss_per_step", "meta_gradient_norm", "optimizee/final_loss", "elapsed_seconds"):
        assert sorted(steps[tag]) == list(range(1, 9)), tag
    assert sorted(steps["validation_loss"]) == [0, 2, 4, 6, 8]
    assert sorted(steps[summaries.OPTIMIZEE_LOSS]) == list(range(8 * NUM_STEPS))
    assert any(tag.startswith("_hparams_/") for tag in steps)
