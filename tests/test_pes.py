"""Persistent evolution strategies through the gradient-estimator seam: its estimate points
along the true meta-gradient of the whole run (across truncations), and meta-training
with it lowers the meta-loss."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaTrainer, unroll_with_state
from l2l_tf.problems import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig
from l2l_tf.training import TrainingOptions, meta_train
from l2l_tf.validation import validation_score


def _flat(tensors):
    return np.concatenate([np.asarray(t).ravel() for t in tensors])


def test_pes_estimate_correlates_with_the_true_gradient_of_the_whole_run():
    problem, rule = Quadratic(dims=3, batch_size=4), CoordinatewiseLSTM(RuleConfig(num_layers=1, hidden_size=4), seed=0)
    config = MetaConfig(num_steps=10, unroll_length=5, gradient_estimator="pes", es_pairs=2, es_std=0.01)
    trainer = MetaTrainer(rule, problem, config)
    estimator, seed = trainer.estimator, seeds.training_seed(0)
    batches = list(trainer.run_batches(seed))
    weights = [trainer.unroll_weights(index) for index in range(len(batches))]
    # The true meta-gradient: both truncations as one unroll, through the optimizee's gradients too.
    start = estimator.initial_carry(seed).run
    whole = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *batches)
    with tf.GradientTape() as tape:
        meta_loss, *_ = unroll_with_state(rule, problem, start.params, start.state, whole, 10, True,
                                          tf.concat(weights, 0), optimizee_state=start.optimizee_state)
    true = _flat(tape.gradient(meta_loss, rule.trainable_variables))
    estimate = tf.function(estimator.estimate, input_signature=trainer.unroll_signature)

    def run_estimate(noise_seed):
        carry, total = estimator.initial_carry(seed, noise_seed=noise_seed), 0.0
        for index, batch in enumerate(batches):
            result = estimate(carry, batch, weights[index], trainer.unroll_progress(index))
            carry, total = result.carry, total + _flat(result.gradients)
        assert np.isfinite(float(result.meta_loss))
        return total

    samples = np.stack([run_estimate(k) for k in range(160)])  # 320 antithetic pairs
    mean = samples.mean(axis=0)
    cosine = float(mean @ true / np.linalg.norm(mean) / np.linalg.norm(true))
    single = float(samples[0] @ true / np.linalg.norm(samples[0]) / np.linalg.norm(true))
    assert cosine > 0.6, cosine
    assert cosine > single  # more pairs, a better estimate
    # The perturbations go to a scratch copy: the rule's weights are untouched.
    np.testing.assert_array_equal(_flat(rule.trainable_variables), _flat(CoordinatewiseLSTM(rule.config, seed=0).trainable_variables))


def test_short_pes_meta_training_lowers_the_validation_loss(tmp_path):
    problem, rule = Quadratic(dims=3, batch_size=4), CoordinatewiseLSTM(RuleConfig(num_layers=1, hidden_size=4), seed=0)
    config = MetaConfig(num_steps=10, unroll_length=5, meta_learning_rate=3e-2, gradient_estimator="pes",
                        es_pairs=2, es_std=0.01)
    runner, validation = RuleRunner(rule, problem, 10, jit_compile=False), seeds.validation_seeds(4)
    before = validation_score(runner, validation)
    summary = meta_train(rule, problem, config, TrainingOptions(num_epochs=20, validation_every=20, validation_runs=1,
                                                                checkpoint_every=20, log_every=20),
                         str(tmp_path / "run"), {"gradient_estimator": "pes", "es_pairs": 2}, log=lambda line: None)
    after = validation_score(runner, validation)
    assert summary.skipped_updates == 0
    assert after < 0.8 * before, (before, after)  # measured: 2.416 -> 1.425


def test_pes_settings_are_checked():
    with pytest.raises(ValueError, match="es_pairs >= 1 and es_std > 0"):
        MetaConfig(gradient_estimator="pes", es_pairs=0)
    with pytest.raises(ValueError, match="unknown gradient_estimator 'es'"):
        MetaConfig(gradient_estimator="es")
