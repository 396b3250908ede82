import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer, unroll_with_state
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig
from l2l_tf.sharding import CoordinateShards, shard_sizes
from l2l_tf.training import TrainingOptions, meta_train, validation_score


def unroll(*args, **kwargs):
    """``unroll_with_state`` without the optimizee state in the result (these problems have none)."""
    return unroll_with_state(*args, **kwargs)[:4]


def _first_unroll_inputs(problem, length):
    params = problem.flatten(problem.initial_params(7))
    batches = next(iter(problem.batches(7).batch(length)))
    return params, batches


def _meta_gradient(rule, problem, params, batches, length, second_derivatives):
    with tf.GradientTape() as tape:
        meta_loss, _, _, _ = unroll(rule, problem, params, rule.init_state(problem.num_coordinates),
                                    batches, length, second_derivatives)
    return meta_loss, tape.gradient(meta_loss, rule.trainable_variables)


def test_meta_gradients_are_non_zero_and_finite():
    problem, rule = Quadratic(dims=5, batch_size=8), CoordinatewiseLSTM(seed=0)
    params, batches = _first_unroll_inputs(problem, 5)
    meta_loss, grads = _meta_gradient(rule, problem, params, batches, 5, False)
    assert np.isfinite(meta_loss.numpy())
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert all(np.any(g.numpy() != 0) for g in grads)


class _ReplayRule(tf.Module):
    """Wraps a rule but feeds it recorded gradients (constants) instead of the live ones."""

    def __init__(self, rule, recorded):
        super().__init__()
        self.rule, self.recorded, self.t = rule, recorded, 0

    def init_state(self, n):
        return self.rule.init_state(n)

    def split_state(self, state):
        return self.rule.split_state(state)

    def join_state(self, cells):
        return self.rule.join_state(cells)

    def step_cells(self, gradients, cells):
        del gradients
        out = self.rule.step_cells(self.recorded[self.t], cells)
        self.t += 1
        return out


class _RecordingRule(_ReplayRule):
    def step_cells(self, gradients, cells):
        self.recorded.append(tf.constant(gradients.numpy()))
        return self.rule.step_cells(gradients, cells)


def test_second_derivatives_false_really_stops_gradient_through_optimizee_gradients():
    problem = Quadratic(dims=4, batch_size=6)
    rule = CoordinatewiseLSTM(RuleConfig(preprocessing="none", output_scale=1.0), seed=1)
    params, batches = _first_unroll_inputs(problem, 6)
    recorder = _RecordingRule(rule, [])
    unroll(recorder, problem, params, rule.init_state(problem.num_coordinates), batches, 6)
    # Reference: the same unroll with the optimizee gradients replaced by constants.
    replay = _ReplayRule(rule, recorder.recorded)
    with tf.GradientTape() as tape:
        loss, _, _, _ = unroll(replay, problem, params, rule.init_state(problem.num_coordinates), batches, 6)
    reference = tape.gradient(loss, rule.trainable_variables)
    _, stopped = _meta_gradient(rule, problem, params, batches, 6, second_derivatives=False)
    _, full = _meta_gradient(rule, problem, params, batches, 6, second_derivatives=True)
    def relative_difference(a, b):
        return float(tf.linalg.global_norm([x - y for x, y in zip(a, b)]) / tf.linalg.global_norm(b))

    assert relative_difference(stopped, reference) < 1e-5
    # Keeping second derivatives changes the meta-gradient far beyond float noise.
    assert relative_difference(full, stopped) > 1e-2


