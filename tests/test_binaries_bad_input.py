"""Bad input to the binaries: a one-line usage error (exit 2) naming the problem and the
fix, given before any work, never a traceback and never lost data."""

import gzip
import os
import struct
import subprocess
import sys

import pytest
from conftest import REPO, subprocess_env

from l2l_tf import checkpoints
from l2l_tf.problems.data import IDX_FILES
from l2l_tf.rules import CoordinatewiseLSTM

SHIPPED = os.path.join(REPO, "saved_optimizers", "quadratic_lstm")
QUICK_EVAL = ["--problem=quadratic", "--num_steps=2", "--num_seeds=1", "--tuning_seeds=1", "--baselines=sgd",
              "--learning_rates=0.1", "--nojit_compile"]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    base = tmp_path_factory.mktemp("places")
    run = base / "runs" / "quad"
    checkpoints.save_rule(CoordinatewiseLSTM(seed=1), str(run / "best"), {"epoch": 0, "run_config": {}})
    (base / "a_file").write_text("not a folder")
    (base / "photos").mkdir()
    (base / "photos" / "cat.jpg").write_bytes(b"meow")
    (base / "bad.json").write_text("{not json")
    garbage = base / "garbage_run"
    checkpoints.save_rule(CoordinatewiseLSTM(seed=1), str(garbage / "best"))
    (garbage / "best" / "rule_config.json").write_text("\x00garbage")
    (base / "garbage_resume").mkdir()
    (base / "garbage_resume" / "run_config.json").write_text("[[[")
    for name, shape in (("idx27", (5, 27, 27)), ("idx0", (0, 28, 28))):
        directory = base / name
        directory.mkdir()
        images = struct.pack(">HBB3I", 0, 8, 3, *shape) + bytes(int(shape[0] * shape[1] * shape[2]))
        labels = struct.pack(">HBBI", 0, 8, 1, shape[0]) + bytes(shape[0])
        for images_name, labels_name in IDX_FILES.values():
            (directory / f"{images_name}.gz").write_bytes(gzip.compress(images))
            (directory / f"{labels_name}.gz").write_bytes(gzip.compress(labels))
    return base


def _run(name, *args):
    return subprocess.run([sys.executable, "-m", f"train.{name}", *args], check=False, capture_output=True,
                          text=True, cwd=REPO, env=subprocess_env(), timeout=600)


CASES = [
    ("export", ["--optimizer={run}", "--export_dir={base}/photos"], "is a non-empty folder that is not an exported l2l_tf rule"),
    ("export", ["--optimizer={run}", "--export_dir={run}"], "is the run folder"),
    ("export", ["--optimizer={run}", "--export_dir={base}/runs"], "is the run folder"),
    ("export", ["--optimizer={run}", "--export_dir={base}/a_file/rule"], "is a file, not a folder"),
    ("export", ["--optimizer={run}", "--export_dir={base}/new", "--evaluation_json={base}/bad.json"],
     "evaluation results is not valid JSON"),
    ("export", ["--checkpoint={base}/garbage_run", "--export_dir={base}/new2"], "rule config is not valid JSON"),
    ("meta_train", ["--save_path={base}/fresh", "--export_dir={base}/fresh"], "is the run folder"),
    ("meta_train", ["--save_path={base}/fresh", "--export_dir={base}/a_file/rule"], "is a file, not a folder"),
    ("meta_train", ["--save_path={base}/fresh", "--export_dir={base}/photos"], "not an exported l2l_tf rule"),
    ("meta_train", ["--save_path={base}/a_file"], "--save_path={base}/a_file is a file, not a folder"),
    ("meta_train", ["--save_path={base}/fresh", "--logdir={base}/a_file/logs"], "--logdir={base}/a_file/logs: cannot create"),
    ("meta_train", ["--save_path={base}/fresh", "--output_scale=inf"], "output_scale must be a finite number > 0, got inf; fix the flag --output_scale"),
    ("meta_train", ["--save_path={base}/fresh", "--preprocessing_p=inf"], "fix the flag --preprocessing_p"),
    ("meta_train", ["--save_path={base}/fresh", "--hidden_size=5000"], "hidden_size must be in [1, 1024]"),
    ("meta_train", ["--save_path={base}/fresh", "--min_num_steps=30"], "min_num_steps (30) must be 0 (every run has num_steps) or a multiple of unroll_length (20)"),
    ("meta_train", ["--save_path={base}/fresh", "--min_num_steps=20", "--distribution=mirrored"], "--min_num_steps (sampled horizons) runs on one device"),
    ("meta_train", ["--save_path={base}/garbage_resume", "--num_epochs=1"], "run_config.json: the run config is not valid JSON"),
    ("meta_train", ["--save_path={base}/fresh", "--rule=mlp", "--progress_input"], "--progress_input is an input of the LSTM rule"),
    ("evaluate", ["--optimizer={shipped}", "--output_dir={base}/a_file", *QUICK_EVAL], "--output_dir={base}/a_file is a file"),
    ("evaluate", ["--optimizer={shipped}", "--learning_rates=inf", *QUICK_EVAL[:-2], "--nojit_compile"], "must all be finite numbers > 0"),
    ("evaluate", ["--optimizer={base}/garbage_run", *QUICK_EVAL], "rule config is not valid JSON"),
    ("evaluate", ["--optimizer={shipped}", "--total_steps=50", *QUICK_EVAL], "--total_steps is for a rule that reads its run's progress"),
    ("evaluate", ["--optimizer={shipped}", "--tuning_curves={base}/photos", *QUICK_EVAL], "--tuning_curves={base}/photos: "),
    ("evaluate", ["--optimizer={shipped}", "--tuning_curves={base}/photos", "--baseline_results={base}/bad.json", *QUICK_EVAL],
     "--tuning_curves and --baseline_results both say where the baselines come from"),
    ("evaluate", ["--optimizer={shipped}", "--tuning_curves={base}/photos", *QUICK_EVAL, "--baselines="], "--baselines is empty"),
    ("evaluate", ["--optimizer={shipped}", "--problem=mnist", "--data_source=idx", "--data_dir={base}/idx27"],
     "5 images of 27x27 pixels; expected 1 to 100000 MNIST images of 28x28"),
    ("fit_keras", ["--optimizer={shipped}", "--hidden=0"], "--hidden must be positive integers"),
    ("fit_keras", ["--optimizer={shipped}", "--hidden=-3"], "--hidden must be positive integers"),
    ("fit_keras", ["--optimizer={shipped}", "--activation=bogus"], "--activation=bogus is not a Keras activation"),
    ("fit_keras", ["--optimizer={shipped}", "--data_source=idx", "--data_dir={base}/idx0"], "declares 0 images of 28x28"),
]


@pytest.mark.parametrize("name, args, message", CASES)
def test_bad_input_gives_one_line_and_changes_nothing(places, name, args, message):
    values = {"base": str(places), "run": str(places / "runs" / "quad"), "shipped": SHIPPED}
    before = sorted(os.path.relpath(os.path.join(r, f), places) for r, _, fs in os.walk(places) for f in fs)
    result = _run(name, *[arg.format(**values) for arg in args])
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("FATAL Flags/input error:")]
    assert len(error_lines) == 1 and message.format(**values) in error_lines[0], result.stderr[-2000:]
    after = sorted(os.path.relpath(os.path.join(r, f), places) for r, _, fs in os.walk(places) for f in fs)
    assert after == before  # nothing deleted, nothing half-written
    assert (places / "photos" / "cat.jpg").read_bytes() == b"meow"
    assert "tuned" not in result.stdout  # evaluate stopped before computing anything
