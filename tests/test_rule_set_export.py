"""Multi-rule exports (format version 2): plain TensorFlow in a fresh process, data-only
loading, LearnedOptimizer.load with model.fit, and refusals of bad metadata."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import subprocess_env
from test_export import _copy_with_metadata
from test_rule_sets import distinct_pair, tiny_conv_model, tiny_data

from l2l_tf import checkpoints, export
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.rule_sets import RuleSet

FRESH_PROCESS_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf  # the only import: no l2l_tf
loaded = tf.saved_model.load(sys.argv[1])
meta = json.loads(loaded.signatures["metadata"]()["json"].numpy().decode())
g = np.load(sys.argv[2])
updates = {}
for name in meta["rules"]:
    state = loaded.signatures["init_state_" + name](num_coordinates=tf.constant(len(g), tf.int32))["state"]
    for _ in range(2):
        out = loaded.signatures["step_" + name](gradients=tf.constant(g), state=state)
        state = out["state"]
    updates[name] = out["update"].numpy()
np.savez(sys.argv[3], **updates)
print(json.dumps({"version": meta["format_version"], "signatures": sorted(loaded.signatures),
                  "modules": sorted(m for m in sys.modules if m.startswith("l2l"))}))
"""


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
    np.save(tmp_path / "g.npy", g)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, path, str(tmp_path / "g.npy"), str(tmp_path / "u.npz")],
        check=False, capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"version": 2, "modules": [],
                    "signatures": ["init_state_conv", "init_state_fc", "metadata", "step_conv", "step_fc"]}
    fresh = np.load(tmp_path / "u.npz")
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