@pytest.mark.parametrize("jit_compile", [True, False])
def test_short_meta_training_reduces_validation_loss(jit_compile):
    problem = Quadratic(dims=10, batch_size=32)
    rule = CoordinatewiseLSTM(seed=0)
    config = MetaConfig(num_steps=40, unroll_length=20, meta_learning_rate=3e-3, schedule=MetaSchedule(jit_compile=jit_compile))
    runner = RuleRunner(rule, problem, 40, jit_compile)
    validation = seeds.validation_seeds(4)
    before = validation_score(runner, validation)
    trainer = MetaTrainer(rule, problem, config)
    meta_losses = [float(r.meta_loss) for i in range(25) for r in trainer.unrolls(seeds.training_seed(i))]
    after = validation_score(runner, validation)
    assert after < 0.7 * before, (before, after)
    assert np.mean(meta_losses[-10:]) < np.mean(meta_losses[:10])


class _PoisonedQuadratic(Quadratic):
    """A quadratic whose run with seed ``poisoned`` has NaN targets (a NaN loss)."""

    poisoned = seeds.training_seed(2)

    def sample_function(self, seed):
        w, y = super().sample_function(seed)
        return w, (y * math.nan if seed == self.poisoned else y)


def test_nan_optimizee_loss_is_skipped_and_training_continues(tmp_path):
    problem = _PoisonedQuadratic(dims=5, batch_size=8)
    rule = CoordinatewiseLSTM(seed=0)
    summary = meta_train(
        rule, problem, MetaConfig(num_steps=20, unroll_length=10),
        TrainingOptions(num_epochs=5, validation_every=5, validation_runs=2, log_every=5),
        str(tmp_path / "run"), log=lambda line: None,
    )
    assert summary.runs == 5
    assert summary.skipped_updates >= 1
    assert summary.reset_runs >= 1
    assert all(np.all(np.isfinite(v.numpy())) for v in rule.trainable_variables)
    from l2l_tf import checkpoints

    saved = checkpoints.load_rule(str(tmp_path / "run"))
    assert all(np.all(np.isfinite(v.numpy())) for v in saved.trainable_variables)


def test_meta_config_validation():
    with pytest.raises(ValueError, match="multiple of unroll_length"):
        MetaConfig(num_steps=100, unroll_length=30)
    with pytest.raises(ValueError, match="meta_learning_rate"):
        MetaConfig(meta_learning_rate=0.0)


def test_meta_gradient_accumulation_applies_the_mean_of_the_unrolls_meta_gradients():
    problem = Quadratic(dims=3, batch_size=4)
    config = MetaConfig(num_steps=5, unroll_length=5, meta_learning_rate=0.01, meta_gradient_accumulation=2)
    trainer = MetaTrainer(CoordinatewiseLSTM(seed=0), problem, config)
    reference_rule = CoordinatewiseLSTM(seed=0)
    initial = [w.numpy() for w in reference_rule.trainable_variables]
    weights = tf.constant(config.step_weights()[1:])
    gradients = []
    for seed in (11, 12):
        params = problem.flatten(problem.initial_params(seed))
        with tf.GradientTape() as tape:
            meta_loss, _, _, _ = unroll(reference_rule, problem, params, reference_rule.init_state(problem.num_coordinates),
                                        next(trainer.run_batches(seed)), 5, step_weights=weights)
        gradients.append(tape.gradient(meta_loss, reference_rule.trainable_variables))
        list(trainer.unrolls(seed))
        if seed == 11:  # the first run only accumulates
            for weight, value in zip(trainer.rule.trainable_variables, initial):
                np.testing.assert_array_equal(weight.numpy(), value)
    reference = keras.optimizers.Adam(learning_rate=0.01)
    reference.apply_gradients(zip([(a + b) / 2 for a, b in zip(*gradients)], reference_rule.trainable_variables))
    for weight, expected, value in zip(trainer.rule.trainable_variables, reference_rule.trainable_variables, initial):
        assert not np.allclose(weight.numpy(), value)
        np.testing.assert_allclose(weight.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="meta_gradient_accumulation"):
        MetaConfig(meta_gradient_accumulation=0)


