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
import glob
import json
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import checkpoints, progress, seeds, summaries
from l2l_tf.evaluation import RuleRunner
from l2l_tf.json_files import JsonFileError, read_json
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
    """A save_path holds a run whose settings differ from the ones given now, or files
    that cannot be resumed from; the message names the file and the fix."""


def _checkpoint_number(index_path: str) -> int:
    match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index_path))
    return int(match.group(1)) if match else -1


def restore_newest_readable(state: tf.train.Checkpoint, directory: str, log: Callable[[str], None]) -> str | None:
    """Restores ``state`` from the newest checkpoint in ``directory`` that reads back
    whole, warning about each unreadable newer one (truncated or garbage data/index
    files); the ``checkpoint`` index file is not trusted (a bad one is only reported).
    Returns the prefix restored from, ``None`` for a fresh run."""
    indexes = [p for p in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")) if _checkpoint_number(p) >= 0]
    if indexes and tf.train.get_checkpoint_state(directory) is None:
        log(f"WARNING: {os.path.join(directory, 'checkpoint')} is missing or unreadable; using the files beside it")
    for index in sorted(indexes, key=_checkpoint_number, reverse=True):
        prefix = index[: -len(".index")]
        try:
            state.restore(prefix).assert_existing_objects_matched()
            return prefix
        except Exception as error:  # noqa: BLE001  (truncated files raise OpError, IndexError, ValueError...)
            log(f"WARNING: checkpoint {prefix} is unreadable ({str(error)[:120]}); trying an older one")
    if indexes:
        raise IncompatibleResumeError(
            f"no readable training checkpoint in {directory} (all of {sorted(map(os.path.basename, indexes))}"
            f" are damaged). Move {directory} aside to restart training from the saved best rule's run, or pass a"
            " new --save_path"
        )
    return None


def check_run_config(save_path: str, run_config: dict[str, Any]) -> None:
    """Writes ``run_config`` on a new save_path; on an existing one, refuses changed settings."""
    path = os.path.join(save_path, RUN_CONFIG_FILE)
    if os.path.isfile(path):
        try:
            stored = read_json(path, "run config")
        except JsonFileError as error:
            raise IncompatibleResumeError(f"{error}. Restore it, or delete it to resume with the flags given now") from error
        if not isinstance(stored, dict):
            raise IncompatibleResumeError(f"{path}: not a JSON object. Restore it, or delete it to resume with the flags given now")
        previous = {**IMPLICIT_DEFAULTS, **stored}
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


def _resume(state: tf.train.Checkpoint, save_path: str, best_dir: str, log: Callable[[str], None]) -> str | None:
    """Repairs an interrupted replacement of ``best_dir`` and restores ``state`` from the
    newest readable checkpoint; its prefix, or ``None`` for a fresh run."""
    recovered = checkpoints.recover_directory(best_dir)
    if recovered:
        log(f"WARNING: {recovered}")
    return restore_newest_readable(state, os.path.join(save_path, "train"), log)


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
    job = _Job(rule, problem, meta_config, options, save_path, run_config, log)
    restored = _resume(job.checkpoint, save_path, job.best_dir, log)
    if restored:
        log(f"resumed from {restored}: run {job.run}, best validation {float(job.best_score):.5g} after run {int(job.best_run)}")
    job.writer = _summary_writer(logdir or os.path.join(save_path, "logs"), job.run, meta_config, run_config, log)
    if job.run == 0 and not os.path.isdir(job.best_dir):
        job.validate()  # the untrained rule is the first candidate
    job.start_clock()
    while job.run < options.num_epochs:
        result = train_run(job.trainer, seeds.training_seed(job.run, options.seed), options.divergence_factor)
        report = job.record(result)
        if on_run_end is not None:
            on_run_end(report)
        job.log_validate_checkpoint(report)
    job.writer.flush()
    return job.summary()


class _Job:
    """The state of one meta-training job: the trainer, the counters checkpointed with the
    rule, the best-rule record, and what each finished run writes and logs."""

    def __init__(self, rule: CoordinatewiseLSTM, problem: Problem, meta_config: MetaConfig, options: TrainingOptions,
                 save_path: str, run_config: dict[str, Any] | None, log: Callable[[str], None]):
        self.rule, self.meta_config, self.options, self.run_config, self.log = rule, meta_config, options, run_config, log
        self.trainer = MetaTrainer(rule, problem, meta_config)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")  # runs done
        self.best_score = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.best_run = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.resets = tf.Variable(0, dtype=tf.int64, trainable=False, name="resets")
        self.checkpoint = tf.train.Checkpoint(
            rule=rule, meta_optimizer=self.trainer.meta_optimizer, epoch=self.epoch, best_score=self.best_score,
            best_epoch=self.best_run, resets=self.resets, skipped_updates=self.trainer.skipped_updates,
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(save_path, "train"), max_to_keep=2)
        self.best_dir = os.path.join(save_path, "best")
        self.validator = RuleRunner(rule, problem, meta_config.num_steps, meta_config.jit_compile)
        self.validation_seeds = seeds.validation_seeds(options.validation_runs)
        self.writer: Any = None

    @property
    def run(self) -> int:
        return int(self.epoch)

    def start_clock(self) -> None:
        self.start, self.clock, self.window = time.time(), progress.Clock(self.run, self.options.num_epochs), _LogWindow()

    def validate(self) -> None:
        """Scores the rule on the validation runs; keeps it in ``best_dir`` if it is the best."""
        score = validation_score(self.validator, self.validation_seeds, self.meta_config)
        with self.writer.as_default(step=self.run):
            tf.summary.scalar("validation_loss", score)
        improved = score < float(self.best_score)
        if improved:
            self.best_score.assign(score)
            self.best_run.assign(self.run)
            checkpoints.save_rule(
                self.rule, self.best_dir, {"epoch": self.run, "validation_loss": score, "run_config": self.run_config}
            )
        self.log(f"  validation after run {self.run}: {score:.5g}{'  (best so far, saved)' if improved else ''}")

    def record(self, result: RunResult) -> progress.RunReport:
        """Counts the finished run and writes its summaries; its report."""
        self.resets.assign_add(int(result.diverged))
        self.epoch.assign_add(1)
        elapsed = self.clock.elapsed()
        report = progress.RunReport(
            self.run, self.options.num_epochs, float(np.mean(result.meta_losses_per_step)),
            float(result.step_losses[-1]), float(np.mean(result.meta_gradient_norms)), elapsed,
            self.clock.eta(self.run, elapsed),
        )
        summaries.write_run(self.writer, report.run, self.meta_config.num_steps, result.step_losses, {
            "meta_loss_per_step": report.meta_loss_per_step, "meta_gradient_norm": report.meta_gradient_norm,
            "optimizee/final_loss": report.final_loss, "elapsed_seconds": report.elapsed_seconds,
        })
        self.window.add(result, len(result.meta_losses_per_step) * self.meta_config.unroll_length)
        return report

    def log_validate_checkpoint(self, report: progress.RunReport) -> None:
        """The progress line, validation and checkpoint, each when it is due."""
        last = self.run == self.options.num_epochs
        if self.run % self.options.log_every == 0 or last:
            self.log(self.window.line(report, int(self.trainer.skipped_updates), int(self.resets)))
        if self.run % self.options.validation_every == 0 or last:
            self.validate()
        if self.run % self.options.checkpoint_every == 0 or last:
            self.manager.save(checkpoint_number=self.run)

    def summary(self) -> dict[str, Any]:
        return {
            "runs": self.run,
            "best_validation_loss": float(self.best_score),
            "best_run": int(self.best_run),
            "skipped_updates": int(self.trainer.skipped_updates),
            "reset_runs": int(self.resets),
            "wall_seconds": time.time() - self.start,
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
