"""Run learned rules and tuned baselines over optimizee runs; tables, curves and plots.

Every optimizer is run by a compiled trajectory function over ``num_steps`` steps and
reports ``losses[t]``, the mean loss at the parameters of step ``t`` on step ``t``'s
batch, for ``t = 0..num_steps`` (so ``losses[-1]`` is the loss after the last update).
Baselines are Keras optimizers whose learning rate is chosen by grid search on
*tuning* seeds, which must be disjoint from the *evaluation* seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import baselines, rule_sets
from l2l_tf.layout import (
    TensorLayout,
    needs_layout,
    needs_progress,
    rule_step,
    run_progress,
)
from l2l_tf.meta import loss_gradient_and_state, step_batch
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rule_base import compiled_function
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule


def run_batches(problem: Problem, seed: int, num_steps: int, split: str = "train") -> Batch:
    """The ``num_steps + 1`` per-step batches of run ``seed``, stacked ``[T + 1, ...]``."""
    dataset = problem.batches(seed, split).batch(num_steps + 1, drop_remainder=True)
    return next(iter(dataset.take(1)))


def run_start(problem: Problem, seed: int, num_steps: int) -> tuple[tf.Tensor, Batch]:
    """Run ``seed``'s flat initial parameters and its ``run_batches``, drawn in this order (a
    problem with Keras' initialisers sets the global seeds, which the data order depends on)."""
    params = problem.flatten(problem.initial_params(seed))
    return params, run_batches(problem, seed, num_steps)


# How an optimizer moves the parameters in ``trajectory``:
# ``advance(params, gradients, state) -> (new_params, new_state)``.
Advance = Callable[[tf.Tensor, tf.Tensor, Any], tuple[tf.Tensor, Any]]


