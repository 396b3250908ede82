"""The meta-training loop: runs, validation with early stopping, resumable checkpoints.

``meta_train`` drives meta-trainers over ``num_epochs`` optimizee runs (one run =
``num_steps`` optimizee steps = several unrolls; ``num_epochs`` counts runs, the binaries'
``--num_runs``). Each run trains on a problem drawn from the problems given (a task
distribution; one problem is the paper's setting) by ``problem_source.ProblemSource``.
The loop is assembled from parts with one job each: a gradient estimator
(``l2l_tf.estimators``; truncated BPTT by default) inside the meta-trainers of
``problem_source.TrainerPool``, a ``validation.Validator`` that scores the rule every
``validation_every`` runs and writes the best-scoring rule to ``save_path/best`` (early
stopping, as in the paper), a ``training_state.TrainingState`` checkpointed to
``save_path/train`` (rule, meta-optimizer slots, counters, best record) so a killed run
resumes where it stopped, and a ``progress.Reporter`` for summaries and progress lines.

Under a ``tf.distribute`` strategy (``MirroredStrategy`` on one machine's devices,
``MultiWorkerMirroredStrategy`` across machines) each epoch is a meta-batch of one run per
replica (``l2l_tf.distributed_meta``) of the epoch's problem. The chief alone validates and
writes checkpoints, summaries and ``best/``; it restores a checkpoint and every other worker
takes its state by broadcast, so a job killed anywhere resumes when restarted with the same
command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import distributed, progress, seeds, summaries
from l2l_tf.distributed_meta import DistributedMetaTrainer
from l2l_tf.meta import MetaConfig, MetaTrainer, UnrollResult
from l2l_tf.problem_source import EstimatorFactory, ProblemSource, TrainerPool
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.run_config import RunConfig
from l2l_tf.training_state import (  # re-exported: l2l_tf.training.IncompatibleResumeError etc.
    RUN_CONFIG_FILE,
    IncompatibleResumeError,
    TrainingState,
    check_run_config,
    restore_newest_readable,
)
from l2l_tf.validation import Validator, validation_score

__all__ = [
    "RUN_CONFIG_FILE", "IncompatibleResumeError", "TrainingOptions", "TrainingSummary", "check_run_config",
    "meta_train", "restore_newest_readable", "rule_fingerprint", "validation_score",
]


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

    def due(self, every: int, epoch: int) -> bool:
        """Whether something done every ``every`` epochs (and after the last) is due after ``epoch``."""
        return epoch % every == 0 or epoch == self.num_epochs


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
    """What ``meta_train`` did: ``epochs`` done (= runs without a strategy), ``runs``, the best
    validation score and the epoch it was reached at, skipped meta-updates, reset optimizees,
    wall time of this call, replicas, the SHA-256 of the rule's weights, and (distributed)
    the seconds spent in each phase."""

    epochs: int
    runs: int
    best_validation_loss: float
    best_epoch: int
    skipped_updates: int
    reset_runs: int
    wall_seconds: float
    num_replicas: int
    rule_sha256: str
    seconds: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the binaries print it); ``seconds`` only when distributed."""
        values = dataclasses.asdict(self)
        if values["seconds"] is None:
            del values["seconds"]
        return values


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
    problem: Problem | Sequence[Problem],
    meta_config: MetaConfig,
    options: TrainingOptions,
    save_path: str,
    run_config: RunConfig | dict[str, Any] | None = None,
    logdir: str | None = None,
    log: Callable[[str], None] = print,
    strategy: tf.distribute.Strategy | None = None,
    on_run_end: Callable[[progress.RunReport], None] | None = None,
    validation_problems: Sequence[Problem] | None = None,
    estimator_factory: EstimatorFactory | None = None,
) -> TrainingSummary:
    """Meta-trains ``rule`` on ``problem`` (or a sequence of problems, one drawn per run)
    for ``options.num_epochs`` optimizee runs, resuming from ``save_path`` if it holds a run.

    Writes the best rule by validation score on ``validation_problems`` (default: the
    training problems; several are scored as in ``l2l_tf.validation``) to ``save_path/best``
    (export it with ``l2l_tf.export.export_checkpoint``), resumable checkpoints to
    ``save_path/train`` and TensorBoard summaries to ``logdir`` (default ``save_path/logs``).
    ``log`` gets a progress line every ``options.log_every`` runs, ``on_run_end`` a
    ``progress.RunReport`` after every run (``progress.progbar`` draws a bar).
    ``estimator_factory(rule, problem, meta_config)`` makes each problem's gradient
    estimator (default: the one ``meta_config`` names). With a ``strategy`` (``rule``
    created in its scope) each epoch is a meta-batch of one run per replica; only the chief
    writes and validates. ``run_config`` is stored with the run and its best rule.
    """
    chief = distributed.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    run_config = _with_replicas(run_config, replicas)
    if chief:
        check_run_config(save_path, run_config)
    source = ProblemSource(problem, options.seed)
    pool = TrainerPool(rule, source, meta_config, strategy, estimator_factory)
    state = TrainingState(rule, pool.meta_optimizer, pool.skipped_updates, save_path, chief)
    best_dir = os.path.join(save_path, "best")
    try:
        state.restore(strategy, best_dir, log)
        writer = validate = None
        if chief:
            writer = summaries.open_writer(logdir or os.path.join(save_path, "logs"), int(state.epoch),
                                           meta_config.num_steps, run_config.to_dict(), log)
            validate = Validator(rule, validation_problems or source.problems, meta_config, options.validation_runs,
                                 best_dir, run_config, state, writer, log)
            if int(state.epoch) == 0 and not os.path.isdir(best_dir):
                validate()  # the untrained rule is the first candidate
        start = time.time()
        reporter = progress.Reporter(options.num_epochs, options.log_every, meta_config.num_steps,
                                     meta_config.unroll_length, int(state.epoch), replicas, pool, log, writer, on_run_end)
        _training_loop(pool, options, state, reporter, validate, replicas)
        if writer is not None:
            writer.flush()
    finally:
        state.close()
    return TrainingSummary(
        int(state.epoch), int(state.epoch) * replicas, float(state.best_score), int(state.best_epoch),
        int(pool.skipped_updates.numpy()), int(state.resets), time.time() - start, replicas, rule_fingerprint(rule),
        pool.timings if strategy is not None else None,
    )


def _training_loop(pool: TrainerPool, options: TrainingOptions, state: TrainingState, reporter: progress.Reporter,
                   validate: Callable[[], Any] | None, replicas: int) -> None:
    """Epochs until ``options.num_epochs``: draw the problem, train, report, validate, checkpoint."""
    while int(state.epoch) < options.num_epochs:
        trainer = pool.trainer(int(state.epoch))
        run_seeds = [seeds.training_seed(int(state.epoch) * replicas + r, options.seed) for r in range(replicas)]
        results, diverged = _train_one_epoch(trainer, run_seeds, options.divergence_factor)
        if diverged:
            state.resets.assign_add(1)
        state.epoch.assign_add(1)
        epoch = int(state.epoch)
        reporter.run_finished(epoch, results, int(pool.skipped_updates.numpy()), int(state.resets), trainer.problem.name)
        if validate is not None and options.due(options.validation_every, epoch):
            validate()
        if options.due(options.checkpoint_every, epoch):
            state.save()
