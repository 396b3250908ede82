import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import baselines, seeds
from l2l_tf.evaluation import (
    BaselineRunner,
    OptimizerResult,
    RuleRunner,
    check_disjoint,
    evaluate_baseline,
    format_comparison,
    format_table,
    paired_comparison,
    read_curves,
    write_curves,
)
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.tuning import pick_learning_rate, tune


def test_baseline_runner_matches_a_plain_keras_loop_and_resets_between_runs():
    problem = Quadratic(dims=4, batch_size=3)
    runner = BaselineRunner("adam", problem, num_steps=15, jit_compile=False)
    first, _ = runner.run(seed=5, learning_rate=0.1)
    again, final = runner.run(seed=5, learning_rate=0.1)
    np.testing.assert_allclose(first, again, rtol=1e-6)  # slots and iterations were reset
    theta = tf.Variable(problem.initial_params(5)[0])
    optimizer = keras.optimizers.Adam(0.1)
    w, y = problem.sample_function(5)
    expected = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            losses = problem.loss([theta], (w, y))
            total = tf.reduce_sum(losses)
        expected.append(float(tf.reduce_mean(losses)))
        optimizer.apply_gradients([(tape.gradient(total, theta), theta)])
    expected.append(float(tf.reduce_mean(problem.loss([theta], (w, y)))))
    np.testing.assert_allclose(first, expected, rtol=1e-4)
    np.testing.assert_allclose(final.numpy(), theta.numpy().ravel(), rtol=1e-4, atol=1e-6)


def test_rules_and_baselines_run_through_one_trajectory_loop():
    """A learned rule computing plain SGD's update, run by RuleRunner, follows Keras' SGD run
    by BaselineRunner: the same loop, the same batches, the same final-loss convention."""

    class SgdRule:
        def init_state(self, n):
            return tf.zeros([n, 1])

        def step(self, gradients, state):
            return -0.05 * gradients, state

    problem = Quadratic(dims=4, batch_size=3)
    rule_losses, rule_params = RuleRunner(SgdRule(), problem, num_steps=12, jit_compile=False).run(seed=2)
    sgd_losses, sgd_params = BaselineRunner("sgd", problem, num_steps=12, jit_compile=False).run(seed=2, learning_rate=0.05)
    assert rule_losses.shape == sgd_losses.shape == (13,)
    np.testing.assert_allclose(rule_losses, sgd_losses, rtol=1e-6)
    np.testing.assert_allclose(rule_params.numpy(), sgd_params.numpy(), rtol=1e-6, atol=1e-7)
    assert rule_losses[-1] < rule_losses[0]


def test_tuning_picks_the_lowest_final_loss_and_skips_divergence():
    problem = Quadratic(dims=4, batch_size=8)
    runner = BaselineRunner("sgd", problem, num_steps=20, jit_compile=False)
    result = tune(runner, seeds.tuning_seeds(2), [1e-4, 1e-2, 10.0])
    assert result.scores[10.0] == float("inf")  # diverged
    assert result.best_learning_rate == min(result.scores, key=result.scores.get) == 1e-2
    table = format_table([evaluate_baseline(runner, [0, 1], result.best_learning_rate)], step=20)
    assert "sgd" in table and "loss@20 mean" in table


def test_paired_comparison_of_the_rule_against_baselines():
    def result(name, finals):
        return OptimizerResult(name, np.stack([np.full(len(finals), 2.0), finals], axis=1), [{} for _ in finals])

    rule = result("lstm", np.array([1.0, 2.0, 3.0, 2.0]))
    sgd = result("sgd", np.array([2.0, 2.0, 4.0, 4.0]))
    (row,) = paired_comparison(rule, [sgd])
    assert row["optimizer"] == "sgd"
    assert row["ratio_of_means"] == pytest.approx(8.0 / 12.0)
    assert row["mean_difference"] == pytest.approx(-1.0)  # differences -1, 0, -1, -2
    assert row["difference_standard_error"] == pytest.approx(np.std([-1, 0, -1, -2], ddof=1) / 2.0)
    assert row["share_of_runs_lower"] == pytest.approx(0.75)
    text = format_comparison(rule.name, [row])
    assert "lstm vs each baseline" in text and "vs sgd" in text and "ratio 0.667" in text
    with pytest.raises(ValueError, match="same seeds"):
        paired_comparison(rule, [result("adam", np.array([1.0, 2.0]))])


