"""A learned rule and tuned baselines over every task of a suite (``l2l-evaluate-suite``).

Per task: each baseline's learning rate is tuned on tuning seeds (``l2l_tf.seeds``),
disjoint from the evaluation seeds, by ``tuning.tune_all``; the tuned baselines, Adam at
its default learning rate (``adam_default``, 0.001) and the rule then run on the same
evaluation seeds. Every run's final loss and whether it *diverged* are kept.

A run **diverges** as ``l2l_tf.stability.diverged_runs`` defines it (a non-finite loss, or
a mean loss over the last tenth of its steps above its step-0 loss). The *stability*
check runs the rule alone for ``stability_factor`` times the horizon, in chunks of one
horizon (so memory does not grow with the length), and counts diverged runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf.evaluation import (
    BaselineRunner,
    OptimizerResult,
    RuleRunner,
    evaluate_baseline,
    evaluate_rule,
    trajectory,
)
from l2l_tf.problems.base import Problem
from l2l_tf.rule_base import compiled_function
from l2l_tf.rules import Rule
from l2l_tf.stability import diverged_runs
from l2l_tf.tuning import tune_all

ADAM_DEFAULT = "adam_default"
ADAM_DEFAULT_LEARNING_RATE = 0.001  # Keras' (and the Adam paper's) default


@dataclasses.dataclass
class Row:
    """One optimizer on one task: per-run final losses, diverged runs, its learning rate."""

    name: str
    final_losses: list[float]
    diverged_runs: int
    learning_rate: float | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def mean(self) -> float:
        """Mean final loss; ``inf`` if any run ended non-finite."""
        finals = np.asarray(self.final_losses, np.float64)
        return float(np.mean(finals)) if np.all(np.isfinite(finals)) else math.inf

    @classmethod
    def from_result(cls, result: OptimizerResult, name: str | None = None) -> Row:
        metrics = {key: float(np.mean([m[key] for m in result.metrics])) for key in sorted(set().union(*result.metrics))}
        return cls(name or result.name, [float(x) for x in result.curves[:, -1]],
                   int(diverged_runs(np.asarray(result.curves)).sum()), result.learning_rate, metrics)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "final_loss_mean": self.mean}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Row:
        return cls(values["name"], [float(x) for x in values["final_losses"]], int(values["diverged_runs"]),
                   values.get("learning_rate"), dict(values.get("metrics", {})))


@dataclasses.dataclass
class TaskRecord:
    """Everything measured on one task; ``settings`` must match for baselines to be reused."""

    task: str
    settings: dict[str, Any]
    baselines: dict[str, Row]
    tuning: dict[str, Any]
    rule: Row | None = None
    stability: Row | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings, "tuning": self.tuning,
            "baselines": {name: row.to_json() for name, row in self.baselines.items()},
            "rule": self.rule.to_json() if self.rule else None,
            "stability": self.stability.to_json() if self.stability else None,
        }

    @classmethod
    def from_json(cls, task: str, values: dict[str, Any]) -> TaskRecord:
        def row(value):
            return Row.from_json(value) if value else None

        baselines = {name: Row.from_json(value) for name, value in values["baselines"].items()}
        return cls(task, values["settings"], baselines, values["tuning"], row(values.get("rule")), row(values.get("stability")))


def task_settings(problem: Problem, num_steps: int, evaluation: Sequence[int], tuning: Sequence[int],
                  learning_rates: Sequence[float], names: Sequence[str]) -> dict[str, Any]:
    """The settings that decide a task's baseline results (JSON-normalised, for comparison)."""
    settings = {
        "problem": problem.describe(), "num_steps": num_steps, "evaluation_seeds": list(evaluation),
        "tuning_seeds": list(tuning), "learning_rate_grid": [float(lr) for lr in learning_rates],
        "baselines": list(names),
    }
    return json.loads(json.dumps(settings))


