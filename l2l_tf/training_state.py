"""What a meta-training run checkpoints, and how a run is resumed safely.

``TrainingState`` holds the rule, the meta-optimizer's slots, the counters and the best
record, and writes them to ``save_path/train`` with ``tf.train.CheckpointManager``.
``restore_newest_readable`` skips damaged checkpoints; ``check_run_config`` refuses to
resume a run whose ``Computation`` differs from the one asked for now.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable

import keras
import tensorflow as tf

from l2l_tf import checkpoints, distributed
from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.run_config import RunConfig, RunConfigError

RUN_CONFIG_FILE = "run_config.json"
_KEEP = "Restore it, or delete it to resume with the settings given now"


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
            f" are damaged). Move {directory} aside to restart training from the saved best rule's run, or"
            " meta-train into a new save_path"
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
            raise IncompatibleResumeError(f"{error}. {_KEEP}") from error
        if not isinstance(stored, dict):
            raise IncompatibleResumeError(f"{path}: not a JSON object. {_KEEP}")
        try:
            previous = RunConfig.from_dict(stored)
        except RunConfigError as error:
            raise IncompatibleResumeError(f"{path}: {error}. {_KEEP}") from error
        changed = previous.computation.differences(run_config.computation)
        if changed:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise IncompatibleResumeError(
                f"{save_path!r} holds a run with other settings ({details}). Resume with the"
                " same settings, or meta-train into a new save_path"
            )
    os.makedirs(save_path, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(run_config.to_dict(), f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class TrainingState:
    """What a checkpoint holds, and where this worker keeps its checkpoints.

    The chief checkpoints to ``save_path/train``; other workers save to a temporary
    folder that ``close`` removes (saving is collective under some strategies), and
    take the chief's state through ``distributed.broadcast_from_chief``. The checkpoint's
    names (``rule``, ``meta_optimizer``, ``epoch``...) are those of every run so far.
    """

    def __init__(self, rule: CoordinatewiseLSTM, meta_optimizer: keras.optimizers.Optimizer,
                 skipped_updates: tf.Variable, save_path: str, chief: bool):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_score = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.resets = tf.Variable(0, dtype=tf.int64, trainable=False, name="resets")
        self.checkpoint = tf.train.Checkpoint(
            rule=rule, meta_optimizer=meta_optimizer, epoch=self.epoch, best_score=self.best_score,
            best_epoch=self.best_epoch, resets=self.resets, skipped_updates=skipped_updates,
        )
        self.variables = [
            *rule.trainable_variables, *meta_optimizer.variables, self.epoch, self.best_score,
            self.best_epoch, self.resets, skipped_updates,
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
