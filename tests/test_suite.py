"""The suite's pieces: chunked long runs, records and the counts against targets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from l2l_tf import export
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems.data import IDX
from l2l_tf.problems.task_specs import ConvTask
from l2l_tf.suite import ADAM_DEFAULT, ChunkedRuleRunner, Row, TaskRecord
from l2l_tf.suite_report import compare, format_suite_table, summarize


def test_chunked_runs_match_one_long_run_with_batch_norm_state(mnist_data_dir):
    problem = ConvTask((4,), batch_norm=True, hidden=8, data="digits14").build("tiny_conv", IDX, mnist_data_dir)
    rule = export.load("saved_optimizers/mnist_lstm")
    long, _ = RuleRunner(rule, problem, 12, jit_compile=False).run(5)
    chunked = ChunkedRuleRunner(rule, problem, 4, jit_compile=False)
    np.testing.assert_allclose(chunked.run(5, 3), long, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(chunked.run(5, 3), long, rtol=2e-4, atol=1e-6)  # state reset between runs


def record(task, rule, tuned, adam_default, rule_diverged=0):
    baselines = {name: Row(name, [mean, mean], 0, lr) for name, (mean, lr) in tuned.items()}
    baselines[ADAM_DEFAULT] = Row(ADAM_DEFAULT, [adam_default] * 2, 0, 0.001)
    return TaskRecord(task, {"num_steps": 10}, baselines, {}, Row("rule", [rule, rule], rule_diverged))


def test_comparison_and_summary_counts():
    records = [
        record("a", 1.0, {"sgd": (2.0, 0.1), "adam": (1.5, 0.01)}, 3.0),
        record("b", 1.5, {"sgd": (2.0, 0.1), "adam": (1.5, 0.01)}, 1.2),
        record("c", 2.0, {"sgd": (1.0, 0.1), "adam": (1.5, 0.01)}, 3.0, rule_diverged=1),
    ]
    first = compare(records[0])
    assert first["best_baseline"] == "adam" and first["ratio_to_best"] == pytest.approx(1 / 1.5)
    assert first["at_or_below_best"] and first["below_adam_default"]
    summary = summarize(records)
    assert summary == {"tasks": 3, "at_or_below_best": 2, "below_adam_default": 2, "diverged_runs": 1, "targets_met": False}
    table = format_suite_table(records, "rule")
    assert "at or below the best tuned baseline on 2/3 tasks (67%" in table and "targets met: no" in table
    assert "adam@0.01" in table and "sgd@0.1" in table
    good = [record("a", 1.0, {"sgd": (2.0, 0.1)}, 3.0)] * 5
    assert summarize(good)["targets_met"]


def test_a_non_finite_run_makes_the_mean_infinite_and_rows_round_trip_through_json():
    row = Row("sgd", [1.0, math.nan], 1, 0.5, {"test_accuracy": 0.5})
    assert row.mean == math.inf
    again = Row.from_json(row.to_json())
    assert again.name == "sgd" and again.diverged_runs == 1 and again.learning_rate == 0.5 and math.isnan(again.final_losses[1])
    stored = record("a", 1.0, {"sgd": (2.0, 0.1)}, 3.0)
    assert TaskRecord.from_json("a", stored.to_json()).to_json() == stored.to_json()
