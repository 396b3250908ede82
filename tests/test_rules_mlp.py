"""The per-parameter MLP rule family (``l2l_tf.rules_mlp``) through every part of the contract."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, subprocess_env

from l2l_tf import checkpoints, export, rule_file, rule_sets, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.layout import TensorLayout
from l2l_tf.meta import MetaConfig, MetaTrainer
from l2l_tf.meta_config import MetaSchedule
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.rule_base import traced_for, tracing_for_xla
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfigError
from l2l_tf.rules_mlp import MLPRule, MLPRuleConfig
from l2l_tf.suite import ChunkedRuleRunner
from l2l_tf.training import validation_score

SIZES = (20, 30)


def _gradients(rng, n):
    """Gradients spanning four orders of magnitude, as real ones do."""
    return tf.constant((rng.normal(size=n) * 10 ** rng.uniform(-3, 1, size=n)).astype(np.float32))


def _trained_like(seed=3, config=None):
    """An MLP rule with a non-zero output layer (an untrained one is exactly Adam)."""
    rule = MLPRule(config or MLPRuleConfig(hidden_size=8), seed=seed)
    rng = np.random.default_rng(seed)
    rule.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in rule.get_weights()])
    return rule


def test_untrained_rule_is_keras_adam_and_its_outputs_are_finite():
    rule, rng, n = MLPRule(), np.random.default_rng(0), sum(SIZES)
    variable = tf.Variable(rng.normal(size=n).astype(np.float32))
    adam = keras.optimizers.Adam(1e-3)
    params, state = tf.constant(variable.numpy()), rule.init_state(n)
    for _ in range(30):
        g = _gradients(rng, n)
        adam.apply_gradients([(g, variable)])
        update, state = rule.step(g, state, TensorLayout(SIZES), params)
        params += update
    assert update.shape == [n] and state.shape == [n, rule.state_size] == [n, 5]
    np.testing.assert_allclose(params.numpy(), variable.numpy(), atol=1e-6)
    update, _ = _trained_like().step(_gradients(rng, n), state[:, :5], TensorLayout(SIZES), params)
    assert np.all(np.isfinite(update.numpy())) and np.abs(update.numpy()).max() < 1e-3 * (10 * 31.7 + 0.1)


@pytest.fixture
def traced_forms(monkeypatch):
    """The forms (``True``: XLA) in which ``MLPRule._mlp`` is traced, in order."""
    forms, mlp = [], MLPRule._mlp

    def recording(self, *args):
        forms.append(tracing_for_xla())
        return mlp(self, *args)

    monkeypatch.setattr(MLPRule, "_mlp", recording)
    return forms


@pytest.mark.parametrize("config", [MLPRuleConfig(), MLPRuleConfig(num_hidden_layers=2),
                                    MLPRuleConfig(step_adaptation_rate=0.3)], ids=["1_layer", "2_layers", "adapted"])
def test_the_plain_graph_form_is_the_xla_form(config, traced_forms):
    """Traced for a plain graph (``traced_for(False)``: matmuls) the rule computes what its XLA
    form (column-wise sums) does, per tensor on slices and through segment reductions alike."""
    rule, rng, n = MLPRule(config, seed=1), np.random.default_rng(1), sum(SIZES)
    rule.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in rule.get_weights()])
    params, state = tf.constant(rng.normal(size=n).astype(np.float32)), rule.init_state(n)
    gradients = [_gradients(np.random.default_rng(2 + i), n) for i in range(3)]
    adam_update = MLPRule(config).step(gradients[0], state, TensorLayout(SIZES), params)[0]
    for layout in (TensorLayout(SIZES), TensorLayout(tf.constant(SIZES))):
        results = []
        for xla in (True, False):
            step_state, traced_forms[:] = state, []
            with traced_for(xla):
                for g in gradients:
                    update, step_state = rule.step(g, step_state, layout, params)
            assert traced_forms and set(traced_forms) == {xla}  # the form under test ran
            results.append((update.numpy(), step_state.numpy()))
        first_update = rule.step(gradients[0], state, layout, params)[0]
        assert np.abs(first_update.numpy() - adam_update.numpy()).max() > 1e-5  # the MLP moves the step
        np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_every_runner_traces_the_rule_for_its_compiler(jit_compile, traced_forms):
    """Meta-training (TBPTT, and PES with its perturbed copies of the rule), validation runs and
    the suite's chunked stability runs trace the rule in the form of the compiler they run under."""
    problem = Quadratic(dims=6, batch_size=2)
    functions = {
        estimator: MetaTrainer(MLPRule(), problem, MetaConfig(
            num_steps=4, unroll_length=2, gradient_estimator=estimator, es_pairs=1,
            schedule=MetaSchedule(jit_compile=jit_compile))).train_unroll
        for estimator in ("tbptt", "pes")
    }
    functions["validation"] = RuleRunner(MLPRule(), problem, 3, jit_compile=jit_compile)._trajectory
    stability = ChunkedRuleRunner(MLPRule(), problem, 3, jit_compile=jit_compile)
    functions["stability"] = lambda: stability.run(seed=0, chunks=1)  # traces its chunk on the first call
    for name, function in functions.items():
        traced_forms[:] = []
        function() if name == "stability" else function.get_concrete_function()
        minimum = 6 if name == "pes" else 1  # PES: 2 steps of the rule and of its 2 perturbed copies
        assert len(traced_forms) >= minimum and set(traced_forms) == {jit_compile}, name