def test_meta_loss_weighting():
    uniform = MetaConfig(num_steps=100, unroll_length=20).step_weights()
    linear = MetaConfig(num_steps=100, unroll_length=20, meta_loss_weighting="linear").step_weights()
    assert uniform.shape == linear.shape == (101,) and np.all(uniform == 1.0)
    assert linear[0] == 0.0 and linear[-1] == pytest.approx(2.0) and np.all(np.diff(linear) > 0)
    assert np.mean(linear) == pytest.approx(1.0)
    last = MetaConfig(num_steps=100, unroll_length=20, meta_loss_weighting="last_quarter").step_weights()
    assert np.all(last[:76] == 0.0) and np.all(last[76:] == last[-1]) and np.mean(last) == pytest.approx(1.0)
    # Weights select the loss terms: only the last one -> the meta-loss is the final loss.
    problem, rule = Quadratic(dims=3, batch_size=4), CoordinatewiseLSTM(seed=0)
    params, batches = _first_unroll_inputs(problem, 5)
    state = rule.init_state(problem.num_coordinates)
    only_last = tf.constant([0.0, 0.0, 0.0, 0.0, 1.0])
    meta_loss, _, final_params, _ = unroll(rule, problem, params, state, batches, 5, step_weights=only_last)
    expected = tf.reduce_mean(problem.flat_loss(final_params, tf.nest.map_structure(lambda b: b[4], batches)))
    np.testing.assert_allclose(meta_loss.numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="meta_loss_weighting"):
        MetaConfig(meta_loss_weighting="exponential")


def test_log_loss_objective_sums_logs_of_the_step_losses():
    problem, rule = Quadratic(dims=3, batch_size=4), CoordinatewiseLSTM(seed=0)
    params, batches = _first_unroll_inputs(problem, 5)
    state = rule.init_state(problem.num_coordinates)
    config = MetaConfig(num_steps=5, unroll_length=5, meta_objective="log_loss")
    plain, step_losses, final_params, _ = unroll(rule, problem, params, state, batches, 5)
    logged, *_ = unroll(rule, problem, params, state, batches, 5, objective=config.objective)
    final = tf.reduce_mean(problem.flat_loss(final_params, tf.nest.map_structure(lambda b: b[4], batches)))
    terms = np.append(step_losses.numpy()[1:], final.numpy())
    np.testing.assert_allclose(plain.numpy(), terms.sum(), rtol=1e-5)
    np.testing.assert_allclose(logged.numpy(), np.log(terms).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="meta_objective"):
        MetaConfig(meta_objective="sqrt")


