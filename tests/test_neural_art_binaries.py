"""Neural art end to end, as a user runs it: meta_train, evaluate, the picture grid and the stylize tool,
in subprocesses, on a small fake data folder (same file names and formats as the shared one)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, subprocess_env
from neural_art_helpers import write_fake_data_dir

from l2l_tf.problems import images, neural_art


def run_binary(name, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", f"train.{name}", *args], check=False, capture_output=True, text=True,
                          cwd=REPO, env=subprocess_env(), timeout=timeout)


@pytest.fixture(scope="module")
def art_dir(tmp_path_factory):
    return write_fake_data_dir(
        str(tmp_path_factory.mktemp("art")),
        photos=neural_art.TRAINING_PHOTOS + neural_art.TEST_PHOTOS,
        paintings=(neural_art.TRAINING_STYLE, neural_art.HELD_OUT_STYLE),
    )


@pytest.fixture(scope="module")
def trained(art_dir, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("meta") / "run")
    result = run_binary(
        "meta_train", "--problem=neural_art", f"--data_dir={art_dir}", f"--save_path={save}", "--num_epochs=2",
        "--num_steps=4", "--unroll_length=2", "--validation_every=2", "--validation_runs=1", "--log_every=1",
        "--checkpoint_every=2", "--momentum_decays=0.5,0.9", f"--export_dir={save}_export",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return save, result.stdout


def test_tiny_meta_training_run_exports_a_rule(trained):
    save, stdout = trained
    assert "on neural_art (12288 coordinates)" in stdout and "run 2/2" in stdout
    summary = json.loads(stdout.split("summary: ")[1].splitlines()[0])
    assert summary["epochs"] == 2 and summary["skipped_updates"] == 0
    from l2l_tf import export

    meta = export.read_metadata(save + "_export")
    assert meta["problem"]["name"] == "neural_art" and meta["problem"]["style"] == neural_art.TRAINING_STYLE
    assert meta["problem"]["test_photos"] == list(neural_art.TEST_PHOTOS)


def test_evaluate_and_picture_grid_on_the_held_out_style(trained, art_dir, tmp_path):
    save, _ = trained
    out = str(tmp_path / "eval")
    common = ["--problem=neural_art_new_style", f"--data_dir={art_dir}", f"--optimizer={save}_export", "--num_steps=3",
              "--nojit_compile"]
    result = run_binary("evaluate", *common, "--num_seeds=2", "--tuning_seeds=1", "--learning_rates=0.01,0.1",
                        "--baselines=adam", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "content_loss mean" in result.stdout and "vs adam" in result.stdout
    results = json.loads(pathlib.Path(out, "results.json").read_text())
    assert np.asarray(results["curves"]["lstm"]).shape == (2, 4)
    assert results["settings"]["problem"]["style"] == neural_art.HELD_OUT_STYLE
    grid = str(tmp_path / "grid.png")
    result = run_binary("neural_art_grid", *common, f"--evaluation={out}/results.json", "--seeds=0,1",
                        f"--output={grid}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lstm: loss at step 3" in result.stdout and "adam: loss at step 3" in result.stdout
    with open(grid, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    shipped = str(tmp_path / "shipped")
    shutil.copytree(f"{save}_export", shipped)
    result = run_binary("report", f"--optimizer_dir={shipped}", f"--evaluation=(c) new style={out}",
                        f"--image=(c) pictures={grid}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = pathlib.Path(shipped, "report.md").read_text()
    assert "## (c) new style" in report and "![(c) pictures](image_0.png)" in report
    assert os.path.isfile(os.path.join(shipped, "image_0.png")) and os.path.isfile(os.path.join(shipped, "eval_0.png"))
    wrong = run_binary("neural_art_grid", "--problem=neural_art", f"--data_dir={art_dir}", f"--optimizer={save}_export",
                       f"--evaluation={out}/results.json", f"--output={grid}")
    assert wrong.returncode == 2 and "evaluated 'neural_art_new_style', not --problem=neural_art" in wrong.stderr


def test_stylize_writes_image_and_frames_with_learned_and_keras_optimizers(trained, art_dir, tmp_path):
    save, _ = trained
    content = os.path.join(art_dir, "content", "red.jpg")  # 56 x 40 pixels
    style = os.path.join(art_dir, "style", "stripes.jpg")
    vgg = os.path.join(art_dir, "vgg19", "vgg19_notop_q8.npz")
    for optimizer in (f"{save}_export", "adam"):
        output = str(tmp_path / f"{os.path.basename(optimizer)}.png")
        result = run_binary("stylize", f"--content={content}", f"--style={style}", f"--output={output}", "--size=28",
                            f"--optimizer={optimizer}", "--num_steps=4", "--frames_every=2", f"--vgg_weights={vgg}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "4/4" in result.stdout and "loss:" in result.stdout  # the progress bar
        stylised = images.read_image(output)
        assert stylised.shape == (20, 28, 3)  # longer side --size, aspect ratio kept
        frames = sorted(os.listdir(output[:-4] + "_frames"))
        assert frames == ["step_00002.png", "step_00004.png"]


@pytest.mark.parametrize("case, message", [
    ("unreadable", "cannot read image"),
    ("no_weights", "VGG19 weights file"),
    ("too_large", "needs about"),
])
def test_stylize_errors_are_one_line_and_write_nothing(art_dir, tmp_path, case, message):
    content = os.path.join(art_dir, "content", "red.jpg")
    vgg = os.path.join(art_dir, "vgg19", "vgg19_notop_q8.npz")
    size = "32"
    if case == "unreadable":
        content = str(tmp_path / "photo.jpg")
        pathlib.Path(content).write_text("not a picture")
    elif case == "no_weights":
        vgg = str(tmp_path / "absent.npz")
    else:
        size = "1000000"
    output = str(tmp_path / "out.png")
    result = run_binary("stylize", f"--content={content}", f"--style={os.path.join(art_dir, 'style', 'stripes.jpg')}",
                        f"--output={output}", f"--size={size}", "--optimizer=adam", f"--vgg_weights={vgg}")
    assert result.returncode == 2, result.stderr[-2000:]
    fatal = [line for line in result.stderr.splitlines() if line.startswith("FATAL")]
    assert len(fatal) == 1 and message in fatal[0], result.stderr[-2000:]
    if case == "no_weights":
        assert "--vgg_weights=imagenet" in fatal[0]
    assert "Traceback" not in result.stderr and not os.path.exists(output)