def test_the_adapted_step_factor_follows_the_agreement_of_successive_steps():
    """Each tensor's log step factor moves by the rate times the cosine between its gradient and
    its previous Adam direction: up while they agree, down while they alternate, within its bound;
    the update is the unadapted rule's times the factor, and every coordinate of a tensor holds it."""
    n, rate = sum(SIZES), 0.1
    signs = np.where(np.random.default_rng(0).random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    params = tf.constant(np.random.default_rng(1).normal(size=n).astype(np.float32))
    plain, adapted, clipped = (_trained_like(config=MLPRuleConfig(step_adaptation_rate=r, max_adapted_log_scale=m))
                               for r, m in ((0.0, 2.3), (rate, 2.3), (3.0, 2.3)))
    states = [rule.init_state(n) for rule in (plain, adapted, clipped)]
    assert [s.shape[1] for s in states] == [5, 6, 6]
    for step in range(3):  # tensor 1's gradient repeats, tensor 2's alternates in sign
        g = tf.constant(signs * np.concatenate([np.ones(SIZES[0]), (-1.0) ** step * np.ones(SIZES[1])]).astype(np.float32))
        updates = []
        for i, rule in enumerate((plain, adapted, clipped)):
            update, states[i] = rule.step(g, states[i], TensorLayout(SIZES), params)
            updates.append(update.numpy())
        factors = states[1][:, -2].numpy()
        expected = np.repeat([rate * step, -rate * step], SIZES)  # the first step has no previous direction
        np.testing.assert_allclose(factors, expected, atol=1e-6)
        np.testing.assert_allclose(updates[1], updates[0] * np.exp(expected), rtol=1e-5)
        np.testing.assert_allclose(states[2][:, -2].numpy(), np.repeat([min(3.0 * step, 2.3), -min(3.0 * step, 2.3)], SIZES),
                                   atol=1e-6)


def test_the_adapted_step_factor_is_the_per_tensor_cosine_with_the_previous_adam_direction():
    """With gradients of varied magnitudes and signs, both layout paths give every coordinate of a
    tensor the factor a NumPy reference computes: the old factor plus the rate times the cosine over
    the tensor between the gradient and ``m / (sqrt(v) + eps)`` of the previous state, clipped."""
    n, rate, bound = sum(SIZES), 0.3, 0.5
    rule = _trained_like(config=MLPRuleConfig(step_adaptation_rate=rate, max_adapted_log_scale=bound))
    params = tf.constant(np.random.default_rng(1).normal(size=n).astype(np.float32))
    for layout in (TensorLayout(SIZES), TensorLayout(tf.constant(SIZES))):
        state, rng = rule.init_state(n), np.random.default_rng(5)
        previous_g = _gradients(rng, n).numpy()
        for step in range(5):  # tensor 2's gradient partly reverses the previous one
            g = _gradients(rng, n).numpy() + np.concatenate([previous_g[:SIZES[0]], -2 * previous_g[SIZES[0]:]])
            old = state.numpy()
            direction = old[:, 0] / (np.sqrt(old[:, 3]) + 1e-7)
            expected = []
            for part in np.split(np.arange(n), np.cumsum(SIZES)[:-1]):
                gi, di = g[part].astype(np.float64), direction[part].astype(np.float64)
                cosine = 0.0 if not di.any() else gi @ di / np.sqrt((gi @ gi) * (di @ di))
                expected.append(np.full(len(part), np.clip(old[part, 4].mean() + rate * cosine, -bound, bound)))
            _, state = rule.step(tf.constant(g), state, layout, params)
            np.testing.assert_allclose(state.numpy()[:, 4], np.concatenate(expected), atol=1e-5)
            previous_g = g
        assert np.abs(state.numpy()[:, 4]).max() > 0.1  # the factors moved


def test_config_checks_and_the_state_limit():
    assert MLPRuleConfig.from_dict(MLPRuleConfig().to_dict()) == MLPRuleConfig()
    with pytest.raises(RuleConfigError, match="momentum_decays must hold 1 to 6 rates"):
        MLPRuleConfig(momentum_decays=(0.5,) * 7)
    assert MLPRuleConfig(momentum_decays=(0.5,) * 5, step_adaptation_rate=0.1).state_size == 8
    with pytest.raises(RuleConfigError, match="momentum_decays must hold 1 to 5 rates with step_adaptation_rate > 0"):
        MLPRuleConfig(momentum_decays=(0.5,) * 6, step_adaptation_rate=0.1)
    with pytest.raises(RuleConfigError, match="step_adaptation_rate must be a finite number >= 0"):
        MLPRuleConfig(step_adaptation_rate=-0.1)
    with pytest.raises(RuleConfigError, match="max_adapted_log_scale must be a finite number > 0"):
        MLPRuleConfig(max_adapted_log_scale=0)
    with pytest.raises(RuleConfigError, match="hidden_size must be an integer in"):
        MLPRuleConfig(hidden_size=0)
    with pytest.raises(RuleConfigError, match="unknown rule config keys"):
        MLPRuleConfig.from_dict({"num_layers": 2})
    with pytest.raises(ValueError, match="pass layout="):
        MLPRule().step(tf.ones([3]), MLPRule().init_state(3))


def test_meta_training_on_a_quadratic_lowers_the_validation_loss():
    problem = Quadratic(dims=10, batch_size=32)
    rule = MLPRule(MLPRuleConfig(hidden_size=8))
    config = MetaConfig(num_steps=40, unroll_length=20, meta_learning_rate=1e-2)
    runner = RuleRunner(rule, problem, 40, jit_compile=False)
    validation = seeds.validation_seeds(4)
    before = validation_score(runner, validation)
    trainer = MetaTrainer(rule, problem, config)
    for i in range(10):
        for _ in trainer.unrolls(seeds.training_seed(i)):
            pass
    after = validation_score(runner, validation)
    assert after < 0.9 * before, (before, after)
    with pytest.raises(ValueError, match="coordinate_shards=2 cuts the coordinates into blocks"):
        MetaTrainer(rule, problem, MetaConfig(num_steps=40, unroll_length=20, schedule=MetaSchedule(coordinate_shards=2)))


FRESH_PROCESS_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf  # the only import: no l2l_tf
loaded = tf.saved_model.load(sys.argv[1])
g, p = np.load(sys.argv[2]), np.load(sys.argv[3])
step = loaded.signatures["serving_default"]
state = loaded.signatures["init_state"](num_coordinates=tf.constant(len(g), tf.int32))["state"]
sizes = tf.constant([20, 30], tf.int32)
for _ in range(3):
    out = step(gradients=tf.constant(g), state=state, tensor_sizes=sizes, params=tf.constant(p))
    state = out["state"]
np.save(sys.argv[4], out["update"].numpy())
assert not any(m.startswith("l2l") for m in sys.modules)
"""


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_export_parity_in_a_fresh_tensorflow_only_process_and_data_only_loading(tmp_path, rate):
    rule, rng = _trained_like(config=MLPRuleConfig(step_adaptation_rate=rate)), np.random.default_rng(1)
    path = export.export_rule(rule, str(tmp_path / "rule"))
    g, p = _gradients(rng, sum(SIZES)).numpy(), rng.normal(size=sum(SIZES)).astype(np.float32)
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "p.npy", p)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, path, *(str(tmp_path / f) for f in ("g.npy", "p.npy", "u.npy"))],
        check=False, capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = export.load(path)
    assert isinstance(loaded, MLPRule) and loaded.config == rule.config and loaded.path == path
    for candidate in (rule, loaded):
        state = candidate.init_state(len(g))
        for _ in range(3):
            update, state = candidate.step(tf.constant(g), state, TensorLayout(SIZES), tf.constant(p))
        np.testing.assert_allclose(np.load(tmp_path / "u.npy"), update.numpy(), atol=1e-7)
    metadata = rule_file.read_metadata(path)
    assert metadata["family"] == "mlp" and metadata["rule"]["type"] == "per_parameter_mlp"
    assert metadata["inputs"] == ["gradients", "state", "tensor_sizes", "params"]


def test_files_without_a_family_are_lstm_rules_and_unknown_families_are_refused(tmp_path):
    shipped = export.load(os.path.join(REPO, "saved_optimizers", "mnist_lstm"))
    assert "family" not in shipped.metadata and isinstance(shipped, CoordinatewiseLSTM)
    path = export.export_rule(MLPRule(), str(tmp_path / "rule"))
    asset = os.path.join(path, "assets", rule_file.METADATA_ASSET)
    with open(asset) as f:
        metadata = json.load(f)
    with open(asset, "w") as f:
        json.dump({**metadata, "family": "transformer"}, f)
    with pytest.raises(rule_file.RuleLoadError, match="'family' is 'transformer' but 'rule.type' is 'per_parameter_mlp'"):
        export.load(path)


@pytest.mark.parametrize("rate", [0.0, 0.03])
def test_learned_optimizer_fit_keras_round_trip_and_refused_settings(tmp_path, rate):
    rule = _trained_like(config=MLPRuleConfig(step_adaptation_rate=rate))
    path = export.export_rule(rule, str(tmp_path / "rule"))
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=LearnedOptimizer.load(path), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(again.optimizer.rule, MLPRule) and again.optimizer.rule.config == rule.config
    assert {tuple(v.shape)[-1] for v in model.optimizer._rule_states} == {rule.state_size}  # 5, or 6 adapted
    if rate:  # the factor is one value per variable, and it has moved
        factors = [np.unique(v.numpy()[..., -2]) for v in model.optimizer._rule_states]
        assert all(len(f) == 1 for f in factors) and any(f[0] != 0 for f in factors)
    for ours, theirs in zip(model.optimizer.rule.get_weights(), again.optimizer.rule.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    before = again.evaluate(x, y, verbose=0)
    again.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert again.evaluate(x, y, verbose=0) < before
    with pytest.raises(ValueError, match="coordinate_block_size=64 cuts the coordinates"):
        LearnedOptimizer.load(path, coordinate_block_size=64)
    with pytest.raises(ValueError, match="keeps a step count in its state"):
        LearnedOptimizer.load(path, state_dtype="bfloat16")


def test_warm_start_copies_an_mlp_rule_also_into_one_that_adapts_its_step():
    source = _trained_like()
    for config in (source.config, MLPRuleConfig(hidden_size=8, step_adaptation_rate=0.1)):
        target = MLPRule(config, seed=9)
        rule_sets.warm_start(target, source)
        for ours, theirs in zip(target.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="differ only in step_adaptation_rate"):
        rule_sets.warm_start(MLPRule(MLPRuleConfig(hidden_size=4)), source)
    with pytest.raises(ValueError, match="cannot initialise a rule of family 'lstm' from one of family 'mlp'"):
        rule_sets.warm_start(CoordinatewiseLSTM(), source)


def test_rule_checkpoints_keep_the_family(tmp_path):
    rule = _trained_like()
    checkpoints.save_rule(rule, str(tmp_path / "best"))
    restored = checkpoints.load_rule(str(tmp_path / "best"))
    assert isinstance(restored, MLPRule) and restored.config == rule.config
    for ours, theirs in zip(rule.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_meta_train_binary_trains_exports_and_resumes_an_mlp_rule(tmp_path):
    from test_binaries import run_binary

    save, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    flags = ["--rule=mlp", "--mlp_hidden_size=4", "--problem=quadratic", f"--save_path={save}", "--num_steps=20",
             "--unroll_length=10", "--validation_every=2", "--validation_runs=2"]
    result = run_binary("meta_train", *flags, "--num_runs=2", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "meta-training a 1x4 MLP rule" in result.stdout
    loaded = export.load(export_dir)
    assert isinstance(loaded, MLPRule) and loaded.config.hidden_size == 4
    changed = run_binary("meta_train", *flags[1:], "--num_runs=3")  # the LSTM family: refused
    assert changed.returncode != 0 and "rule: 'mlp' -> 'lstm'" in changed.stderr
    adapted = run_binary("meta_train", *flags, "--num_runs=1", f"--save_path={save}_adapted", f"--init_optimizer={save}",
                         "--mlp_step_adaptation_rate=0.05")
    assert adapted.returncode == 0, adapted.stderr[-2000:]
    assert checkpoints.load_rule(f"{save}_adapted").config.step_adaptation_rate == 0.05
