"""train.evaluate: baselines run alone, then reused for a learned rule on the same runs."""

from __future__ import annotations

import json
import pathlib

import numpy as np
from test_neural_art_binaries import run_binary

from l2l_tf.evaluation import read_curves

FLAGS = ["--problem=quadratic", "--num_steps=10", "--num_seeds=3", "--tuning_seeds=2", "--learning_rates=0.01,0.1",
         "--baselines=sgd,adam", "--nojit_compile"]


def test_baselines_alone_then_reused_for_a_rule(tmp_path):
    base = str(tmp_path / "base")
    result = run_binary("evaluate", *FLAGS, f"--output_dir={base}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tuned adam" in result.stdout and "vs adam" not in result.stdout
    full = str(tmp_path / "full")
    result = run_binary("evaluate", *FLAGS, "--optimizer=saved_optimizers/quadratic_lstm",
                        f"--baseline_results={base}/results.json", f"--output_dir={full}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reused from" in result.stdout and "tuned adam" not in result.stdout and "vs adam" in result.stdout
    first = json.loads(pathlib.Path(base, "results.json").read_text())
    second = json.loads(pathlib.Path(full, "results.json").read_text())
    first_curves, second_curves = read_curves(base), read_curves(full)  # curves.npz beside results.json
    np.testing.assert_array_equal(first_curves["adam"], second_curves["adam"])
    assert second["tuning"] == first["tuning"] and set(second_curves) == {"lstm", "sgd", "adam"}
    rule_only = str(tmp_path / "rule")
    result = run_binary("evaluate", *FLAGS[:-2], "--baselines=", "--nojit_compile",
                        "--optimizer=saved_optimizers/quadratic_lstm", f"--output_dir={rule_only}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "baselines tuned" not in result.stdout  # none were
    combined = str(tmp_path / "combined")
    result = run_binary("evaluate", *FLAGS, "--optimizer=saved_optimizers/quadratic_lstm",
                        f"--rule_results={rule_only}/results.json", f"--baseline_results={base}/results.json",
                        f"--output_dir={combined}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "baselines tuned on 2 other runs" in result.stdout
    third = json.loads(pathlib.Path(combined, "results.json").read_text())
    third_curves = read_curves(combined)
    for name in ("lstm", "adam", "sgd"):
        np.testing.assert_array_equal(third_curves[name], second_curves[name])
    assert third["comparison"] == second["comparison"]
    mismatched = run_binary("evaluate", *FLAGS[:1], "--num_steps=12", *FLAGS[2:],
                            "--optimizer=saved_optimizers/quadratic_lstm", f"--baseline_results={base}/results.json")
    assert mismatched.returncode == 2 and "was run with another num_steps" in mismatched.stderr


def test_a_shorter_horizon_is_tuned_from_the_stored_tuning_runs_of_a_longer_one(tmp_path):
    long, short, direct = (str(tmp_path / name) for name in ("long", "short", "direct"))
    result = run_binary("evaluate", *FLAGS, f"--output_dir={long}")  # 10 steps, stores tuning_curves.npz
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_binary("evaluate", *FLAGS[:1], "--num_steps=6", *FLAGS[2:], f"--tuning_curves={long}", f"--output_dir={short}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tuned on the first 6 steps of the tuning runs" in result.stdout
    assert not pathlib.Path(short, "tuning_curves.npz").exists()  # no copy of the reused tuning runs
    result = run_binary("evaluate", *FLAGS[:1], "--num_steps=6", *FLAGS[2:], f"--output_dir={direct}")
    assert result.returncode == 0, result.stderr[-3000:]
    reused = json.loads(pathlib.Path(short, "results.json").read_text())
    tuned = json.loads(pathlib.Path(direct, "results.json").read_text())
    for name in ("sgd", "adam"):
        assert reused["tuning"][name]["best_learning_rate"] == tuned["tuning"][name]["best_learning_rate"]
        np.testing.assert_allclose(list(reused["tuning"][name]["scores"].values()),
                                   list(tuned["tuning"][name]["scores"].values()), rtol=1e-6)
        np.testing.assert_allclose(read_curves(short)[name], read_curves(direct)[name], rtol=1e-6)
    too_long = run_binary("evaluate", *FLAGS[:1], "--num_steps=20", *FLAGS[2:], f"--tuning_curves={long}")
    assert too_long.returncode == 2 and "--num_steps must not exceed that" in too_long.stderr
    other_grid = run_binary("evaluate", *FLAGS[:4], "--learning_rates=0.01", *FLAGS[5:], f"--tuning_curves={long}")
    assert other_grid.returncode == 2 and "was run with another learning_rate_grid" in other_grid.stderr
    run_binary("evaluate", *FLAGS[:5], "--baselines=", "--nojit_compile", "--optimizer=saved_optimizers/quadratic_lstm",
               f"--output_dir={long}")  # a rule-only run into the same folder removes the stale tuning curves
    stale = run_binary("evaluate", *FLAGS, f"--tuning_curves={long}")
    assert stale.returncode == 2 and "no tuning_curves.npz" in stale.stderr
