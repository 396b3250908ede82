"""l2l-evaluate-suite end to end, as a user runs it: baselines alone, then reused for a shipped rule."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from test_binaries import run_binary
from test_packaging import quiet_env

SUITE = "--suite=quadratic_30_loss0.3,val_conv_8_d14_2"
TINY = ["--num_steps=6", "--num_runs=2", "--tuning_seeds=1", "--learning_rates=0.01,0.1", "--baselines=sgd,adam",
        "--nojit_compile"]


@pytest.fixture(scope="module")
def baselines_only(tmp_path_factory, mnist_data_dir):
    out = tmp_path_factory.mktemp("suite") / "baselines"
    data = ["--data_source=idx", f"--data_dir={mnist_data_dir}"]
    result = run_binary("evaluate_suite", SUITE, *TINY, *data, f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, data, result.stdout


def test_baselines_alone_print_the_table_and_write_json(baselines_only):
    out, _, stdout = baselines_only
    assert "quadratic_30_loss0.3: adam tuned to learning rate" in stdout and "adam@1e-3" in stdout
    results = json.loads((out / "results.json").read_text())
    assert list(results["tasks"]) == ["quadratic_30_loss0.3", "val_conv_8_d14_2"]
    task = results["tasks"]["val_conv_8_d14_2"]
    assert set(task["baselines"]) == {"sgd", "adam", "adam_default"} and task["rule"] is None
    assert len(task["baselines"]["adam"]["final_losses"]) == 2 and task["baselines"]["adam_default"]["learning_rate"] == 0.001
    assert task["settings"]["num_steps"] == 6 and task["settings"]["tuning_seeds"] == [800_000]
    assert task["comparison"]["best_baseline"] in ("sgd", "adam")


def test_a_shipped_rule_reuses_the_baselines_and_reports_against_the_targets(baselines_only, tmp_path):
    out, data, _ = baselines_only
    rule_out = tmp_path / "rule"
    result = run_binary("evaluate_suite", SUITE, *TINY, *data, "--optimizer=saved_optimizers/mnist_lstm",
                        "--name=mnist_lstm", f"--baseline_results={out}/results.json", "--stability_factor=2",
                        f"--output_dir={rule_out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tuned to learning rate" not in result.stdout  # the baselines were reused, not re-run
    assert "val_conv_8_d14_2: baselines reused from" in result.stdout and "tuned on 1 other runs" in result.stdout
    for line in ("mnist_lstm at or below the best tuned baseline on", "below Adam at its default learning rate on",
                 "diverged runs:", "targets met:"):
        assert line in result.stdout
    first = json.loads((out / "results.json").read_text())
    second = json.loads((rule_out / "results.json").read_text())
    for task in ("quadratic_30_loss0.3", "val_conv_8_d14_2"):
        assert second["tasks"][task]["baselines"] == first["tasks"][task]["baselines"]
        assert len(second["tasks"][task]["rule"]["final_losses"]) == 2
        assert len(second["tasks"][task]["stability"]["final_losses"]) == 2
    assert second["summary"]["tasks"] == 2 and isinstance(second["summary"]["targets_met"], bool)
    assert "targets met:" in (rule_out / "results.md").read_text()
    # One table assembled from earlier runs: the rule's runs reused too, nothing re-run.
    again = run_binary("evaluate_suite", SUITE, *TINY, *data, "--optimizer=saved_optimizers/mnist_lstm",
                       "--name=mnist_lstm", f"--baseline_results={out}/results.json", "--stability_factor=2",
                       f"--rule_results={rule_out}/results.json", f"--output_dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "val_conv_8_d14_2: mnist_lstm's runs reused from" in again.stdout
    third = json.loads((tmp_path / "again" / "results.json").read_text())
    assert third["tasks"] == second["tasks"] and third["summary"] == second["summary"]
    # The suite's table goes into a shipped folder's report (a suite folder has no curves picture).
    folder = tmp_path / "shipped_copy"
    shutil.copytree(os.path.join(REPO, "saved_optimizers", "mnist_lstm"), folder, ignore=shutil.ignore_patterns("*.png"))
    report = run_binary("report", f"--optimizer={folder}", f"--evaluation=Held-out suite={rule_out}")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (folder / "report.md").read_text()
    assert "## Held-out suite" in text and "targets met:" in text and "--stability_factor=2" in text
    assert "Held-out suite](" not in text and not (folder / "eval_0.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--suite=nope"], "--suite=nope: unknown task or task list 'nope'; lists: training, validation, heldout"),
    (["--suite=heldout,mlp_relu_99"], "unknown task or task list 'mlp_relu_99'"),
    (["--suite=quadratic_10", "--baselines=sgd,adagrad"], "--baselines: unknown ['adagrad']"),
    (["--suite=quadratic_10", "--optimizer=no_such_rule"], "'no_such_rule' is neither an existing rule folder"),
    (["--suite=quadratic_10", "--rule_results=x/results.json"], "--rule_results reuses a rule's runs: pass that rule"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    result = run_binary("evaluate_suite", *args, f"--output_dir={tmp_path}")
    assert result.returncode == 2
    (fatal,) = [line for line in result.stderr.splitlines() if "FATAL" in line]  # one line says what is wrong
    assert message in fatal


def test_reused_baselines_must_match_the_horizon_and_missing_ones_are_run(baselines_only, tmp_path):
    out, data, _ = baselines_only
    result = run_binary("evaluate_suite", SUITE, "--num_steps=7", *TINY[1:], *data,
                        "--optimizer=saved_optimizers/mnist_lstm", f"--baseline_results={out}/results.json",
                        f"--output_dir={tmp_path}")
    assert result.returncode == 2 and "task quadratic_30_loss0.3 was run with another num_steps" in result.stderr
    resumed = tmp_path / "resumed"  # a task the file lacks has its baselines run; the others are reused
    result = run_binary("evaluate_suite", f"{SUITE},quadratic_5_loss0.1", *TINY, *data,
                        f"--baseline_results={out}/results.json", f"--output_dir={resumed}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has no baselines for ['quadratic_5_loss0.1']: running them" in result.stdout
    assert "quadratic_5_loss0.1: adam tuned to learning rate" in result.stdout
    assert "quadratic_30_loss0.3: baselines reused from" in result.stdout
    tasks = json.loads((resumed / "results.json").read_text())["tasks"]
    assert list(tasks) == ["quadratic_30_loss0.3", "val_conv_8_d14_2", "quadratic_5_loss0.1"]


def test_helpshort_lists_the_suite_and_data_flags_and_starts_quiet():
    result = subprocess.run([sys.executable, "-m", "train.evaluate_suite", "--helpshort"], check=False, capture_output=True,
                            text=True, cwd=REPO, env=quiet_env(), timeout=300)
    for flag in ("--suite", "--optimizer", "--baseline_results", "--stability_factor", "--data_source", "--data_dir"):
        assert f"  {flag}:" in result.stdout, flag
    assert result.stderr == ""
