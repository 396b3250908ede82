import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, subprocess_env

from l2l_tf import export, layout
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig

# Every rule of an exported folder, two steps by plain TensorFlow: single-rule files (format 1)
# through serving_default, multi-rule ones (format 2) through each rule's step_NAME signature.
# Rules that declare more inputs (the mlp family: tensor_sizes, params) get the coordinates as
# three tensors (tensor_sizes), with parameter values 3 * reverse(g); rules that read their run's
# progress get 0.25 (_two_rule_steps does the same in Python).
FRESH_PROCESS_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf  # the only import: no l2l_tf
loaded = tf.saved_model.load(sys.argv[1])
meta = json.loads(loaded.signatures["metadata"]()["json"].numpy().decode())
g = tf.constant(np.load(sys.argv[2]))
signatures = {name: ("init_state_" + name, "step_" + name) for name in meta.get("rules", {})} or {
    "": ("init_state", "serving_default")}
updates, sizes = {}, {}
cut = [len(g) // 10, len(g) // 2, len(g) - len(g) // 10 - len(g) // 2]  # tensor_sizes(len(g))
extra = {"tensor_sizes": tf.constant(cut, tf.int32), "params": tf.reverse(g, [0]) * 3.0, "progress": tf.constant(0.25)}
for name, (init, step) in signatures.items():
    state = loaded.signatures[init](num_coordinates=tf.constant(len(g), tf.int32))["state"]
    declared = meta["rules"][name]["inputs"] if name else meta.get("inputs", [])
    inputs = {k: v for k, v in extra.items() if k in declared}
    for _ in range(2):
        out = loaded.signatures[step](gradients=g, state=state, **inputs)
        state = out["state"]
    updates[name], sizes[name] = out["update"].numpy(), int(state.shape[-1])
np.savez(sys.argv[3], **updates)
print(json.dumps({"format": meta["format"], "version": meta["format_version"], "state_sizes": sizes,
                  "signatures": sorted(loaded.signatures), "modules": sorted(m for m in sys.modules if m.startswith("l2l"))}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rule = CoordinatewiseLSTM(RuleConfig(hidden_size=20), seed=11)
    path = str(tmp_path_factory.mktemp("export") / "rule")
    export.export_rule(rule, path, problem={"name": "quadratic"}, training={"command": "test"},
                       evaluation={"note": "none"})
    return rule, path


def _two_steps(step, init_state, g):
    state = init_state(len(g))
    _, state = step(tf.constant(g), state)
    return step(tf.constant(g), state)


def tensor_sizes(n):
    """The tensors the fresh-process script cuts ``n`` coordinates into (its ``sizes``)."""
    return [n // 10, n // 2, n - n // 10 - n // 2]


def _two_rule_steps(rule, g):
    """Two steps of ``rule`` in Python, given the layout, parameters and progress of the
    fresh-process script."""
    g = tf.constant(g)
    state, params = rule.init_state(len(g)), tf.reverse(g, [0]) * 3.0
    for _ in range(2):
        update, state = layout.rule_step(rule, g, state, layout.TensorLayout(tensor_sizes(len(g))), params,
                                         progress=tf.constant(0.25))
    return update


def _signature_in_fresh_process(path, g, tmp_path):
    """Two steps of every rule of ``path`` on ``g`` by plain TensorFlow in a new process:
    ``(info, updates)``, updates by rule name (``""`` for a single-rule file)."""
    np.save(tmp_path / "g.npy", g)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, path, str(tmp_path / "g.npy"), str(tmp_path / "u.npz")],
        check=False, capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    updates = np.load(tmp_path / "u.npz")
    return json.loads(result.stdout.strip().splitlines()[-1]), {name: updates[name] for name in updates.files}


def test_savedmodel_parity_in_a_fresh_tensorflow_only_process(exported, tmp_path):
    rule, path = exported
    g = np.random.default_rng(0).normal(size=1000).astype(np.float32) * np.logspace(-8, 1, 1000).astype(np.float32)
    info, updates = _signature_in_fresh_process(path, g, tmp_path)
    assert info == {"state_sizes": {"": 80}, "format": "l2l_tf.rule", "version": 1, "modules": [],
                    "signatures": ["init_state", "metadata", "serving_default"]}
    fresh = updates[""]
    in_memory = _two_steps(rule.step, rule.init_state, g)[0].numpy()
    frozen = export.load(path)
    loaded = _two_steps(frozen.step, frozen.init_state, g)[0].numpy()
    np.testing.assert_allclose(fresh, in_memory, atol=1e-6)
    np.testing.assert_allclose(loaded, in_memory, atol=1e-6)
    assert isinstance(frozen, CoordinatewiseLSTM) and frozen.config == rule.config  # rebuilt in Python


SHIPPED = sorted(os.listdir(os.path.join(REPO, "saved_optimizers")))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_rules_load_as_data_and_match_their_signature_in_a_fresh_process(name, tmp_path):
    """Shipped rules (also those exported before loading became data-only, and multi-rule
    folders) give the updates their own signatures give, run by plain TensorFlow in a fresh process."""
    path = os.path.join(REPO, "saved_optimizers", name)
    g = np.random.default_rng(1).normal(size=500).astype(np.float32) * np.logspace(-8, 1, 500).astype(np.float32)
    info, fresh = _signature_in_fresh_process(path, g, tmp_path)
    assert info["modules"] == []
    loaded = export.load(path)
    rules = getattr(loaded, "rules", {"": loaded})
    assert sorted(fresh) == sorted(rules)
    for rule_name, rule in rules.items():
        assert info["state_sizes"][rule_name] == rule.state_size
        np.testing.assert_allclose(fresh[rule_name], _two_rule_steps(rule, g).numpy(), atol=1e-6)


def test_a_progress_reading_rule_set_takes_progress_in_its_signatures_and_matches_in_a_fresh_process(tmp_path):
    from l2l_tf.rule_sets import RuleSet

    config = RuleConfig(hidden_size=6, momentum_decays=(0.9,), progress_input=True)
    rules = {name: CoordinatewiseLSTM(config, seed=seed) for name, seed in (("conv", 1), ("fc", 2))}
    for rule in rules.values():  # weight on the progress input, as after meta-training
        kernel = rule.kernels[0].numpy()
        kernel[config.num_inputs - 1] = 2.0
        rule.kernels[0].assign(kernel)
    path = str(tmp_path / "set")
    export.export_rule(RuleSet(rules, "conv_fc"), path)
    assert export.read_metadata(path)["rules"]["fc"]["inputs"] == ["gradients", "state", "progress"]
    g = np.random.default_rng(2).normal(size=300).astype(np.float32)
    info, fresh = _signature_in_fresh_process(path, g, tmp_path)
    assert info["modules"] == [] and sorted(fresh) == ["conv", "fc"]
    for name, rule in export.load(path).rules.items():
        expected = _two_rule_steps(rules[name], g).numpy()
        np.testing.assert_allclose(fresh[name], expected, atol=1e-6)
        np.testing.assert_allclose(_two_rule_steps(rule, g).numpy(), expected, atol=1e-6)


def test_metadata_contract(exported):
    _, path = exported
    meta = export.read_metadata(path)
    assert meta["format_version"] == 1
    assert meta["rule"] == {"type": "coordinatewise_lstm", "num_layers": 2, "hidden_size": 20,
                            "preprocessing": "log_sign", "preprocessing_p": 10.0, "output_scale": 0.1,
                            "momentum_decays": []}
    assert meta["problem"] == {"name": "quadratic"} and meta["training"] == {"command": "test"}
    assert meta["evaluation"] == {"note": "none"}


def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    show = subprocess.run([cli, "show", "--dir", path, "--all"], check=False, capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)
    assert show.returncode == 0, show.stderr[-2000:]
    for expected in ("serving_default", "init_state", "gradients", "update", "(-1, 80)"):
        assert expected in show.stdout
    np.save(tmp_path / "g.npy", np.array([0.5, -1e-6, 0.0], np.float32))
    np.save(tmp_path / "s.npy", np.zeros((3, 80), np.float32))
    run = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"gradients={tmp_path / 'g.npy'};state={tmp_path / 's.npy'}"],
        check=False, capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "update" in run.stdout and "state" in run.stdout


def test_export_is_atomic(exported, tmp_path, monkeypatch):
    rule, _ = exported
    target = tmp_path / "target"
    export.export_rule(rule, str(target))
    before = sorted(os.listdir(target))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export.export_rule(rule, str(target))
    with pytest.raises(KeyboardInterrupt):
        export.export_rule(rule, str(tmp_path / "new"))
    assert sorted(os.listdir(target)) == before  # the old export is intact
    assert not (tmp_path / "new").exists()  # nothing half-written
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []
    export.load(str(target))


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(export.RuleLoadError, match="no such path"):
        export.load(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(export.RuleLoadError, match="not a SavedModel"):
        export.load(str(tmp_path / "empty"))
    foreign = tf.Module()
    foreign.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(foreign, str(tmp_path / "foreign"), signatures=foreign.f)
    with pytest.raises(export.RuleLoadError, match="not an l2l_tf rule"):
        export.load(str(tmp_path / "foreign"))


def _copy_with_metadata(path, tmp_path, name, change):
    import shutil

    target = tmp_path / name
    shutil.copytree(path, target)
    asset = target / "assets" / export.METADATA_ASSET
    meta = json.loads(asset.read_text())
    change(meta)
    asset.write_text(json.dumps(meta))
    return str(target)


def test_unsupported_version_and_state_mismatch(exported, tmp_path):
    _, path = exported
    newer = _copy_with_metadata(path, tmp_path, "v99", lambda m: m.update(format_version=99))
    with pytest.raises(export.RuleLoadError, match="format version 99"):
        export.load(newer)
    wrong = _copy_with_metadata(path, tmp_path, "state", lambda m: m["rule"].update(hidden_size=10))
    with pytest.raises(export.RuleLoadError, match="state_size 80 does not match"):
        export.load(wrong)
    both = _copy_with_metadata(path, tmp_path, "both",
                               lambda m: (m["rule"].update(hidden_size=10), m.update(state_size=40)))
    with pytest.raises(export.RuleLoadError, match="weight .* is float32 \\[22, 80\\], expected float32 \\[12, 40\\]"):
        export.load(both)


def test_a_rule_whose_signature_writes_a_file_loads_as_plain_weights(tmp_path):
    """export.load reads weights as data: the file's graph (here one that writes a file)
    never runs; the rule computes what its weights say."""
    from malicious_rules import forbidden_op

    marker = str(tmp_path / "pwned.txt")
    forbidden_op(str(tmp_path / "evil"), marker)
    loaded = export.load(str(tmp_path / "evil"))
    reference = CoordinatewiseLSTM(seed=1)
    np.testing.assert_allclose(loaded.step(tf.ones([3]), loaded.init_state(3))[0].numpy(),
                               reference.step(tf.ones([3]), reference.init_state(3))[0].numpy(), atol=1e-7)
    assert not os.path.exists(marker)
