"""Installing and finding things: shipped rules by name, the wheel's contents and console
scripts, a quiet start-up, --helpshort, offline TFDS, evaluate's default output folder."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import REPO, subprocess_env

from l2l_tf import LearnedOptimizer, catalog, rule_families, startup
from l2l_tf.problems import data

SHIPPED = sorted(d for d in os.listdir(os.path.join(REPO, "saved_optimizers"))
                 if os.path.isdir(os.path.join(REPO, "saved_optimizers", d)))


def quiet_env() -> dict[str, str]:
    """The binaries' environment as a user has it: no TF_CPP_MIN_LOG_LEVEL of ours."""
    env = subprocess_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    return env


def test_catalog_names_every_shipped_folder_and_reads_its_metadata():
    assert catalog.names() == SHIPPED
    for entry in catalog.list_optimizers():
        with open(os.path.join(REPO, "saved_optimizers", entry.name, catalog.METADATA_FILE)) as f:
            metadata = json.load(f)
        rules = metadata.get("rules", {"": metadata})  # multi-rule folders: each parameter has one rule's state
        assert entry.horizon == metadata["training"]["num_steps"]
        assert entry.state_size == max(rule["state_size"] for rule in rules.values())
        assert entry.purpose in entry.describe() and f"runs of {entry.runs} steps" in entry.describe()
        assert entry.shortest_run == int(metadata["training"].get("min_num_steps") or 0)
    assert catalog.get("mnist_lstm_momentum").state_size == 83
    assert catalog.get("conv_lstm").state_size == 83  # two rules of 83 floats each
    general = catalog.get("general")
    assert general.state_size == 5 and not general.bfloat16_state and "(float32 only)" in general.describe()
    assert general.runs == "100-1000" and catalog.get("mnist_lstm").runs == "200"
    for family, (_, rule_class) in rule_families.FAMILIES.items():  # the catalog knows which cannot use bfloat16
        float32_only = rule_families.RULE_TYPES[family] in catalog.FLOAT32_STATE_RULE_TYPES
        assert getattr(rule_class, "state_needs_float32", False) == float32_only


def test_load_by_name_equals_load_by_path():
    by_name = LearnedOptimizer.load("quadratic_lstm")
    by_path = LearnedOptimizer.load(os.path.join(REPO, "saved_optimizers", "quadratic_lstm"))
    gradients = np.linspace(-1.0, 1.0, 7, dtype=np.float32)
    steps = [opt.rule.step(gradients, opt.rule.init_state(7)) for opt in (by_name, by_path)]
    np.testing.assert_array_equal(steps[0][0], steps[1][0])
    np.testing.assert_array_equal(steps[0][1], steps[1][1])


def test_unknown_name_names_the_shipped_rules():
    with pytest.raises(FileNotFoundError, match="neither an existing rule folder nor a shipped optimizer name.*mnist_lstm"):
        LearnedOptimizer.load("mnist_lstm_typo")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the files setup.py reads (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    for folder in ("l2l_tf", "saved_optimizers"):
        shutil.copytree(os.path.join(REPO, folder), source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    return zipfile.ZipFile(glob.glob(str(out / "*.whl"))[0])


def test_wheel_installs_only_l2l_tf_with_every_shipped_file(wheel):
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names} == {"l2l_tf", "l2l_tf-0.1.0.dist-info"}
    for path in glob.glob(os.path.join(REPO, "saved_optimizers", "**", "*"), recursive=True):
        if os.path.isfile(path):
            relative = os.path.relpath(path, REPO).replace(os.sep, "/")
            assert "l2l_tf/" + relative in names, relative


def test_wheel_console_scripts_point_at_main_functions(wheel):
    entry_points = wheel.read("l2l_tf-0.1.0.dist-info/entry_points.txt").decode()
    scripts = dict(line.split(" = ") for line in entry_points.splitlines()[1:] if " = " in line)
    assert {"l2l-meta-train", "l2l-evaluate", "l2l-evaluate-suite", "l2l-export", "l2l-fit-keras", "l2l-optimizers"} <= set(scripts)
    for target in scripts.values():
        module, function = target.split(":")
        source = wheel.read(module.replace(".", "/") + ".py").decode()
        assert f"def {function}(" in source, target


def test_import_is_quiet_unless_the_user_sets_tf_log_level():
    code = "import l2l_tf; print('ok')"
    quiet = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=quiet_env(), timeout=300)
    assert quiet.returncode == 0 and quiet.stdout == "ok\n" and quiet.stderr == "", quiet.stderr
    # With the user's own level, l2l_tf filters nothing: the same lines as TensorFlow alone prints.
    plain = "import tensorflow; print('ok')"
    runs = [subprocess.run([sys.executable, "-c", c], check=False, capture_output=True, text=True,
                           env={**quiet_env(), "TF_CPP_MIN_LOG_LEVEL": "0"}, timeout=300) for c in (code, plain)]
    assert len(runs[0].stderr.splitlines()) == len(runs[1].stderr.splitlines())