def trajectory(
    problem: Problem, num_steps: int, params: tf.Tensor, batches: Batch, state: Any, advance: Advance,
    optimizee_state: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The one optimizee loop of evaluation, for learned rules and hand-designed baselines
    alike (as in the 2016 release): ``num_steps`` steps of ``advance`` on the gradients of
    step ``t``'s batch, carrying the optimizee state (e.g. BatchNorm statistics; default the
    problem's empty ``[0]`` state) from step to step and into the final loss. Returns
    ``(losses, params, optimizee_state)``: ``losses[t]`` (``t = 0..num_steps``) is
    the mean loss at the parameters step ``t`` starts from, on step ``t``'s batch, so the
    *final loss* ``losses[-1]`` is the loss after the last update on batch ``num_steps``.

    (Meta-training's unroll, which must differentiate through the rule, is its own loop in
    ``meta.unroll_with_state``; there the last term is evaluated on the last step's batch, so that
    every update receives meta-gradient.)
    """
    if optimizee_state is None:
        optimizee_state = tf.zeros([problem.state_size])
    losses = tf.TensorArray(tf.float32, size=num_steps + 1)
    for t in tf.range(num_steps):
        step_losses, gradients, optimizee_state = loss_gradient_and_state(
            problem, params, optimizee_state, step_batch(batches, t)
        )
        losses = losses.write(t, tf.reduce_mean(step_losses))
        params, state = advance(params, gradients, state)
    final, _ = problem.flat_loss_and_state(params, optimizee_state, step_batch(batches, num_steps))
    losses = losses.write(num_steps, tf.reduce_mean(final))
    return losses.stack(), params, optimizee_state


def _trajectory_function(problem: Problem, num_steps: int, run: Callable, jit_compile: bool) -> Callable:
    """``run(params, optimizee_state, batches)`` compiled once for ``problem``'s flat
    parameters, its optimizee state and the ``num_steps + 1`` stacked batches of a run."""
    signature = [
        tf.TensorSpec([problem.num_coordinates], tf.float32),
        tf.TensorSpec([problem.state_size], tf.float32),
        problem.stacked_batch_spec(num_steps + 1),
    ]
    return compiled_function(run, jit_compile, input_signature=signature)


class RuleRunner:
    """Runs a ``Rule`` (or a ``RuleSet``, bound to the problem's parameters) through
    ``trajectory`` (no meta-gradient). A rule that reads its run's progress is told
    ``t / total_steps`` (default ``total_steps``: ``num_steps``; 1 past it)."""

    def __init__(self, rule: Rule | RuleSet, problem: Problem, num_steps: int, jit_compile: bool = True,
                 total_steps: int | None = None):
        self.rule, self.problem, self.num_steps = rule_sets.for_problem(rule, problem), problem, num_steps
        self.layout = TensorLayout.from_shapes(problem.param_shapes()) if needs_layout(self.rule) else None
        self.total_steps = total_steps or num_steps
        # optimizee steps taken in the current run (what a progress-reading rule is told)
        self.steps_taken = tf.Variable(0, trainable=False, name="steps_taken")
        self._trajectory = _trajectory_function(problem, num_steps, self._run, jit_compile)

    def _advance(self, params: tf.Tensor, gradients: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        progress = None
        if needs_progress(self.rule):
            progress = run_progress(self.steps_taken, self.total_steps)
            self.steps_taken.assign_add(1)
        update, state = rule_step(self.rule, gradients, state, self.layout, params, progress=progress)
        return params + update, state

    def _run(
        self, params: tf.Tensor, optimizee_state: tf.Tensor, batches: Batch
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        self.steps_taken.assign(0)
        state = self.rule.init_state(self.problem.num_coordinates)
        return trajectory(self.problem, self.num_steps, params, batches, state, self._advance, optimizee_state)

    def run_with_state(self, seed: int) -> tuple[np.ndarray, tf.Tensor, tf.Tensor]:
        """Run ``seed``'s loss curve, final parameters and final optimizee state."""
        params, batches = run_start(self.problem, seed, self.num_steps)
        losses, params, optimizee_state = self._trajectory(params, self.problem.initial_state(seed), batches)
        return losses.numpy(), params, optimizee_state

    def run(self, seed: int) -> tuple[np.ndarray, tf.Tensor]:
        """Run ``seed``'s loss curve ``[num_steps + 1]`` and final flat parameters."""
        return self.run_with_state(seed)[:2]


class BaselineRunner:
    """Runs Keras optimizer ``name`` through ``trajectory``, for any learning rate.

    The optimizer, its slots and a parameter variable are built once; each run resets
    them, so one compiled trajectory serves the whole learning-rate grid. Each step writes
    the parameters into the variable and lets Keras apply the gradients to it.
    """

    def __init__(self, name: str, problem: Problem, num_steps: int, jit_compile: bool = True):
        self.name, self.problem, self.num_steps = name, problem, num_steps
        self.params = tf.Variable(tf.zeros([problem.num_coordinates]), name="params")
        self.optimizer = baselines.make_baseline(name, 1e-3)
        self.optimizer.build([self.params])
        self._trajectory = _trajectory_function(problem, num_steps, self._run, jit_compile)

    def _advance(self, params: tf.Tensor, gradients: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self.params.assign(params)
        self.optimizer.apply_gradients([(gradients, self.params)])
        return tf.convert_to_tensor(self.params), state

    def _run(
        self, params: tf.Tensor, optimizee_state: tf.Tensor, batches: Batch
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # The Keras optimizer keeps its state in its own variables; the loop carries none.
        return trajectory(self.problem, self.num_steps, params, batches, tf.zeros([0]), self._advance, optimizee_state)

    def run_with_state(
        self, seed: int, learning_rate: float, start: tuple[tf.Tensor, Batch] | None = None
    ) -> tuple[np.ndarray, tf.Tensor, tf.Tensor]:
        """Run ``seed``'s loss curve, final parameters and final optimizee state (``start``:
        the run's ``run_start``, if the caller has it already)."""
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        self.optimizer.learning_rate.assign(learning_rate)
        params, batches = run_start(self.problem, seed, self.num_steps) if start is None else start
        losses, params, optimizee_state = self._trajectory(params, self.problem.initial_state(seed), batches)
        return losses.numpy(), params, optimizee_state

    def run(self, seed: int, learning_rate: float) -> tuple[np.ndarray, tf.Tensor]:
        """Run ``seed``'s loss curve ``[num_steps + 1]`` and final flat parameters."""
        return self.run_with_state(seed, learning_rate)[:2]


@dataclasses.dataclass
class OptimizerResult:
    """Loss curves ``[runs, num_steps + 1]`` and end-of-run metrics of one optimizer."""

    name: str
    curves: np.ndarray
    metrics: list[dict[str, float]]
    learning_rate: float | None = None

    def summary(self) -> dict[str, Any]:
        finals = self.curves[:, -1]
        out = {
            "optimizer": self.name,
            "learning_rate": self.learning_rate,
            "runs": len(finals),
            "final_loss_mean": float(np.mean(finals)),
            "final_loss_std": float(np.std(finals)),
            "final_loss_median": float(np.median(finals)),
        }
        for key in sorted({k for m in self.metrics for k in m}):
            values = np.asarray([m[key] for m in self.metrics], dtype=np.float64)
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values))
        return out


def _collect(name: str, problem: Problem, run: Any, seeds: Sequence[int], learning_rate: float | None = None) -> OptimizerResult:
    curves, metrics = [], []
    for seed in seeds:
        losses, params, state = run(seed)
        curves.append(losses)
        metrics.append(problem.metrics(problem.unflatten(params), seed, state))
    return OptimizerResult(name, np.stack(curves), metrics, learning_rate)


def evaluate_rule(name: str, runner: RuleRunner, seeds: Sequence[int]) -> OptimizerResult:
    """Loss curves and metrics of a rule over runs ``seeds``."""
    return _collect(name, runner.problem, runner.run_with_state, seeds)


def evaluate_baseline(runner: BaselineRunner, seeds: Sequence[int], learning_rate: float) -> OptimizerResult:
    """Loss curves and metrics of a baseline at ``learning_rate`` over runs ``seeds``."""
    return _collect(runner.name, runner.problem, lambda seed: runner.run_with_state(seed, learning_rate), seeds, learning_rate)


def check_disjoint(tuning_seeds: Sequence[int], evaluation_seeds: Sequence[int]) -> None:
    shared = sorted(set(tuning_seeds) & set(evaluation_seeds))
    if shared:
        raise ValueError(
            f"tuning and evaluation seeds overlap at {shared[:5]}: baselines must be tuned on"
            " seeds never used for evaluation"
        )


def format_table(results: Sequence[OptimizerResult], step: int | None = None) -> str:
    """A plain-text table of final losses (and metrics), lowest mean loss first."""
    rows = sorted((r.summary() for r in results), key=lambda s: s["final_loss_mean"])
    metric_keys = sorted({k[:-5] for s in rows for k in s if k.endswith("_mean") and not k.startswith("final_loss")})
    label = f"loss@{step}" if step is not None else "final loss"
    header = f"{'optimizer':<12}{'lr':>10}{'runs':>6}{label + ' mean':>18}{'std':>12}{'median':>12}"
    header += "".join(f"{k + ' mean':>20}" for k in metric_keys)
    lines = [header, "-" * len(header)]
    for s in rows:
        lr = "-" if s["learning_rate"] is None else f"{s['learning_rate']:g}"
        line = (
            f"{s['optimizer']:<12}{lr:>10}{s['runs']:>6}{s['final_loss_mean']:>18.5g}"
            f"{s['final_loss_std']:>12.4g}{s['final_loss_median']:>12.4g}"
        )
        line += "".join(f"{s[k + '_mean']:>14.4f} ± {s[k + '_std']:.3f}" for k in metric_keys)
        lines.append(line)
    return "\n".join(lines)


def paired_comparison(rule: OptimizerResult, others: Sequence[OptimizerResult]) -> list[dict[str, Any]]:
    """``rule`` against each of ``others`` on the same runs (same seeds, so the same initial
    parameters and batches): ratio of mean final losses, the mean per-run difference with
    its standard error, and the share of runs where ``rule`` ends lower."""
    rows = []
    for other in others:
        if other.curves.shape[0] != rule.curves.shape[0]:
            raise ValueError(f"{rule.name} and {other.name} must be run on the same seeds")
        # float64 whatever the curves' storage (float32 when run, float64 when read back from JSON),
        # so a comparison of the same runs gives the same numbers however they were obtained.
        finals, other_finals = (np.asarray(r.curves[:, -1], np.float64) for r in (rule, other))
        difference = finals - other_finals
        runs = len(difference)
        rows.append({
            "optimizer": other.name,
            "ratio_of_means": float(np.mean(finals) / np.mean(other_finals)),
            "mean_difference": float(np.mean(difference)),
            "difference_standard_error": float(np.std(difference, ddof=1) / math.sqrt(runs)) if runs > 1 else float("nan"),
            "share_of_runs_lower": float(np.mean(difference < 0)),
        })
    return rows


def format_comparison(rule_name: str, comparison: Sequence[dict[str, Any]]) -> str:
    """``paired_comparison``'s rows as plain text, one line per other optimizer."""
    lines = [f"{rule_name} vs each baseline, paired over the same runs (final loss):"]
    for row in comparison:
        lines.append(
            f"  vs {row['optimizer']:<10} ratio {row['ratio_of_means']:.3f}   difference"
            f" {row['mean_difference']:+.4f} ± {row['difference_standard_error']:.4f} (s.e.)"
            f"   lower in {row['share_of_runs_lower']:.0%} of runs"
        )
    return "\n".join(lines)


CURVES_FILE = "curves.npz"


def write_curves(results: Sequence[OptimizerResult], path: str, extra: dict | None = None) -> None:
    """Writes summaries, per-run metrics (and ``extra``) as JSON to ``path``, and the
    per-step curves, one ``[runs, num_steps + 1]`` array per optimizer, compressed to
    ``curves.npz`` beside it."""
    curves_path = os.path.join(os.path.dirname(os.path.abspath(path)), CURVES_FILE)
    np.savez_compressed(curves_path, **{r.name: r.curves for r in results})
    payload = {
        "summary": [r.summary() for r in results],
        "curves_file": CURVES_FILE,
        "run_metrics": {r.name: r.metrics for r in results},
        **(extra or {}),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)


def read_curves(directory: str) -> dict[str, np.ndarray]:
    """The per-step loss curves ``[runs, num_steps + 1]`` by optimizer of a ``train.evaluate
    --output_dir``: its ``curves.npz``, or the ``curves`` of an older ``results.json``."""
    npz_path = os.path.join(directory, CURVES_FILE)
    if os.path.isfile(npz_path):
        with np.load(npz_path) as stored:
            return {name: stored[name] for name in stored.files}
    json_path = os.path.join(directory, "results.json")
    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"{directory} has no {CURVES_FILE} or results.json: pass a train.evaluate --output_dir")
    with open(json_path) as f:
        results = json.load(f)
    if "curves" not in results:
        raise ValueError(f"{json_path} holds no curves and {CURVES_FILE} is missing beside it: re-run train.evaluate")
    return {name: np.asarray(curves) for name, curves in results["curves"].items()}


def read_results(path: str) -> tuple[dict[str, Any], dict[str, OptimizerResult]]:
    """The payload of ``write_curves`` at ``path`` and its optimizers' results (curves,
    per-run metrics, learning rates), by name. Raises ``ValueError`` for a file that is
    not such a payload."""
    try:
        with open(path) as f:
            payload = json.load(f)
        rates = {row["optimizer"]: row["learning_rate"] for row in payload["summary"]}
        curves = read_curves(os.path.dirname(os.path.abspath(path)))
        results = {
            name: OptimizerResult(name, np.asarray(values, np.float64), payload["run_metrics"][name], rates[name])
            for name, values in curves.items()
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a results.json written by train.evaluate ({error})") from error
    return payload, results


def plot_curves(results: Sequence[OptimizerResult], path: str, title: str) -> None:
    """Log-scale mean loss vs step, one line per optimizer, 25-75% band over runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in results:
        steps = np.arange(r.curves.shape[1])
        label = r.name if r.learning_rate is None else f"{r.name} (lr={r.learning_rate:g})"
        line, = ax.plot(steps, np.mean(r.curves, axis=0), label=label, lw=1.8 if r.learning_rate is None else 1.2)
        lo, hi = np.percentile(r.curves, [25, 75], axis=0)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over runs; band: 25-75%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
