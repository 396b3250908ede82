"""Meta-training over a task distribution: the seeded draw of each run's problem, one
trainer per problem, resume, validation over several problems, and the single-problem
path computing what it always did."""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, unroll_with_state
from l2l_tf.problem_source import ProblemSource
from l2l_tf.problems import Quadratic, make_problems, task_list
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.training import TrainingOptions, meta_train, rule_fingerprint
from l2l_tf.validation import (
    score_curves,
    task_scores,
    validation_curves,
    validation_score,
)

CONFIG = MetaConfig(num_steps=8, unroll_length=4, meta_learning_rate=1e-2)
OPTIONS = {"validation_every": 2, "validation_runs": 2, "checkpoint_every": 1, "log_every": 2, "seed": 1}


def _train(save_path, problems, epochs, reports=None):
    rule = CoordinatewiseLSTM(seed=0)
    summary = meta_train(rule, problems, CONFIG, TrainingOptions(num_epochs=epochs, **OPTIONS), str(save_path),
                         log=lambda line: None, on_run_end=None if reports is None else reports.append)
    return rule, summary


def _reference_weights(problem, epochs):
    """The rule after ``epochs`` runs of truncated BPTT written out by hand: each run's
    unrolls, the gradient of each unroll's meta-loss, one Adam step each."""
    rule = CoordinatewiseLSTM(seed=0)
    adam = keras.optimizers.Adam(learning_rate=CONFIG.meta_learning_rate)
    weights, length = CONFIG.step_weights(), CONFIG.unroll_length
    for run in range(epochs):
        seed = seeds.training_seed(run, OPTIONS["seed"])
        params, state = problem.flatten(problem.initial_params(seed)), rule.init_state(problem.num_coordinates)
        data = problem.batches(seed).batch(length, drop_remainder=True).take(CONFIG.unrolls_per_run)
        for index, batches in enumerate(data):
            with tf.GradientTape() as tape:
                meta_loss, _, params, state, _ = unroll_with_state(
                    rule, problem, params, state, batches, length,
                    step_weights=tf.constant(weights[index * length + 1 : (index + 1) * length + 1]),
                )
            adam.apply_gradients(zip(tape.gradient(meta_loss, rule.trainable_variables), rule.trainable_variables))
    return rule.trainable_variables


def test_one_problem_or_a_list_of_one_computes_what_truncated_bptt_by_hand_does(tmp_path):
    problem = Quadratic(dims=4, batch_size=8)
    single_reports, listed_reports = [], []
    single, _ = _train(tmp_path / "single", problem, 3, single_reports)
    listed, _ = _train(tmp_path / "listed", [problem], 3, listed_reports)
    assert rule_fingerprint(single) == rule_fingerprint(listed)
    assert [r.meta_loss_per_step for r in single_reports] == [r.meta_loss_per_step for r in listed_reports]
    for trained, expected in zip(single.trainable_variables, _reference_weights(problem, 3)):
        np.testing.assert_allclose(trained.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)


def test_the_draw_of_each_runs_problem_depends_only_on_the_seed_and_the_run():
    a, b, c = Quadratic(dims=2), Quadratic(dims=3), Quadratic(dims=4)
    draws = [ProblemSource([a, b, c], seed=5).index(run) for run in range(60)]
    assert draws == [ProblemSource([a, b, c], seed=5).index(run) for run in range(60)]
    assert [ProblemSource([a, b, c], seed=5).index(run) for run in (59, 7, 0)] == [draws[59], draws[7], draws[0]]
    assert set(draws) == {0, 1, 2}
    assert draws != [ProblemSource([a, b, c], seed=6).index(run) for run in range(60)]
    assert {ProblemSource(a, seed=5).index(run) for run in range(10)} == {0}
    with pytest.raises(ValueError, match="at least one problem"):
        ProblemSource([])
    with pytest.raises(TypeError, match="KerasProblem"):
        ProblemSource([a, "quadratic"])


