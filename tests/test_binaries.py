"""The absl binaries, run as a user runs them: in subprocesses, with real files."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, subprocess_env

from l2l_tf.evaluation import read_curves

QUICK_TRAIN = ["--problem=quadratic", "--num_epochs=4", "--num_steps=20", "--unroll_length=10",
               "--validation_every=2", "--validation_runs=2", "--log_every=2", "--checkpoint_every=2"]


def run_binary(name, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", f"train.{name}", *args], check=False, capture_output=True, text=True,
                          cwd=REPO, env=subprocess_env(), timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    save = str(tmp_path_factory.mktemp("meta") / "run")
    result = run_binary("meta_train", f"--save_path={save}", *QUICK_TRAIN, f"--export_dir={save}_export")
    assert result.returncode == 0, result.stderr[-3000:]
    return save, result.stdout


def test_meta_train_writes_best_rule_logs_checkpoints_and_export(trained):
    save, stdout = trained
    assert "validation after run 0" in stdout and "optimizee steps/s" in stdout
    last = next(line for line in stdout.splitlines() if line.startswith("run 4/4"))
    assert "meta-loss/step" in last and "elapsed 0:" in last and "ETA 0:00:00" in last
    summary = json.loads(stdout.split("summary: ")[1].splitlines()[0])
    assert summary["runs"] == 4 and summary["skipped_updates"] == 0
    assert os.path.isfile(os.path.join(save, "best", "rule_config.json"))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(save, "logs")))
    assert os.path.isfile(os.path.join(save, "train", "checkpoint"))
    from l2l_tf import export

    meta = export.read_metadata(save + "_export")
    assert meta["training"]["problem"] == "quadratic" and "meta_train" in meta["training"]["command"]
    assert meta["problem"]["name"] == "quadratic"


def test_evaluate_prints_table_and_writes_curves_and_plot(trained, tmp_path):
    save, _ = trained
    out = str(tmp_path / "eval")
    result = run_binary("evaluate", "--problem=quadratic", f"--optimizer={save}_export", "--num_steps=20",
                        "--num_seeds=3", "--tuning_seeds=2", "--learning_rates=0.01,0.1", "--baselines=sgd,adam",
                        f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("lstm", "adam", "sgd", "loss@20 mean"):
        assert name in result.stdout
    results = json.loads(pathlib.Path(out, "results.json").read_text())
    assert "curves" not in results and results["curves_file"] == "curves.npz"  # curves are stored compactly
    curves = read_curves(out)
    assert sorted(curves) == ["adam", "lstm", "sgd"] and curves["adam"].shape == (3, 21)
    adam = next(s for s in results["summary"] if s["optimizer"] == "adam")
    assert adam["final_loss_mean"] == pytest.approx(float(np.mean(curves["adam"][:, -1])))
    assert results["settings"]["evaluation_seeds"] == [0, 2]
    assert results["tuning"]["adam"]["best_learning_rate"] in (0.01, 0.1)
    with open(os.path.join(out, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_export_binary_embeds_evaluation(trained, tmp_path):
    save, _ = trained
    evaluation = tmp_path / "results.json"
    evaluation.write_text(json.dumps({"summary": [{"optimizer": "lstm", "final_loss_mean": 1.0}], "settings": {"num_steps": 20}}))
    result = run_binary("export", f"--optimizer={save}", f"--export_dir={tmp_path / 'rule'}", f"--evaluation_json={evaluation}")
    assert result.returncode == 0, result.stderr[-3000:]
    from l2l_tf import export

    assert export.read_metadata(str(tmp_path / "rule"))["evaluation"]["settings"] == {"num_steps": 20}


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("meta_train", ["--save_path=/tmp/x", "--num_steps=100", "--unroll_length=30"], "must divide --num_steps"),
        ("meta_train", ["--save_path=/proc/l2l_tf_test/x"], "cannot create the folder"),
        ("meta_train", ["--save_path=/tmp/x", "--num_runs=0"], "--num_runs=0: 0 is not a positive integer"),
        ("meta_train", ["--save_path=/tmp/x", "--num_epochs=0"], "--num_runs=0"),  # the flag's older name
        ("meta_train", ["--save_path=/tmp/x", "--recompute_segment=3"], "recompute_segment (3) must be 0 (off) or divide"),
        ("meta_train", ["--save_path=/tmp/x", "--problem=cifar"], "problem"),
        ("meta_train", ["--save_path=/tmp/x", "--problem=mnist", "--data_source=idx", "--data_dir=/nonexistent"], "--data_dir"),
        ("meta_train", ["--save_path=/tmp/x", "--coordinate_blocks=0"], "coordinate_blocks"),
        ("meta_train", ["--save_path=/tmp/x", "--coordinate_shards=100000"], "--coordinate_blocks=100000: coordinate_shards must lie in [1, 1280]"),
        ("meta_train", [], "save_path"),
        ("evaluate", ["--optimizer=/nonexistent"], "no trained rule"),
        ("evaluate", ["--optimizer=/tmp", "--baselines=adamw"], "unknown ['adamw']"),
        ("evaluate", ["--optimizer=/tmp", "--learning_rates=fast"], "must be numbers"),
        ("export", ["--checkpoint=/nonexistent", "--export_dir=/tmp/y"], "no trained rule"),
        ("export", ["--optimizer=/a", "--checkpoint=/b", "--export_dir=/tmp/y"], "deprecated alias of --optimizer; pass only --optimizer"),
    ],
)
def test_bad_flags_give_a_usage_error_not_a_traceback(name, args, message):
    result = run_binary(name, *args, timeout=300)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_init_optimizer_warm_starts_with_the_source_rule(trained, tmp_path):
    save, _ = trained
    source_score = json.loads(pathlib.Path(save, "best", "rule_config.json").read_text())["validation_loss"]
    # --init_optimizer takes a rule wherever it is, like --optimizer: here the exported one.
    result = run_binary("meta_train", f"--save_path={tmp_path / 'warm'}", f"--init_optimizer={save}_export",
                        *[f for f in QUICK_TRAIN if not f.startswith("--num_epochs")], "--num_epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    first = next(line for line in result.stdout.splitlines() if "validation after run 0" in line)
    assert float(first.split(": ")[1].split()[0]) == pytest.approx(source_score, rel=1e-4)
    mismatch = run_binary("meta_train", f"--save_path={tmp_path / 'bad'}", f"--init_from={save}", "--hidden_size=8",
                          *QUICK_TRAIN)
    assert mismatch.returncode == 2 and "pass matching architecture flags" in mismatch.stderr
    # The flag's first name still works, with a one-line deprecation warning.
    assert "WARNING: --init_from is deprecated; use --init_optimizer (same meaning)" in mismatch.stderr
    assert json.loads(pathlib.Path(tmp_path, "warm", "run_config.json").read_text())["init_from"] == f"{save}_export"


def test_coordinate_blocks_train_the_same_rule(trained, tmp_path):
    save, _ = trained
    result = run_binary("meta_train", f"--save_path={tmp_path / 'sharded'}", *QUICK_TRAIN, "--coordinate_blocks=2")
    assert result.returncode == 0, result.stderr[-3000:]
    best = [json.loads(pathlib.Path(path, "best", "rule_config.json").read_text()) for path in (save, tmp_path / "sharded")]
    assert best[1]["epoch"] == best[0]["epoch"]
    assert best[1]["validation_loss"] == pytest.approx(best[0]["validation_loss"], rel=1e-4)