def test_curves_are_stored_compactly_and_older_results_json_curves_still_read(tmp_path):
    rng = np.random.default_rng(0)
    results = [OptimizerResult(name, rng.random((3, 6), dtype=np.float32), [{} for _ in range(3)]) for name in ("lstm", "adam")]
    (tmp_path / "new").mkdir()
    write_curves(results, str(tmp_path / "new" / "results.json"), {"settings": {}})
    stored = json.loads((tmp_path / "new" / "results.json").read_text())
    assert "curves" not in stored and [s["optimizer"] for s in stored["summary"]] == ["lstm", "adam"]
    curves = read_curves(str(tmp_path / "new"))
    assert list(curves) == ["lstm", "adam"]
    for r in results:  # exact, in the dtype written
        assert curves[r.name].dtype == np.float32
        np.testing.assert_array_equal(curves[r.name], r.curves)
    # Evaluations written before the curves moved to curves.npz kept them in results.json.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps({"curves": {r.name: r.curves.tolist() for r in results}}))
    old = read_curves(str(tmp_path / "old"))
    for r in results:
        np.testing.assert_array_equal(old[r.name], r.curves)
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match="no curves.npz or results.json"):
        read_curves(str(tmp_path / "none"))
    (tmp_path / "none" / "results.json").write_text(json.dumps({"summary": []}))
    with pytest.raises(ValueError, match="holds no curves"):
        read_curves(str(tmp_path / "none"))


def test_seed_ranges_are_disjoint():
    check_disjoint(seeds.tuning_seeds(50), seeds.evaluation_seeds(100))
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint([1, 2, 3], [3, 4])
    with pytest.raises(ValueError, match="evaluation seeds must lie"):
        seeds.evaluation_seeds(10, start=seeds.TUNING_START)
    assert seeds.training_seed(0) >= seeds.TRAINING_START > seeds.VALIDATION_START
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.make_baseline("adagrad", 0.1)


def test_tuning_shares_each_runs_start_and_scores_as_separate_runs_do(mnist_data_dir):
    from l2l_tf.problems.task_specs import MLPTask
    from l2l_tf.tuning import tune_all

    # Keras' own initialisers: drawing the parameters sets the global seeds the data order depends on.
    problem = MLPTask((8,), "relu", data="digits14").build("tiny", "idx", mnist_data_dir)
    runners = [BaselineRunner(name, problem, num_steps=5, jit_compile=False) for name in ("sgd", "adam")]
    tuned = tune_all(runners, seeds.tuning_seeds(2), [0.01, 0.3])
    for runner, result in zip(runners, tuned):
        for lr, score in result.scores.items():
            separate = [runner.run(seed, lr)[0][-1] for seed in reversed(seeds.tuning_seeds(2))]  # other order
            assert score == pytest.approx(float(np.mean(separate)), rel=1e-6), (runner.name, lr)


def test_tuning_at_a_shorter_horizon_from_longer_tuning_runs_is_the_same_grid_search():
    problem = Quadratic(dims=4, batch_size=3)
    grid = [1e-3, 0.03, 1.0]
    long = tune(BaselineRunner("adam", problem, num_steps=20, jit_compile=False), seeds.tuning_seeds(2), grid)
    short = tune(BaselineRunner("adam", problem, num_steps=8, jit_compile=False), seeds.tuning_seeds(2), grid)
    from_long = pick_learning_rate("adam", long.curves, num_steps=8)
    assert from_long.best_learning_rate == short.best_learning_rate
    for lr in grid:
        np.testing.assert_allclose(from_long.scores[lr], short.scores[lr], rtol=1e-6)
    with pytest.raises(ValueError, match="shorter than 30 steps"):
        pick_learning_rate("adam", long.curves, num_steps=30)
