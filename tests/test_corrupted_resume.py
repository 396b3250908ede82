"""Resuming meta-training from damaged files: fall back to the newest readable
checkpoint with a warning, or stop with one line naming the file and the fix; a crash
while ``best/`` was being replaced is repaired, and temporary folders are cleaned up."""

import glob
import os

import pytest

from l2l_tf import checkpoints
from l2l_tf.meta import MetaConfig
from l2l_tf.problems import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig
from l2l_tf.training import (
    IncompatibleResumeError,
    TrainingOptions,
    meta_train,
)

OPTIONS = {"validation_every": 2, "validation_runs": 1, "checkpoint_every": 1, "log_every": 1}


def _train(save_path, epochs):
    lines = []
    summary = meta_train(
        CoordinatewiseLSTM(RuleConfig(hidden_size=4), seed=0), Quadratic(dims=3, batch_size=2),
        MetaConfig(num_steps=4, unroll_length=2), TrainingOptions(num_epochs=epochs, **OPTIONS), str(save_path),
        {"problem": "quadratic"}, log=lines.append,
    )
    return summary, lines


@pytest.fixture
def run(tmp_path):
    save = tmp_path / "run"
    _train(save, 3)
    return save


def _checkpoint_files(save, number, kind):
    return glob.glob(str(save / "train" / f"ckpt-{number}.{kind}*"))


@pytest.mark.parametrize("kind, damage", [("data", "truncate"), ("data", "garbage"), ("index", "truncate"),
                                          ("index", "garbage")])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(run, kind, damage):
    for path in _checkpoint_files(run, 3, kind):
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            if damage == "truncate":
                f.truncate(size // 2)
            else:
                f.write(b"\xff" * size)
    summary, lines = _train(run, 4)
    assert any("WARNING: checkpoint" in line and "ckpt-3" in line for line in lines), lines
    assert any(line.startswith("resumed from") and "ckpt-2" in line for line in lines), lines
    assert summary.runs == 4


def test_all_checkpoints_damaged_stops_with_one_line_naming_them(run):
    for path in glob.glob(str(run / "train" / "ckpt-*.index")):
        with open(path, "wb") as f:
            f.write(b"garbage")
    with pytest.raises(IncompatibleResumeError, match="no readable training checkpoint .* Move .* aside") as error:
        _train(run, 4)
    assert "\n" not in str(error.value) and "ckpt-3.index" in str(error.value)


def test_a_garbage_checkpoint_state_file_is_reported_and_bypassed(run):
    (run / "train" / "checkpoint").write_text("garbage {{{")
    summary, lines = _train(run, 4)
    assert any("checkpoint is missing or unreadable" in line for line in lines), lines
    assert any(line.startswith("resumed from") and "ckpt-3" in line for line in lines), lines
    assert summary.runs == 4


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "[" * 100000])
def test_a_garbage_run_config_stops_with_one_line_naming_it(run, content):
    (run / "run_config.json").write_text(content)
    with pytest.raises(IncompatibleResumeError, match="run_config.json.*delete it to resume") as error:
        _train(run, 4)
    assert "\n" not in str(error.value)


def test_a_kill_between_the_renames_of_best_is_recovered_and_leftovers_removed(run):
    best = run / "best"
    epoch_before = checkpoints.read_rule_metadata(str(best))["epoch"]
    os.replace(best, run / ".old-best-abc123")  # what replace_directory's first rename leaves
    (run / ".tmp-best-def456").mkdir()  # a half-written new copy
    assert checkpoints.resolve_rule_dir(str(run)) == str(best)  # readers recover it too
    os.replace(best, run / ".old-best-abc123")
    _, lines = _train(run, 3)
    assert any("recovered" in line and "best" in line for line in lines), lines
    assert checkpoints.read_rule_metadata(str(best))["epoch"] == epoch_before
    assert sorted(p for p in os.listdir(run) if p.startswith(".")) == []


def test_garbage_rule_config_is_a_clear_error(run):
    (run / "best" / "rule_config.json").write_text("\x00\x01garbage")
    with pytest.raises(checkpoints.RuleCheckpointError, match="rule_config.json.*not valid JSON.*re-run meta_train"):
        checkpoints.load_rule(str(run))