@pytest.mark.parametrize("second_derivatives", [False, True])
def test_recomputed_segments_give_the_same_losses_and_meta_gradient(second_derivatives):
    problem, rule = Quadratic(dims=5, batch_size=8), CoordinatewiseLSTM(seed=0)
    params, batches = _first_unroll_inputs(problem, 6)
    state = rule.init_state(problem.num_coordinates)
    weights = tf.linspace(0.5, 2.0, 6)

    @tf.function
    def meta_gradient(segment):
        with tf.GradientTape() as tape:
            loss, losses, final_params, final_state = unroll(
                rule, problem, params, state, batches, 6, second_derivatives, weights,
                recompute_segment=segment,
            )
        return loss, losses, final_params, final_state, tape.gradient(loss, rule.trainable_variables)

    stored = meta_gradient(0)
    assert all(np.any(g.numpy() != 0) for g in stored[-1])
    for segment in (1, 3):
        recomputed = meta_gradient(segment)
        for a, b in zip(recomputed[:4], stored[:4]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
        for a, b in zip(recomputed[-1], stored[-1]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="recompute_segment"):
        MetaConfig(num_steps=100, unroll_length=20, schedule=MetaSchedule(recompute_segment=3))


@pytest.mark.parametrize("momentum_decays", [(), (0.5, 0.9)])
def test_coordinate_shards_give_the_same_unroll_and_meta_gradient(momentum_decays):
    problem = Quadratic(dims=5, batch_size=8)  # 40 coordinates: 3 shards of 14, 13, 13
    rule = CoordinatewiseLSTM(RuleConfig(momentum_decays=momentum_decays), seed=0)
    params, batches = _first_unroll_inputs(problem, 4)
    state = tf.random.stateless_normal([problem.num_coordinates, rule.state_size], seed=[0, 5]) * 0.1

    def meta_gradient(stepped_rule):
        with tf.GradientTape() as tape:
            results = unroll(stepped_rule, problem, params, state, batches, 4)
        return results, tape.gradient(results[0], rule.trainable_variables)

    plain, plain_gradient = meta_gradient(rule)
    sharded, sharded_gradient = meta_gradient(CoordinateShards(rule, problem.num_coordinates, 3))
    for a, b in zip(sharded, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(sharded_gradient, plain_gradient):
        assert np.any(b.numpy() != 0)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert shard_sizes(40, 3) == [14, 13, 13]
    with pytest.raises(ValueError, match="coordinate_shards must lie in"):
        shard_sizes(40, 41)
    with pytest.raises(ValueError, match="coordinate_shards must be >= 1"):
        MetaSchedule(coordinate_shards=0)


def test_sampled_horizons_are_log_uniform_multiples_of_the_unroll_fixed_by_the_seed():
    config = MetaConfig(num_steps=1000, unroll_length=20, min_num_steps=20)
    horizons = [config.run_num_steps(seed) for seed in [seeds.training_seed(i) for i in range(400)]]
    assert horizons == [config.run_num_steps(seed) for seed in [seeds.training_seed(i) for i in range(400)]]  # resumable
    assert all(h % 20 == 0 and 20 <= h <= 1000 for h in horizons)
    assert min(horizons) == 20 and max(horizons) >= 900
    # log-uniform over [20, 1000]: about half the runs below the geometric mean (~141 steps)
    assert 0.35 < np.mean(np.asarray(horizons) <= 141) < 0.65
    assert MetaConfig(num_steps=100, unroll_length=20).run_num_steps(12345) == 100  # off by default
    for bad in (10, 30, 1020):
        with pytest.raises(ValueError, match="min_num_steps"):
            MetaConfig(num_steps=1000, unroll_length=20, min_num_steps=bad)
    linear = dataclasses.replace(config, meta_loss_weighting="linear").step_weights(40)  # the run's own horizon
    assert linear.shape == (41,) and linear[-1] == pytest.approx(2.0) and np.mean(linear) == pytest.approx(1.0)


def test_meta_trainer_runs_each_run_over_its_sampled_horizon_with_its_own_step_weights():
    # last_quarter weighting: with the longest horizon's weights (60 steps) a 30-step run's
    # meta-losses would all be 0; with its own, its last unroll carries the weight.
    config = MetaConfig(num_steps=60, unroll_length=10, min_num_steps=10, meta_loss_weighting="last_quarter")
    trainer = MetaTrainer(CoordinatewiseLSTM(seed=0), Quadratic(dims=3, batch_size=2), config)
    run_seeds = [seeds.training_seed(i) for i in range(40)]
    horizons = {seed: config.run_num_steps(seed) for seed in run_seeds}
    assert len(set(horizons.values())) > 2
    for seed in [next(s for s in run_seeds if horizons[s] == h) for h in sorted(set(horizons.values()))[:3]]:
        results = list(trainer.unrolls(seed))
        assert len(results) == horizons[seed] // 10
        assert float(results[-1].meta_loss) > 0.0


def test_sampled_horizons_are_refused_under_a_strategy_before_anything_is_written(tmp_path):
    from l2l_tf.problem_source import ProblemSource, TrainerPool

    config = MetaConfig(num_steps=60, unroll_length=10, min_num_steps=10)
    source = ProblemSource([Quadratic(dims=3, batch_size=2)])
    with pytest.raises(ValueError, match="min_num_steps .* not supported with a distribution strategy"):
        TrainerPool(CoordinatewiseLSTM(seed=0), source, config, strategy=tf.distribute.get_strategy())
