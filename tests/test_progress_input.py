"""Rules that read their run's progress (``RuleConfig.progress_input``): the LSTM's extra input
``t / T``, told by meta-training, evaluation and ``LearnedOptimizer`` alike."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import layout
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaTrainer, unroll_with_state
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig, warm_start
from l2l_tf.suite import ChunkedRuleRunner

PROGRESS = RuleConfig(hidden_size=8, momentum_decays=(0.5, 0.9), progress_input=True)


def _progress_rule(seed=3):
    """A progress-reading rule whose progress input has weight (as after meta-training)."""
    rule = CoordinatewiseLSTM(PROGRESS, seed=seed)
    row = rule.config.num_inputs - 1
    kernel = rule.kernels[0].numpy()
    kernel[row] = np.linspace(-3.0, 3.0, kernel.shape[1])
    rule.kernels[0].assign(kernel)
    return rule


def test_progress_starts_with_zero_weight_from_a_rule_without_it_and_is_required():
    source = CoordinatewiseLSTM(RuleConfig(hidden_size=8, momentum_decays=(0.5, 0.9)), seed=4)
    rule = CoordinatewiseLSTM(PROGRESS, seed=5)
    warm_start(rule, source)
    g = tf.random.stateless_normal([30], seed=[1, 2])
    expected, _ = source.step(g, source.init_state(30))
    for progress in (0.0, 0.4, 1.0):
        update, _ = rule.step(g, rule.init_state(30), progress=tf.constant(progress))
        np.testing.assert_allclose(update.numpy(), expected.numpy(), atol=1e-7)
    with pytest.raises(ValueError, match="progress="):
        rule.step(g, rule.init_state(30))
    with pytest.raises(ValueError, match="architectures"):  # a rule cannot drop an input it was trained with
        warm_start(source, rule)
    with pytest.raises(ValueError, match="progress_input"):
        RuleConfig(progress_input="yes")
    assert "progress_input" not in source.config.to_dict()  # files of other rules are unchanged
    assert RuleConfig.from_dict(PROGRESS.to_dict()) == PROGRESS


def test_progress_is_clipped_to_the_unit_interval():
    assert [float(layout.run_progress(t, 4)) for t in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
    rule, g = _progress_rule(), tf.ones([5])
    past_the_end, _ = rule.step(g, rule.init_state(5), progress=tf.constant(3.0))
    at_the_end, _ = rule.step(g, rule.init_state(5), progress=tf.constant(1.0))
    start, _ = rule.step(g, rule.init_state(5), progress=tf.constant(0.0))
    np.testing.assert_array_equal(past_the_end.numpy(), at_the_end.numpy())
    assert not np.allclose(start.numpy(), at_the_end.numpy(), rtol=1e-2, atol=0)  # the input is read


class _ProgressEcho:
    """A rule whose update is its progress input, and whose state sums it: the parameters' final
    shift (and the state) is the sum of the progress values it was told."""

    needs_progress = True

    def init_state(self, n):
        return tf.zeros([n, 1])

    def step(self, gradients, state, progress):
        return tf.fill(tf.shape(gradients), progress), state + progress


class _ProgressEchoCells(_ProgressEcho):
    """``_ProgressEcho`` as a cell rule (one cell: its state), for the meta-training unroll."""

    state_size = 1

    def split_state(self, state):
        return [state]

    def join_state(self, cells):
        return cells[0]

    def step_cells(self, gradients, cells, progress):
        update, state = self.step(gradients, cells[0], progress)
        return update, [state]


def test_meta_training_tells_each_step_its_progress_in_its_own_run_and_trains_the_progress_weights():
    config = MetaConfig(num_steps=40, unroll_length=10, min_num_steps=10)
    problem = Quadratic(dims=4, batch_size=3)
    rule = CoordinatewiseLSTM(PROGRESS, seed=0)
    trainer = MetaTrainer(rule, problem, config)
    # Every run's steps are told t / T of the run's own sampled length T, across its truncations.
    told, compiled = [], trainer.train_unroll
    trainer.train_unroll = lambda *args: told.append(args[3].numpy()) or compiled(*args)
    lengths = set()
    for seed in (101, 102, 103, 104):
        told.clear()
        for _ in trainer.unrolls(seed):
            pass
        length = config.run_num_steps(seed)
        lengths.add(length)
        np.testing.assert_allclose(np.concatenate(told), np.arange(length) / length, rtol=1e-6)
    assert len(lengths) > 1
    trainer.train_unroll = compiled
    # Within an unroll, step t is given progress[t].
    echo = _ProgressEchoCells()
    params = problem.flatten(problem.initial_params(7))
    batches = next(iter(problem.batches(7).batch(10)))
    progress = tf.constant(np.arange(10) / 10, tf.float32)
    *_, moved, told_sum, _ = unroll_with_state(echo, problem, params, echo.init_state(problem.num_coordinates),
                                               batches, 10, progress=progress)
    np.testing.assert_allclose(told_sum.numpy(), 4.5, rtol=1e-6)
    np.testing.assert_allclose(moved.numpy() - params.numpy(), 4.5, rtol=1e-5)
    # The unroll passes step t's progress to the rule: a different progress, a different meta-loss.
    weighted = _progress_rule()
    params = problem.flatten(problem.initial_params(7))
    batches = next(iter(problem.batches(7).batch(10)))

    def meta_loss(progress):
        with tf.GradientTape() as tape:
            loss = unroll_with_state(weighted, problem, params, weighted.init_state(problem.num_coordinates), batches, 10,
                                     progress=tf.constant(progress, tf.float32))[0]
        return float(loss), tape.gradient(loss, weighted.kernels[0])

    early, at_zero = meta_loss(np.zeros(10))
    late, at_one = meta_loss(np.ones(10))
    assert early != pytest.approx(late, rel=1e-6)
    row = PROGRESS.num_inputs - 1  # the progress row gets meta-gradient where the progress is not 0
    assert np.all(at_zero.numpy()[row] == 0) and np.any(at_one.numpy()[row] != 0)
    # A few runs of meta-training move the progress row.
    before = rule.kernels[0].numpy()[row].copy()
    for seed in (101, 102):
        for _ in trainer.unrolls(seed):
            pass
    assert np.max(np.abs(rule.kernels[0].numpy()[row] - before)) > 0


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("total_steps, expected", [(None, 4.5), (20, 2.25), (5, 7.0)])
def test_evaluation_tells_the_rule_t_over_the_runs_length(total_steps, expected, jit_compile):
    problem = Quadratic(dims=2, batch_size=2)
    start = problem.flatten(problem.initial_params(3))
    runner = RuleRunner(_ProgressEcho(), problem, num_steps=10, jit_compile=jit_compile, total_steps=total_steps)
    for _ in range(2):  # each run counts from zero
        _, final = runner.run(seed=3)
        np.testing.assert_allclose(final.numpy() - start.numpy(), expected, rtol=1e-6)


def test_stability_runs_count_the_steps_on_over_their_chunks():
    runner = ChunkedRuleRunner(_ProgressEcho(), Quadratic(dims=2, batch_size=2), chunk=4, jit_compile=False)
    for _ in range(2):  # each run counts from zero
        runner.run(seed=1, chunks=3)
        assert int(runner.steps_taken.numpy()) == 12
        # told 0, 1/4, 2/4, 3/4, then 1 for the 8 steps past the first horizon
        np.testing.assert_allclose(runner.rule_state.numpy(), 9.5, rtol=1e-6)


@pytest.mark.parametrize("options", [{}, {"jit_compile_rule": True}, {"coordinate_block_size": 2}])
def test_learned_optimizer_tells_the_rule_its_iteration_over_total_steps(tmp_path, options):
    rule = _progress_rule()
    with pytest.raises(ValueError, match="total_steps="):
        LearnedOptimizer(rule)
    with pytest.raises(ValueError, match="only for rules that read"):
        LearnedOptimizer(CoordinatewiseLSTM(seed=1), total_steps=10)
    with pytest.raises(ValueError, match="positive integer"):
        LearnedOptimizer(rule, total_steps=0)
    optimizer = LearnedOptimizer(rule, total_steps=4, **options)
    variable = keras.Variable(np.zeros(6, np.float32))
    state = rule.init_state(6)
    for step in range(6):
        g = tf.random.stateless_normal([6], seed=[step, 9])
        before = variable.numpy().copy()
        optimizer.apply_gradients([(g, variable)])
        expected, state = rule.step(g, state, progress=tf.constant(min(step / 4, 1.0)))
        np.testing.assert_allclose(variable.numpy() - before, expected.numpy(), rtol=1e-4, atol=1e-8)
    config = optimizer.get_config()
    assert config["total_steps"] == 4
    assert "total_steps" not in LearnedOptimizer(CoordinatewiseLSTM(seed=1)).get_config()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(LearnedOptimizer(rule, total_steps=7), "mse")
    model.fit(np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").optimizer.total_steps == 7