def test_start_up_filter_keeps_other_lines():
    noise = [
        "I0000 00:00:1795929879.068390   26411 port.cc:153] oneDNN custom operations are on. You may see ...",
        "E0000 00:00:1795929883.908718   26411 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate",
    ]
    kept = ["E0000 00:00:1795929883.9 op_kernel.cc:1840] OP_REQUIRES failed: out of memory",
            "Traceback (most recent call last):", "UserWarning: something the user should see"]
    assert all(startup.is_start_up_noise(line) for line in noise)
    assert not any(startup.is_start_up_noise(line) for line in kept)


@pytest.mark.parametrize("binary", ["meta_train", "evaluate"])
def test_helpshort_lists_problem_and_data_flags_and_starts_quiet(binary):
    result = subprocess.run([sys.executable, "-m", f"train.{binary}", "--helpshort"], check=False, capture_output=True, text=True,
                            cwd=REPO, env=quiet_env(), timeout=300)
    for flag in ("--problem", "--data_source", "--data_dir"):
        assert f"  {flag}:" in result.stdout, flag
    assert result.stderr == ""


def test_offline_tfds_fails_at_once_naming_idx(monkeypatch, tmp_path):
    """Real TFDS on an empty data folder; only the network probe answers 'offline'."""
    monkeypatch.setattr(data, "network_available", lambda *args, **kwargs: False)
    with pytest.raises(data.DataUnavailableError, match="no network.*source 'idx' with a data_dir"):
        data.load_split("train", data.TFDS, str(tmp_path))


@pytest.mark.skipif(data.network_available(timeout=2.0), reason="this machine is online")
def test_offline_binary_exits_with_the_idx_hint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "train.meta_train", "--problem=mnist", f"--data_dir={tmp_path}",
                             f"--save_path={tmp_path / 'run'}", "--num_epochs=1"], check=False, capture_output=True, text=True,
                            cwd=REPO, env=subprocess_env(), timeout=300)
    assert result.returncode == 2 and "--data_source=idx --data_dir=DIR" in result.stderr, result.stderr[-2000:]


def test_evaluate_writes_to_a_default_folder_and_takes_a_shipped_name(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--problem=quadratic", "--optimizer=quadratic_lstm", "--num_steps=5",
         "--num_seeds=2", "--tuning_seeds=1", "--learning_rates=0.1", "--baselines=sgd", "--nojit_compile"],
        check=False, capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    written = glob.glob(str(tmp_path / "runs" / "evaluate" / "quadratic-*"))
    assert len(written) == 1 and f"wrote {os.path.relpath(written[0], tmp_path)}/results.json" in result.stdout
    for name in ("results.json", "curves.npz", "results.md", "curves.png"):
        assert os.path.isfile(os.path.join(written[0], name)), name


def test_fit_keras_default_optimizer_is_found_outside_the_repository(tmp_path, mnist_data_dir):
    result = subprocess.run([sys.executable, "-m", "train.fit_keras", "--data_source=idx", f"--data_dir={mnist_data_dir}",
                             "--epochs=1"], check=False, capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy: learned" in result.stdout