def test_a_task_list_run_trains_on_the_drawn_problems_and_resumes_to_the_same_rule(tmp_path):
    problems = task_list("tasks:quadratics_small")
    assert len({p.num_coordinates for p in problems}) == 2  # two compiled unrolls
    reports = []
    whole, summary = _train(tmp_path / "whole", problems, 6, reports)
    source = ProblemSource(problems, OPTIONS["seed"])
    assert [r.problem for r in reports] == [problems[source.index(run)].name for run in range(6)]
    assert {r.problem for r in reports} == {p.name for p in problems}
    assert summary.runs == 6 and summary.skipped_updates == 0
    _train(tmp_path / "resumed", problems, 3)
    resumed, _ = _train(tmp_path / "resumed", problems, 6)
    assert rule_fingerprint(resumed) == rule_fingerprint(whole)
    with open(os.path.join(tmp_path, "whole", "best", "rule_config.json")) as f:
        best = json.load(f)
    assert best["validation_loss"] == pytest.approx(summary.best_validation_loss)


def test_validation_over_several_problems_is_the_mean_of_step0_normalised_scores():
    problems = task_list("quadratics_small")
    rule = CoordinatewiseLSTM(seed=0)
    runners = [RuleRunner(rule, p, 6, jit_compile=False) for p in problems]
    validation = seeds.validation_seeds(2)
    config = MetaConfig(num_steps=6, unroll_length=6, meta_loss_weighting="linear")
    score, scores = task_scores(runners, validation, config)
    expected = []
    for runner in runners:
        curves = validation_curves(runner, validation)
        normalised = curves / np.mean(curves[:, 0])
        expected.append(np.mean(normalised * config.step_weights()))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert score == pytest.approx(np.mean(expected), rel=1e-5)
    # A loss scale does not change a problem's normalised score, under either objective.
    curves = validation_curves(runners[0], validation)
    for objective in ("loss", "log_loss"):
        cfg = MetaConfig(num_steps=6, unroll_length=6, meta_objective=objective)
        assert score_curves(100 * curves, cfg, 100 * np.mean(curves[:, 0])) == pytest.approx(
            score_curves(curves, cfg, np.mean(curves[:, 0])), rel=1e-5, abs=1e-6)
    # One problem: the plain score, as every run before task lists recorded it.
    assert task_scores(runners[:1], validation, config)[0] == validation_score(runners[0], validation, config)


def test_a_solved_run_with_an_exact_zero_loss_scores_finitely_under_log_loss():
    # A cross-entropy can be exactly 0 in float32; log(0) made the best rule's validation score inf.
    config = MetaConfig(num_steps=3, unroll_length=3, meta_objective="log_loss")
    solved, stalled = np.array([[1.0, 1e-3, 0.0, 0.0]]), np.array([[1.0, 0.5, 0.5, 0.5]])
    assert math.isfinite(score_curves(solved, config))
    assert score_curves(solved, config) < score_curves(stalled, config)
    assert score_curves(np.array([[1.0, np.nan, 0.0, 0.0]]), config) == math.inf  # a diverged run still is
    # Training: the meta-loss term of an exact 0 is finite and passes no gradient (it is at the floor).
    loss = tf.Variable(0.0)
    with tf.GradientTape() as tape:
        term = config.objective(loss)
    assert np.isfinite(term.numpy()) and tape.gradient(term, loss).numpy() == 0.0


def test_task_lists_are_named_and_unknown_names_list_the_choices():
    assert [p.name for p in make_problems("tasks:quadratics_small")] == ["quadratic_3", "quadratic_6"]
    assert [p.name for p in make_problems("quadratic")] == ["quadratic"]
    with pytest.raises(ValueError, match="unknown task list 'nope'; choose from .*quadratics_small"):
        make_problems("tasks:nope")


def test_the_binary_meta_trains_on_a_named_task_list_and_refuses_unknown_ones(tmp_path):
    from test_binaries import run_binary

    save = tmp_path / "run"
    flags = ["--num_runs=2", "--num_steps=4", "--unroll_length=2", "--validation_every=2", "--validation_runs=1"]
    result = run_binary("meta_train", "--problem=tasks:quadratics_small", f"--save_path={save}", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on tasks:quadratics_small (2 problems of 12 to 24 coordinates)" in result.stdout
    assert json.loads(result.stdout.split("summary: ")[1].splitlines()[0])["runs"] == 2
    stored = json.loads((save / "run_config.json").read_text())
    assert stored["problem"] == "tasks:quadratics_small"
    assert [p["name"] for p in stored["problem_description"]["problems"]] == ["quadratic_3", "quadratic_6"]
    unknown = run_binary("meta_train", "--problem=tasks:nope", f"--save_path={tmp_path / 'other'}", *flags)
    assert unknown.returncode == 2 and "unknown task list 'nope'; choose from" in unknown.stderr
    assert "Traceback" not in unknown.stderr