def run_baselines(problem: Problem, settings: dict[str, Any], jit_compile: bool = True,
                  log=print) -> tuple[dict[str, Row], dict[str, Any]]:
    """Tunes and evaluates ``settings["baselines"]`` on ``problem``, plus Adam at its default
    learning rate; ``(rows by name, tuning records)``."""
    steps, evaluation = settings["num_steps"], settings["evaluation_seeds"]
    runners = {name: BaselineRunner(name, problem, steps, jit_compile) for name in settings["baselines"]}
    rows, tuning = {}, {}
    tuned_all = tune_all(list(runners.values()), settings["tuning_seeds"], settings["learning_rate_grid"])
    for name, tuned in zip(runners, tuned_all):
        tuning[name] = {"best_learning_rate": tuned.best_learning_rate,
                        "scores": {str(lr): score for lr, score in tuned.scores.items()}}
        rows[name] = Row.from_result(evaluate_baseline(runners[name], evaluation, tuned.best_learning_rate))
        log(f"  {problem.name}: {name} tuned to learning rate {tuned.best_learning_rate:g},"
            f" mean final loss {rows[name].mean:.5g}")
    adam = runners.get("adam") or BaselineRunner("adam", problem, steps, jit_compile)
    rows[ADAM_DEFAULT] = Row.from_result(evaluate_baseline(adam, evaluation, ADAM_DEFAULT_LEARNING_RATE), ADAM_DEFAULT)
    log(f"  {problem.name}: {ADAM_DEFAULT} mean final loss {rows[ADAM_DEFAULT].mean:.5g}")
    return rows, tuning


def run_rule(name: str, rule: Rule, problem: Problem, num_steps: int, seeds: Sequence[int],
             jit_compile: bool = True) -> Row:
    """The rule's row on ``problem`` over runs ``seeds``."""
    return Row.from_result(evaluate_rule(name, RuleRunner(rule, problem, num_steps, jit_compile), seeds))


class ChunkedRuleRunner(RuleRunner):
    """Runs a rule for many horizons in chunks of ``chunk`` steps (one compiled chunk; the
    rule's state carried in a variable between chunks), for the stability check. Steps as
    ``RuleRunner`` does (rule sets, layouts)."""

    def __init__(self, rule: Rule, problem: Problem, chunk: int, jit_compile: bool = True):
        super().__init__(rule, problem, chunk, jit_compile)
        self.chunk = chunk
        self.rule_state = tf.Variable(self.rule.init_state(problem.num_coordinates), name="rule_state")
        self._run_chunk = compiled_function(self._chunk, jit_compile)

    def _advance(self, params: tf.Tensor, gradients: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        params, state = super()._advance(params, gradients, state)
        self.rule_state.assign(state)
        return params, state

    def _chunk(self, params: tf.Tensor, optimizee_state: tf.Tensor, batches: Any) -> tuple[tf.Tensor, ...]:
        return trajectory(self.problem, self.chunk, params, batches, tf.convert_to_tensor(self.rule_state),
                          self._advance, optimizee_state)

    def run(self, seed: int, chunks: int) -> np.ndarray:
        """The ``[chunks * chunk + 1]`` loss curve of run ``seed``."""
        self.rule_state.assign(self.rule.init_state(self.problem.num_coordinates))
        self.steps_taken.assign(0)  # a progress-reading rule's run counts on over the chunks
        params = self.problem.flatten(self.problem.initial_params(seed))
        optimizee_state = self.problem.initial_state(seed)
        stream = iter(self.problem.batches(seed).batch(self.chunk))
        current, curve = next(stream), []
        for _ in range(chunks):
            following = next(stream)
            batches = tf.nest.map_structure(lambda a, b: tf.concat([a, b[:1]], 0), current, following)
            losses, params, optimizee_state = self._run_chunk(params, optimizee_state, batches)
            curve.append(losses.numpy()[:-1])  # the last loss is the next chunk's first
            current = following
        return np.concatenate([*curve, losses.numpy()[-1:]])


def run_stability(name: str, rule: Rule, problem: Problem, num_steps: int, factor: int, seeds: Sequence[int],
                  jit_compile: bool = True) -> Row:
    """The rule alone for ``factor * num_steps`` steps on runs ``seeds``: final losses and diverged runs."""
    runner = ChunkedRuleRunner(rule, problem, num_steps, jit_compile)
    curves = np.stack([runner.run(seed, factor) for seed in seeds])
    return Row.from_result(OptimizerResult(name, curves, [{} for _ in seeds]))
