"""Multi-rule exports (format version 2): plain TensorFlow in a fresh process, data-only
loading, LearnedOptimizer.load with model.fit, and refusals of bad metadata."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_binaries import run_binary
from test_export import _copy_with_metadata, _signature_in_fresh_process
from test_rule_sets import distinct_pair, tiny_conv_model, tiny_data

from l2l_tf import checkpoints, export
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rule_sets import RuleSet


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rule_set = distinct_pair()
    path = str(tmp_path_factory.mktemp("export") / "pair")
    export.export_rule(rule_set, path, problem={"name": "tiny_conv"}, training={"command": "test"})
    return rule_set, path


def two_steps(rule, g):
    state = rule.init_state(len(g))
    for _ in range(2):
        update, state = rule.step(tf.constant(g), state)
    return update.numpy()


def test_two_rule_export_in_a_fresh_tensorflow_only_process_matches_the_python_rules(exported, tmp_path):
    rule_set, path = exported
    g = np.random.default_rng(0).normal(size=300).astype(np.float32) * np.logspace(-6, 1, 300).astype(np.float32)
    info, fresh = _signature_in_fresh_process(path, g, tmp_path)
    assert info["version"] == 2 and info["modules"] == []
    assert info["signatures"] == ["init_state_conv", "init_state_fc", "metadata", "step_conv", "step_fc"]
    loaded = export.load(path)
    assert isinstance(loaded, RuleSet) and loaded.names == ["conv", "fc"] and loaded.assignment == "conv_fc"
    for name, rule in rule_set.rules.items():
        np.testing.assert_allclose(fresh[name], two_steps(rule, g), atol=1e-6)
        np.testing.assert_allclose(two_steps(loaded.rules[name], g), two_steps(rule, g), atol=1e-6)
    assert not np.allclose(fresh["conv"], fresh["fc"])  # two different rules, not one twice


def test_loaded_two_rule_export_trains_a_conv_model_with_fit_as_the_python_rules_do(exported):
    rule_set, path = exported
    x, y = tiny_data()
    models = []
    for optimizer in (LearnedOptimizer(rule_set), LearnedOptimizer.load(path)):
        keras.utils.set_random_seed(4)
        model = tiny_conv_model()
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        start = [v.numpy() for v in model.trainable_variables]
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
        assert np.all(np.isfinite(history.history["loss"]))
        assert all(not np.array_equal(a, v.numpy()) for a, v in zip(start, model.trainable_variables))
        models.append(model)
    for a, b in zip(*(m.trainable_variables for m in models)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_assignment_override_at_load_and_export_of_a_training_run(exported, tmp_path):
    rule_set, path = exported
    everything_conv = LearnedOptimizer.load(path, assignment={"*": "conv"})
    model = tiny_conv_model()
    everything_conv.build(model.trainable_variables)
    assert {everything_conv.rule_of(v).name for v in model.trainable_variables} == {"conv"}
    with pytest.raises(ValueError, match="holds a single rule; assignment= is only for multi-rule exports"):
        single = str(tmp_path / "single")
        export.export_rule(rule_set.rules["fc"], single)
        LearnedOptimizer.load(single, assignment={"*": "fc"})
    checkpoints.save_rule(rule_set, str(tmp_path / "run" / "best"), {"run_config": {"command": "meta_train"}})
    exported_run = export.export_checkpoint(str(tmp_path / "run"), str(tmp_path / "run_export"))
    for a, b in zip(export.load(exported_run).weights(), rule_set.weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, change, message", [
    ("unknown_rule", lambda m: m.update(assignment={"*": "other"}), "the assignment names rules \\['other'\\]"),
    ("bad_name", lambda m: m.update(rules={"../x": m["rules"]["conv"]}), "rule name '../x' must match"),
    ("state", lambda m: m["rules"]["fc"].update(state_size=3), "state_size 3 does not match .* in 'rules.fc'"),
    ("missing_rule", lambda m: m["rules"].pop("fc"), "not those of a 2x4 rule .*unexpected \\['rules/fc/"),
    ("too_many", lambda m: m.update(rules={f"r{i}": m["rules"]["conv"] for i in range(17)}), "1 to 16 rules"),
])
def test_bad_multi_rule_metadata_is_refused_naming_the_problem(exported, tmp_path, name, change, message):
    with pytest.raises(export.RuleLoadError, match=message):
        export.load(_copy_with_metadata(exported[1], tmp_path, name, change))


def test_report_describes_every_rule_of_a_two_rule_export(exported, tmp_path):
    _, path = exported
    folder = tmp_path / "shipped"
    shutil.copytree(path, folder)
    result = run_binary("report", f"--optimizer={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    header = (folder / "report.md").read_text().splitlines()[2]
    assert header.startswith("2 rules assigned to variables by `conv_fc` (`conv`: a 2x")
    assert "; `fc`: a 2x" in header and "meta-trained on `tiny_conv`" in header
