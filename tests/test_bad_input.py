"""Bad input to the library (issue 13, "Also fix"): no data loss, no silent failure,
bounded cost, and each error an l2l_tf error whose message names the problem."""

import gzip
import json
import os
import shutil
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import export, rule_file
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems import data
from l2l_tf.problems.idx import IdxFormatError
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("exported") / "rule")
    export.export_rule(CoordinatewiseLSTM(seed=5), path)
    return path


# --- data loss -------------------------------------------------------------------------


def test_export_never_replaces_a_folder_that_is_not_an_earlier_export(exported, tmp_path):
    rule = CoordinatewiseLSTM(seed=5)
    user = tmp_path / "photos"
    user.mkdir()
    (user / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(export.UnsafeExportTargetError, match="not an exported l2l_tf rule"):
        export.export_rule(rule, str(user))
    assert (user / "cat.jpg").read_bytes() == b"meow"
    (tmp_path / "file").write_text("x")
    with pytest.raises(export.UnsafeExportTargetError, match="not a folder"):
        export.export_rule(rule, str(tmp_path / "file"))
    with pytest.raises(export.UnsafeExportTargetError, match="is a file"):
        export.export_rule(rule, str(tmp_path / "file" / "rule"))
    (tmp_path / "empty").mkdir()
    export.export_rule(rule, str(tmp_path / "empty"))  # an empty folder holds nothing to lose
    shutil.copytree(exported, tmp_path / "earlier")
    export.export_rule(rule, str(tmp_path / "earlier"))  # an earlier export is replaced
    assert export.load(str(tmp_path / "earlier")).config == rule.config


def test_export_refuses_the_run_folder_and_its_ancestors(tmp_path):
    from l2l_tf import checkpoints

    run = tmp_path / "runs" / "quad"
    checkpoints.save_rule(CoordinatewiseLSTM(seed=1), str(run / "best"))
    for target in (run, run.parent, run / "best"):
        with pytest.raises(export.UnsafeExportTargetError):
            export.export_checkpoint(str(run), str(target))
    assert os.path.isfile(run / "best" / "rule_config.json")
    export.export_checkpoint(str(run), str(run) + "_export")


# --- non-finite gradients with every Keras option ------------------------------------------


@pytest.mark.parametrize("options", [{}, {"clipnorm": 0.5}, {"global_clipnorm": 0.5}, {"clipvalue": 0.1},
                                     {"weight_decay": 0.1}])
def test_non_finite_coordinates_stay_put_and_the_others_update_normally(exported, options):
    """A NaN/inf coordinate is unchanged; every other coordinate moves exactly as in a step
    where that coordinate's gradient is 0 (the clipping norms see only finite values)."""
    gradients = [tf.constant([np.nan, 3.0, -2.0, np.inf]), tf.constant([1.5, -0.5])]
    finite = [tf.constant([0.0, 3.0, -2.0, 0.0]), tf.constant([1.5, -0.5])]
    results = []
    for grads in (gradients, finite):
        optimizer = LearnedOptimizer.load(exported, **options)
        variables = [keras.Variable(np.full(4, 2.0, np.float32)), keras.Variable(np.full(2, 2.0, np.float32))]
        optimizer.apply_gradients(zip(grads, variables))
        results.append(([v.numpy().copy() for v in variables], [s.numpy().copy() for s in optimizer._rule_states]))
    (values, states), (reference, reference_states) = results
    np.testing.assert_allclose(states[0][1:3], reference_states[0][1:3], rtol=1e-6)
    np.testing.assert_array_equal(values[0][[0, 3]], [2.0, 2.0])  # not updated, not decayed
    np.testing.assert_array_equal(states[0][[0, 3]], 0.0)  # rule state kept (zero at start)
    np.testing.assert_allclose(values[0][1:3], reference[0][1:3], rtol=1e-6)
    np.testing.assert_allclose(values[1], reference[1], rtol=1e-6)
    assert np.all(values[0][1:3] != 2.0) and np.all(values[1] != 2.0)  # they did move


def test_a_rule_returning_the_wrong_state_width_is_an_error(exported):
    class Narrow(CoordinatewiseLSTM):
        def step(self, gradients, state):
            update, new_state = super().step(gradients, state)
            return update, new_state[:, :1]

    optimizer = LearnedOptimizer(Narrow(seed=0))
    with pytest.raises(ValueError, match="must keep its state width"):
        optimizer.apply_gradients([(tf.ones([3]), keras.Variable(np.zeros(3, np.float32)))])


# --- strict metadata, bounded cost ----------------------------------------------------------


def _with_metadata(source, tmp_path, name, change):
    target = tmp_path / name
    shutil.copytree(source, target)
    asset = target / "assets" / export.METADATA_ASSET
    meta = json.loads(asset.read_text())
    replaced = change(meta)
    asset.write_text(replaced if isinstance(replaced, str) else json.dumps(meta))
    return str(target)


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("bool_version", lambda m: m.update(format_version=True), "format version True"),
        ("float_state", lambda m: m.update(state_size=80.9), "'state_size' must be an integer, got 80.9"),
        ("string_hidden", lambda m: m["rule"].update(hidden_size="20"), "hidden_size must be an integer"),
        ("huge_hidden", lambda m: m["rule"].update(hidden_size=10**6), r"hidden_size must be in \[1, 1024\]"),
        ("many_layers", lambda m: m["rule"].update(num_layers=10**5), r"num_layers must be in \[1, 8\]"),
        ("many_decays", lambda m: m["rule"].update(momentum_decays=[0.5] * 10**4), "at most 16"),
        ("inf_scale", lambda m: m["rule"].update(output_scale=float("inf")), "output_scale must be a finite"),
        ("nested", lambda m: "[" * 100000 + "]" * 100000, "not valid JSON|nested deeper"),
        ("deep_ok_json", lambda m: m.update(problem=json.loads("[" * 40 + "]" * 40)), "nested deeper than 32"),
        ("huge", lambda m: m.update(problem={"x": "y" * (2 << 20)}), "over the 1048576-byte limit"),
        ("not_object", lambda m: "[1, 2]", "not a JSON object"),
    ],
)
def test_bad_metadata_is_refused_quickly_with_a_clear_error(exported, tmp_path, name, change, message):
    path = _with_metadata(exported, tmp_path, name, change)
    with pytest.raises(export.RuleLoadError, match=message) as error:
        export.load(path)
    assert "\n" not in str(error.value)


