"""The meta-training loop: runs, validation with early stopping, resumable checkpoints.

``meta_train`` drives a ``MetaTrainer`` over ``num_epochs`` optimizee runs (one run =
``num_steps`` optimizee steps = several unrolls; ``num_epochs`` counts runs, the binaries'
``--num_runs``). Every ``validation_every`` runs the
rule is scored on held-out validation runs; the best-scoring rule is written to
``save_path/best`` (early stopping, as in the paper). The whole training state (rule,
meta-optimizer slots, counters, best record) is checkpointed to ``save_path/train``
with ``tf.train.CheckpointManager``, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import checkpoints, progress, seeds, summaries
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaTrainer
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM

RUN_CONFIG_FILE = "run_config.json"
# Settings added after runs were first written, with the value older runs implicitly used.
IMPLICIT_DEFAULTS = {"meta_loss_weighting": "uniform", "meta_objective": "loss", "momentum_decays": [],
                     "meta_gradient_accumulation": 1, "problem_fn": None}
# Keys of the run config that may change when resuming (more epochs, logging, XLA on/off,
# recomputation, coordinate shards: none of them changes what is computed).
RESUMABLE_KEYS = {"num_epochs", "log_every", "validation_every", "checkpoint_every", "logdir", "export_dir", "jit_compile", "command",
                  "recompute_segment", "coordinate_shards"}


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    num_epochs: int = 100
    validation_every: int = 20
    validation_runs: int = 8
    checkpoint_every: int = 10
    log_every: int = 10
    seed: int = 0
    divergence_factor: float = 1e3  # an optimizee whose loss grows this much is reset

    def __post_init__(self) -> None:
        for name in ("num_epochs", "validation_every", "validation_runs", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class IncompatibleResumeError(ValueError):
    """A save_path holds a run whose settings differ from the ones given now."""


def check_run_config(save_path: str, run_config: dict[str, Any]) -> None:
    """Writes ``run_config`` on a new save_path; on an existing one, refuses changed settings."""
    path = os.path.join(save_path, RUN_CONFIG_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            previous = {**IMPLICIT_DEFAULTS, **json.load(f)}
        current = {**IMPLICIT_DEFAULTS, **run_config}
        changed = {
            k: (previous.get(k), current.get(k))
            for k in set(previous) | set(current)
            if k not in RESUMABLE_KEYS and previous.get(k) != current.get(k)
        }
        if changed:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise IncompatibleResumeError(
                f"{save_path!r} holds a run with other settings ({details}). Resume with the"
                " same flags, or pass a new --save_path"
            )
    os.makedirs(save_path, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(run_config, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def validation_score(
    runner: RuleRunner, validation_seeds: list[int], meta_config: MetaConfig | None = None
) -> float:
    """The meta-objective on the validation runs: the mean over steps and runs of
    ``w_t g(loss_t)`` (``meta_config``'s step weights and objective; default the plain mean loss)."""
    curves = np.stack([runner.run(seed)[0] for seed in validation_seeds])
    if meta_config is not None:
        curves = meta_config.objective(tf.constant(curves)).numpy() * meta_config.step_weights()
    score = float(np.mean(curves))
    return score if math.isfinite(score) else math.inf


@dataclasses.dataclass
class RunResult:
    """One optimizee run of meta-training: its loss curve (up to a divergence), each
    unroll's meta-loss per step and meta-gradient norm."""

    step_losses: np.ndarray
    meta_losses_per_step: list[float]
    meta_gradient_norms: list[float]
    diverged: bool


def train_run(trainer: MetaTrainer, seed: int, divergence_factor: float) -> RunResult:
    """Meta-trains over optimizee run ``seed``; stops early (``diverged``) if the optimizee's
    loss turns non-finite or grows ``divergence_factor``-fold."""
    curves, meta_losses, norms = [], [], []
    for result in trainer.unrolls(seed):
        curves.append(result["step_losses"].numpy())
        meta_losses.append(float(result["meta_loss"]) / trainer.config.unroll_length)
        norms.append(float(result["meta_gradient_norm"]))
        limit = divergence_factor * max(abs(float(curves[0][0])), 1e-8)
        if not np.all(np.isfinite(curves[-1])) or np.max(curves[-1]) > limit:
            return RunResult(np.concatenate(curves), meta_losses, norms, True)
    return RunResult(np.concatenate(curves), meta_losses, norms, False)


def meta_train(
    rule: CoordinatewiseLSTM,
    problem: Problem,
    meta_config: MetaConfig,
    options: TrainingOptions,
    save_path: str,
    run_config: dict[str, Any] | None = None,
    logdir: str | None = None,
    log: Callable[[str], None] = print,
    on_run_end: Callable[[progress.RunReport], None] | None = None,
) -> dict[str, Any]:
    """Meta-trains ``rule`` on ``problem`` for ``options.num_epochs`` optimizee runs,
    resuming from ``save_path`` if it holds a run.

    Writes the best rule by validation score to ``save_path/best`` (export it with
    ``l2l_tf.export.export_checkpoint``), resumable checkpoints to ``save_path/train`` and
    TensorBoard summaries to ``logdir`` (default ``save_path/logs``; ``l2l_tf.summaries``).
    ``log`` receives a progress line every ``options.log_every`` runs (elapsed time, ETA);
    ``on_run_end`` a ``progress.RunReport`` after every run (``progress.progbar`` draws a bar).

    Returns a summary: runs done, best validation score and its run, skipped updates,
    reset optimizees, wall time.
    """
    check_run_config(save_path, run_config or {})
    trainer = MetaTrainer(rule, problem, meta_config)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_score = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_score")
    best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
    resets = tf.Variable(0, dtype=tf.int64, trainable=False, name="resets")
    state = tf.train.Checkpoint(
        rule=rule,
        meta_optimizer=trainer.meta_optimizer,
        epoch=epoch,
        best_score=best_score,
        best_epoch=best_epoch,
        resets=resets,
        skipped_updates=trainer.skipped_updates,
    )
    manager = tf.train.CheckpointManager(state, os.path.join(save_path, "train"), max_to_keep=2)
    if manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(
            f"resumed from {manager.latest_checkpoint}: run {int(epoch)}, best validation"
            f" {float(best_score):.5g} after run {int(best_epoch)}"
        )
    writer = _summary_writer(logdir or os.path.join(save_path, "logs"), int(epoch), meta_config, run_config, log)
    validator = RuleRunner(rule, problem, meta_config.num_steps, meta_config.jit_compile)
    validation_seeds = seeds.validation_seeds(options.validation_runs)
    best_dir = os.path.join(save_path, "best")

    def validate() -> None:
        score = validation_score(validator, validation_seeds, meta_config)
        with writer.as_default(step=int(epoch)):
            tf.summary.scalar("validation_loss", score)
        improved = score < float(best_score)
        if improved:
            best_score.assign(score)
            best_epoch.assign(int(epoch))
            checkpoints.save_rule(
                rule, best_dir, {"epoch": int(epoch), "validation_loss": score, "run_config": run_config}
            )
        log(f"  validation after run {int(epoch)}: {score:.5g}{'  (best so far, saved)' if improved else ''}")

    if int(epoch) == 0 and not os.path.isdir(best_dir):
        validate()  # the untrained rule is the first candidate
    start, clock, window = time.time(), progress.Clock(int(epoch), options.num_epochs), _LogWindow()
    while int(epoch) < options.num_epochs:
        result = train_run(trainer, seeds.training_seed(int(epoch), options.seed), options.divergence_factor)
        resets.assign_add(int(result.diverged))
        epoch.assign_add(1)
        elapsed = clock.elapsed()
        report = progress.RunReport(
            int(epoch), options.num_epochs, float(np.mean(result.meta_losses_per_step)),
            float(result.step_losses[-1]), float(np.mean(result.meta_gradient_norms)), elapsed,
            clock.eta(int(epoch), elapsed),
        )
        summaries.write_run(writer, report.run, meta_config.num_steps, result.step_losses, {
            "meta_loss_per_step": report.meta_loss_per_step, "meta_gradient_norm": report.meta_gradient_norm,
            "optimizee/final_loss": report.final_loss, "elapsed_seconds": report.elapsed_seconds,
        })
        window.add(result, len(result.meta_losses_per_step) * meta_config.unroll_length)
        if on_run_end is not None:
            on_run_end(report)
        if int(epoch) % options.log_every == 0 or int(epoch) == options.num_epochs:
            log(window.line(report, int(trainer.skipped_updates), int(resets)))
        if int(epoch) % options.validation_every == 0 or int(epoch) == options.num_epochs:
            validate()
        if int(epoch) % options.checkpoint_every == 0 or int(epoch) == options.num_epochs:
            manager.save(checkpoint_number=int(epoch))
    writer.flush()
    return {
        "runs": int(epoch),
        "best_validation_loss": float(best_score),
        "best_run": int(best_epoch),
        "skipped_updates": int(trainer.skipped_updates),
        "reset_runs": int(resets),
        "wall_seconds": time.time() - start,
    }


def _summary_writer(
    logdir: str, run: int, meta_config: MetaConfig, run_config: dict[str, Any] | None, log: Callable[[str], None]
) -> Any:
    """The TensorBoard writer; on a resume, first drops what was logged after the
    checkpoint (so no step repeats); on a fresh start, records the hyper-parameters."""
    if run > 0:
        dropped = summaries.drop_after(logdir, run, meta_config.num_steps)
        if dropped:
            log(f"TensorBoard: dropped {dropped} values logged after run {run}, the checkpoint resumed from")
    writer = tf.summary.create_file_writer(logdir)
    if run == 0:
        summaries.write_hparams(writer, run_config or {})
    return writer


class _LogWindow:
    """Averages over the runs since the last progress line."""

    def __init__(self) -> None:
        self.meta_losses: list[float] = []
        self.norms: list[float] = []
        self.steps, self.start = 0, time.monotonic()

    def add(self, result: RunResult, steps: int) -> None:
        self.meta_losses += result.meta_losses_per_step
        self.norms += result.meta_gradient_norms
        self.steps += steps

    def line(self, report: progress.RunReport, skipped: int, resets: int) -> str:
        """The progress line, then a new window."""
        rate = self.steps / max(time.monotonic() - self.start, 1e-9)
        text = (
            f"run {report.run}/{report.num_runs}  meta-loss/step {np.mean(self.meta_losses):.5g}"
            f"  |meta-grad| {np.mean(self.norms):.3g}  {rate:.1f} optimizee steps/s  skipped {skipped}"
            f"  resets {resets}  elapsed {progress.format_duration(report.elapsed_seconds)}"
            f"  ETA {progress.format_duration(report.eta_seconds)}"
        )
        self.__init__()
        return text
