"""The meta-training loop: runs, validation with early stopping, resumable checkpoints.

``meta_train`` drives a ``MetaTrainer`` over ``num_epochs`` optimizee runs (one run =
``num_steps`` optimizee steps = several unrolls; ``num_epochs`` counts runs, the binaries'
``--num_runs``). Every ``validation_every`` runs the
rule is scored on held-out validation runs; the best-scoring rule is written to
``save_path/best`` (early stopping, as in the paper). The whole training state (rule,
meta-optimizer slots, counters, best record) is checkpointed to ``save_path/train``
with ``tf.train.CheckpointManager``, so a killed run resumes where it stopped.

Under a ``tf.distribute`` strategy (``MirroredStrategy`` on one machine's devices,
``MultiWorkerMirroredStrategy`` across machines) each epoch is a meta-batch of one run per
replica (``l2l_tf.distributed_meta``). The chief alone validates and writes checkpoints,
summaries and ``best/``; it restores a checkpoint and every other worker takes its state
by broadcast, so a job killed anywhere resumes when restarted with the same command.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import checkpoints, distributed, progress, seeds, summaries
from l2l_tf.distributed_meta import DistributedMetaTrainer
from l2l_tf.evaluation import RuleRunner
from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.meta import MetaConfig, MetaTrainer, UnrollResult
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.run_config import RunConfig, RunConfigError

RUN_CONFIG_FILE = "run_config.json"


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


def check_run_config(save_path: str, run_config: RunConfig) -> None:
    """Writes ``run_config`` on a new save_path; on an existing one, refuses a changed
    ``Computation`` (its ``Schedule`` may change)."""
    path = os.path.join(save_path, RUN_CONFIG_FILE)
    if os.path.isfile(path):
        try:
            stored = read_json(path, "run config")
        except JsonFileError as error:
            raise IncompatibleResumeError(f"{error}. Restore it, or delete it to resume with the flags given now") from error
        if not isinstance(stored, dict):
            raise IncompatibleResumeError(f"{path}: not a JSON object. Restore it, or delete it to resume with the flags given now")
        try:
            previous = RunConfig.from_dict(stored)
        except RunConfigError as error:
            raise IncompatibleResumeError(f"{path}: {error}. Restore it, or delete it to resume with the flags given now") from error
        changed = previous.computation.differences(run_config.computation)
        if changed:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise IncompatibleResumeError(
                f"{save_path!r} holds a run with other settings ({details}). Resume with the"
                " same flags, or pass a new --save_path"
            )
    os.makedirs(save_path, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(run_config.to_dict(), f, indent=1, sort_keys=True)
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


class _TrainingState:
    """What a checkpoint holds, and where this worker keeps its checkpoints.

    The chief checkpoints to ``save_path/train``; other workers save to a temporary
    folder that ``close`` removes (saving is collective under some strategies), and
    take the chief's state through ``distributed.broadcast_from_chief``.
    """

    def __init__(self, rule: CoordinatewiseLSTM, trainer: Any, save_path: str, chief: bool):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_score = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.resets = tf.Variable(0, dtype=tf.int64, trainable=False, name="resets")
        self.checkpoint = tf.train.Checkpoint(
            rule=rule, meta_optimizer=trainer.meta_optimizer, epoch=self.epoch, best_score=self.best_score,
            best_epoch=self.best_epoch, resets=self.resets, skipped_updates=trainer.skipped_updates,
        )
        self.variables = [
            *rule.trainable_variables, *trainer.meta_optimizer.variables, self.epoch, self.best_score,
            self.best_epoch, self.resets, trainer.skipped_updates,
        ]
        self.directory = os.path.join(save_path, "train") if chief else tempfile.mkdtemp(prefix="l2l_worker_")
        self.chief = chief
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=2)

    def restore(self, strategy: tf.distribute.Strategy | None, best_dir: str, log: Callable[[str], None]) -> None:
        """Chief: repairs an interrupted replacement of ``best_dir`` and restores the newest
        readable checkpoint. Every worker then takes the chief's state."""
        if self.chief:
            recovered = checkpoints.recover_directory(best_dir)
            if recovered:
                log(f"WARNING: {recovered}")
            restored = restore_newest_readable(self.checkpoint, self.directory, log)
            if restored:
                log(
                    f"resumed from {restored}: run {int(self.epoch)}, best validation"
                    f" {float(self.best_score):.5g} after run {int(self.best_epoch)}"
                )
        if strategy is not None:
            distributed.broadcast_from_chief(strategy, self.variables)
            if not self.chief:
                log(f"took the chief's training state: epoch {int(self.epoch)}")

    def save(self) -> None:
        self.manager.save(checkpoint_number=int(self.epoch))

    def close(self) -> None:
        if not self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def _make_trainer(
    rule: CoordinatewiseLSTM, problem: Problem, meta_config: MetaConfig, strategy: tf.distribute.Strategy | None
) -> MetaTrainer | DistributedMetaTrainer:
    if strategy is None:
        return MetaTrainer(rule, problem, meta_config)
    return DistributedMetaTrainer(rule, problem, meta_config, strategy)