def test_non_finite_or_misshapen_weights_are_refused(tmp_path):
    rule = CoordinatewiseLSTM(seed=0)
    rule.output_kernel.assign(tf.fill(rule.output_kernel.shape, np.nan))
    export.export_rule(rule, str(tmp_path / "nan"))
    with pytest.raises(export.RuleLoadError, match="NaN or infinite"):
        export.load(str(tmp_path / "nan"))
    spec = {"config": RuleConfig().to_dict(), "weights": [w.numpy().tolist() for w in CoordinatewiseLSTM().weights()]}
    spec["weights"][-1] = [float("nan")]
    with pytest.raises(export.RuleLoadError, match="NaN or infinite"):
        LearnedOptimizer.from_config({"rule": spec, "learning_rate": 1.0})
    spec["weights"][-1] = [0.0, 0.0]
    with pytest.raises(export.RuleLoadError, match=r"shape \[2\], expected \[1\]"):
        LearnedOptimizer.from_config({"rule": spec, "learning_rate": 1.0})


def test_keras_config_declaring_a_huge_rule_is_refused_before_allocating():
    spec = {"config": {**RuleConfig().to_dict(), "hidden_size": 100_000}, "weights": []}
    with pytest.raises(export.RuleLoadError, match="hidden_size must be in"):
        LearnedOptimizer.from_config({"rule": spec, "learning_rate": 1.0})
    spec = {"config": {**RuleConfig().to_dict(), "hidden_size": 1024, "num_layers": 8}, "weights": [[0.0]]}
    with pytest.raises(export.RuleLoadError, match="expected 18 weight tensors"):
        LearnedOptimizer.from_config({"rule": spec, "learning_rate": 1.0})


def test_weights_of_another_architecture_or_dtype_are_refused(exported, tmp_path):
    wrong = _with_metadata(exported, tmp_path, "h10", lambda m: (m["rule"].update(hidden_size=10), m.update(state_size=40)))
    with pytest.raises(export.RuleLoadError, match="not those of a 2x10 rule|expected float32"):
        export.load(wrong)
    target = tmp_path / "oversized"
    shutil.copytree(exported, target)
    with open(target / "variables" / "variables.index", "ab") as f:
        f.truncate(1 << 20)
    with pytest.raises(export.RuleLoadError, match="far too large"):
        export.load(str(target))
    assert rule_file.weight_keys(RuleConfig(num_layers=1))[0] == "rule/kernels/0/.ATTRIBUTES/VARIABLE_VALUE"


# --- IDX files --------------------------------------------------------------------------------


def _write_idx_pair(directory, images_shape, images_body, labels_count, compress=True):
    directory.mkdir(exist_ok=True)
    header = struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", *images_shape)
    labels = struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", labels_count) + bytes(labels_count)
    for split_files in data.IDX_FILES.values():
        images_name, labels_name = split_files
        (directory / f"{images_name}.gz").write_bytes(gzip.compress(header + images_body, 1))
        (directory / f"{labels_name}.gz").write_bytes(gzip.compress(labels, 1))


@pytest.mark.parametrize(
    "shape, message",
    [((5, 27, 27), "5 images of 27x27 pixels; expected 1 to 100000 MNIST images of 28x28"),
     ((0, 28, 28), "declares 0 images of 28x28 pixels"),
     ((300_000, 28, 28), "declares 300000 images")],
)
def test_idx_images_of_the_wrong_size_or_count_are_refused_before_reading(tmp_path, shape, message):
    body = bytes(min(int(np.prod(shape)), 10**6))  # a small gzip that claims much more
    _write_idx_pair(tmp_path / "idx", shape, body, shape[0])
    with pytest.raises(IdxFormatError, match=message) as error:
        data.load_idx_split(str(tmp_path / "idx"), "train")
    assert "train-images-idx3-ubyte.gz" in str(error.value) and "--data_dir" in str(error.value)
