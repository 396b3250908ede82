"""Validation during meta-training: score the rule on held-out runs, keep the best rule.

The score of one problem is the meta-objective on its validation runs: the mean over steps
and runs of ``w_t g(loss_t)`` (``MetaConfig``'s step weights and objective), so it is on
the scale of the per-step meta-loss the progress lines print.

Over several validation problems (a task distribution), losses of different scales must
not let one task dominate, so each problem's curves are first divided by that problem's
mean step-0 loss over its validation runs, ``L0``: the score is the mean over problems of
``mean_t w_t g(loss_t / L0)``. ``L0`` does not depend on the rule (it is the loss at the
initial parameters), so the normalisation is a fixed per-problem constant; a score of 1
means "no progress from the start" under the plain objective, and with ``log_loss`` the
score is the mean log-ratio of the loss to the start. With one validation problem the
score is not normalised, as in every run before task distributions existed, so resumed
runs compare their new scores with the best score they recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import checkpoints, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta_config import MetaConfig
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.run_config import RunConfig


def score_curves(curves: np.ndarray, meta_config: MetaConfig | None = None, scale: float = 1.0) -> float:
    """The meta-objective of loss ``curves`` ``[runs, num_steps + 1]`` divided by ``scale``
    (``inf`` if not finite)."""
    curves = np.asarray(curves) / scale
    if meta_config is not None:
        curves = meta_config.objective(tf.constant(curves)).numpy() * meta_config.step_weights()
    score = float(np.mean(curves))
    return score if math.isfinite(score) else math.inf


def validation_curves(runner: RuleRunner, validation_seeds: Sequence[int]) -> np.ndarray:
    """The loss curves ``[runs, num_steps + 1]`` of ``runner``'s rule on ``validation_seeds``."""
    return np.stack([runner.run(seed)[0] for seed in validation_seeds])


def validation_score(
    runner: RuleRunner, validation_seeds: Sequence[int], meta_config: MetaConfig | None = None
) -> float:
    """The meta-objective on the validation runs: the mean over steps and runs of
    ``w_t g(loss_t)`` (``meta_config``'s step weights and objective; default the plain mean loss)."""
    return score_curves(validation_curves(runner, validation_seeds), meta_config)


def task_scores(
    runners: Sequence[RuleRunner], validation_seeds: Sequence[int], meta_config: MetaConfig | None = None
) -> tuple[float, list[float]]:
    """``(score, per-problem scores)`` over several problems' runners: the mean of each
    problem's score of its curves divided by its mean step-0 loss (one runner: the plain
    ``validation_score``; see the module docstring)."""
    curves = [validation_curves(runner, validation_seeds) for runner in runners]
    if len(curves) == 1:
        score = score_curves(curves[0], meta_config)
        return score, [score]
    scores = [score_curves(c, meta_config, scale=float(np.mean(c[:, 0]))) for c in curves]
    return (float(np.mean(scores)) if all(map(math.isfinite, scores)) else math.inf), scores


class Validator:
    """Scores the rule on the validation problems, logs it and keeps the best rule (chief only).

    ``state`` holds ``epoch``, ``best_score`` and ``best_epoch`` (``TrainingState``); an
    improvement is written to ``best_dir`` with ``run_config``."""

    def __init__(self, rule: CoordinatewiseLSTM, problems: Sequence[Problem], meta_config: MetaConfig,
                 validation_runs: int, best_dir: str, run_config: RunConfig, state: Any, writer: Any,
                 log: Callable[[str], None]):
        self.rule, self.problems, self.meta_config, self.run_config = rule, list(problems), meta_config, run_config
        self.state, self.writer, self.log, self.best_dir = state, writer, log, best_dir
        jit = meta_config.schedule.jit_compile
        self.runners = [RuleRunner(rule, problem, meta_config.num_steps, jit) for problem in self.problems]
        self.seeds = seeds.validation_seeds(validation_runs)

    def __call__(self) -> float:
        state, epoch = self.state, int(self.state.epoch)
        score, scores = task_scores(self.runners, self.seeds, self.meta_config)
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("validation_loss", score)
            if len(scores) > 1:
                for index, (problem, value) in enumerate(zip(self.problems, scores)):
                    tf.summary.scalar(f"validation_loss/{index}_{problem.name}", value)
        improved = score < float(state.best_score)
        if improved:
            state.best_score.assign(score)
            state.best_epoch.assign(epoch)
            checkpoints.save_rule(
                self.rule, self.best_dir, {"epoch": epoch, "validation_loss": score, "run_config": self.run_config.to_dict()}
            )
        self.log(f"  validation after run {epoch}: {score:.5g}{'  (best so far, saved)' if improved else ''}")
        return score