def _train_one_epoch(
    trainer: MetaTrainer | DistributedMetaTrainer, run_seeds: list[int], divergence_factor: float
) -> tuple[list[UnrollResult], bool]:
    """The unrolls of one run per replica; stops early (diverged) when any replica's
    optimizee loss is non-finite or grows ``divergence_factor`` times its first value."""
    if isinstance(trainer, MetaTrainer):
        unrolls = trainer.unrolls(run_seeds[0])
    else:
        unrolls = trainer.unrolls(run_seeds)
    results, first_losses = [], None
    for result in unrolls:
        results.append(result)
        step_losses = np.atleast_2d(np.asarray(result.step_losses))  # [replicas, steps]
        first_losses = step_losses[:, 0] if first_losses is None else first_losses
        limit = divergence_factor * np.maximum(np.abs(first_losses), 1e-8)
        if not np.all(np.isfinite(step_losses)) or np.any(step_losses.max(axis=1) > limit):
            return results, True
    return results, False


def rule_fingerprint(rule: CoordinatewiseLSTM) -> str:
    """SHA-256 of the rule's weights (identical rules, identical bytes)."""
    digest = hashlib.sha256()
    for variable in rule.trainable_variables:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()


def _with_replicas(run_config: RunConfig | dict[str, Any] | None, replicas: int) -> RunConfig:
    """``run_config`` as a ``RunConfig`` that records the number of replicas."""
    if not isinstance(run_config, RunConfig):
        run_config = RunConfig.from_dict(run_config or {})
    return dataclasses.replace(run_config, computation=dataclasses.replace(run_config.computation, num_replicas=replicas))


def meta_train(
    rule: CoordinatewiseLSTM,
    problem: Problem,
    meta_config: MetaConfig,
    options: TrainingOptions,
    save_path: str,
    run_config: RunConfig | dict[str, Any] | None = None,
    logdir: str | None = None,
    log: Callable[[str], None] = print,
    strategy: tf.distribute.Strategy | None = None,
    on_run_end: Callable[[progress.RunReport], None] | None = None,
) -> dict[str, Any]:
    """Meta-trains ``rule`` on ``problem`` for ``options.num_epochs`` optimizee runs,
    resuming from ``save_path`` if it holds a run.

    Writes the best rule by validation score to ``save_path/best`` (export it with
    ``l2l_tf.export.export_checkpoint``), resumable checkpoints to ``save_path/train`` and
    TensorBoard summaries to ``logdir`` (default ``save_path/logs``; ``l2l_tf.summaries``).
    ``log`` receives a progress line every ``options.log_every`` runs (elapsed time, ETA);
    ``on_run_end`` a ``progress.RunReport`` after every run (``progress.progbar`` draws a bar).

    With a ``strategy`` (``rule`` created in its scope), each epoch is a meta-batch of one
    run per replica (run ``epoch * replicas + replica``; ``DistributedMetaTrainer``); only
    the chief writes to ``save_path`` and validates. Returns a summary: epochs (= runs
    without a strategy) done, runs, best validation score and epoch, skipped updates,
    reset optimizees, wall time. ``run_config`` (a ``RunConfig``, or its ``to_dict``
    object) is stored with the run and its best rule.
    """
    chief = distributed.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    run_config = _with_replicas(run_config, replicas)
    if chief:
        check_run_config(save_path, run_config)
    trainer = _make_trainer(rule, problem, meta_config, strategy)
    state = _TrainingState(rule, trainer, save_path, chief)
    try:
        state.restore(strategy, os.path.join(save_path, "best"), log)
        writer = summaries.open_writer(logdir or os.path.join(save_path, "logs"), int(state.epoch), meta_config.num_steps,
                                       run_config.to_dict(), log) if chief else None
        validate = _Validator(rule, problem, meta_config, options, save_path, run_config, state, writer, log) if chief else None
        if validate is not None and int(state.epoch) == 0 and not os.path.isdir(validate.best_dir):
            validate()  # the untrained rule is the first candidate
        start = time.time()
        _training_loop(trainer, options, meta_config, state, writer, validate, replicas, log, on_run_end)
    finally:
        state.close()
    return {
        "epochs": int(state.epoch),
        "runs": int(state.epoch) * replicas,
        "best_validation_loss": float(state.best_score),
        "best_epoch": int(state.best_epoch),
        "skipped_updates": int(trainer.skipped_updates.numpy()),
        "reset_runs": int(state.resets),
        "wall_seconds": time.time() - start,
        "num_replicas": replicas,
        "rule_sha256": rule_fingerprint(rule),
        **({"seconds": dict(trainer.timings)} if strategy is not None else {}),
    }


