"""The meta-training loop: runs, validation with early stopping, resumable checkpoints.

``meta_train`` drives a ``MetaTrainer`` over ``num_epochs`` optimizee runs (one run =
``num_steps`` optimizee steps = several unrolls). Every ``validation_every`` runs the
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

from l2l_tf import checkpoints, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.meta import MetaConfig, MetaTrainer
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM

RUN_CONFIG_FILE = "run_config.json"
# Settings added after runs were first written, with the value older runs implicitly used.
IMPLICIT_DEFAULTS = {"meta_loss_weighting": "uniform", "meta_objective": "loss", "momentum_decays": [],
                     "meta_gradient_accumulation": 1}
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
        changed = {
            k: (previous.get(k), run_config.get(k))
            for k in set(previous) | set(run_config)
            if k not in RESUMABLE_KEYS and previous.get(k) != run_config.get(k)
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


def meta_train(
    rule: CoordinatewiseLSTM,
    problem: Problem,
    meta_config: MetaConfig,
    options: TrainingOptions,
    save_path: str,
    run_config: dict[str, Any] | None = None,
    logdir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Meta-trains ``rule`` on ``problem``, resuming from ``save_path`` if it holds a run.

    Returns a summary: epochs done, best validation score and epoch, skipped updates,
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
    best_dir = os.path.join(save_path, "best")
    restored = _resume(state, save_path, best_dir, log)
    if restored:
        log(f"resumed from {restored}: epoch {int(epoch)}, best validation {float(best_score):.5g} at epoch {int(best_epoch)}")
    writer = tf.summary.create_file_writer(logdir or os.path.join(save_path, "logs"))
    validator = RuleRunner(rule, problem, meta_config.num_steps, meta_config.jit_compile)
    validation_seeds = seeds.validation_seeds(options.validation_runs)

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
        log(f"  validation at epoch {int(epoch)}: {score:.5g}{'  (best so far, saved)' if improved else ''}")

    if int(epoch) == 0 and not os.path.isdir(best_dir):
        validate()  # the untrained rule is the first candidate
    start, window_losses, window_norms, window_steps = time.time(), [], [], 0
    window_start = time.time()
    while int(epoch) < options.num_epochs:
        run_seed = seeds.training_seed(int(epoch), options.seed)
        first_loss = None
        diverged = False
        for result in trainer.unrolls(run_seed):
            step_losses = result["step_losses"].numpy()
            first_loss = step_losses[0] if first_loss is None else first_loss
            window_losses.append(float(result["meta_loss"]))
            window_norms.append(float(result["meta_gradient_norm"]))
            window_steps += meta_config.unroll_length
            limit = options.divergence_factor * max(abs(float(first_loss)), 1e-8)
            if not np.all(np.isfinite(step_losses)) or np.max(step_losses) > limit:
                diverged = True
                break
        if diverged:
            resets.assign_add(1)
        epoch.assign_add(1)
        with writer.as_default(step=int(epoch)):
            tf.summary.scalar("meta_loss", window_losses[-1])
            tf.summary.scalar("meta_gradient_norm", window_norms[-1])
        if int(epoch) % options.log_every == 0 or int(epoch) == options.num_epochs:
            rate = window_steps / max(time.time() - window_start, 1e-9)
            log(
                f"epoch {int(epoch)}/{options.num_epochs}  meta-loss {np.mean(window_losses):.5g}"
                f"  |meta-grad| {np.mean(window_norms):.3g}  {rate:.1f} optimizee steps/s"
                f"  skipped {int(trainer.skipped_updates)}  resets {int(resets)}"
            )
            window_losses, window_norms, window_steps = [], [], 0
            window_start = time.time()
        if int(epoch) % options.validation_every == 0 or int(epoch) == options.num_epochs:
            validate()
        if int(epoch) % options.checkpoint_every == 0 or int(epoch) == options.num_epochs:
            manager.save(checkpoint_number=int(epoch))
    writer.flush()
    return {
        "epochs": int(epoch),
        "best_validation_loss": float(best_score),
        "best_epoch": int(best_epoch),
        "skipped_updates": int(trainer.skipped_updates),
        "reset_runs": int(resets),
        "wall_seconds": time.time() - start,
    }