class _Validator:
    """Scores the rule on the validation runs, logs it and keeps the best rule (chief only)."""

    def __init__(self, rule: CoordinatewiseLSTM, problem: Problem, meta_config: MetaConfig, options: TrainingOptions,
                 save_path: str, run_config: RunConfig, state: _TrainingState, writer: Any,
                 log: Callable[[str], None]):
        self.rule, self.meta_config, self.run_config = rule, meta_config, run_config
        self.state, self.writer, self.log = state, writer, log
        self.runner = RuleRunner(rule, problem, meta_config.num_steps, meta_config.jit_compile)
        self.seeds = seeds.validation_seeds(options.validation_runs)
        self.best_dir = os.path.join(save_path, "best")

    def __call__(self) -> None:
        state, epoch = self.state, int(self.state.epoch)
        score = validation_score(self.runner, self.seeds, self.meta_config)
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("validation_loss", score)
        improved = score < float(state.best_score)
        if improved:
            state.best_score.assign(score)
            state.best_epoch.assign(epoch)
            checkpoints.save_rule(
                self.rule, self.best_dir, {"epoch": epoch, "validation_loss": score, "run_config": self.run_config.to_dict()}
            )
        self.log(f"  validation after run {epoch}: {score:.5g}{'  (best so far, saved)' if improved else ''}")


def _training_loop(trainer: Any, options: TrainingOptions, meta_config: MetaConfig, state: _TrainingState,
                   writer: Any, validate: Callable[[], None] | None, replicas: int,
                   log: Callable[[str], None], on_run_end: Callable[[progress.RunReport], None] | None = None) -> None:
    """Epochs until ``options.num_epochs``: train, summarise, report, log, validate, checkpoint."""
    window = progress.ProgressLine(trainer, replicas)
    clock = progress.Clock(int(state.epoch), options.num_epochs)
    while int(state.epoch) < options.num_epochs:
        run_seeds = [seeds.training_seed(int(state.epoch) * replicas + r, options.seed) for r in range(replicas)]
        results, diverged = _train_one_epoch(trainer, run_seeds, options.divergence_factor)
        window.add(results, meta_config.unroll_length)
        if diverged:
            state.resets.assign_add(1)
        state.epoch.assign_add(1)
        epoch, elapsed = int(state.epoch), clock.elapsed()
        curve = np.concatenate([np.atleast_2d(np.asarray(r.step_losses)).mean(axis=0) for r in results])
        report = progress.RunReport(
            epoch, options.num_epochs, progress.per_step_meta_loss(results, meta_config.unroll_length), float(curve[-1]),
            float(np.mean([float(r.meta_gradient_norm) for r in results])), elapsed, clock.eta(epoch, elapsed),
        )
        if writer is not None:
            summaries.write_run(writer, epoch, meta_config.num_steps, curve, {
                "meta_loss_per_step": report.meta_loss_per_step, "meta_gradient_norm": report.meta_gradient_norm,
                "optimizee/final_loss": report.final_loss, "elapsed_seconds": elapsed,
            })
        if on_run_end is not None:
            on_run_end(report)
        if epoch % options.log_every == 0 or epoch == options.num_epochs:
            log(window.line(report, results, int(trainer.skipped_updates.numpy()), int(state.resets)))
        if validate is not None and (epoch % options.validation_every == 0 or epoch == options.num_epochs):
            validate()
        if epoch % options.checkpoint_every == 0 or epoch == options.num_epochs:
            state.save()
    if writer is not None:
        writer.flush()
