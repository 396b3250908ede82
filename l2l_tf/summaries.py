"""TensorBoard summaries of meta-training: per-run scalars, optimizee loss curves,
hyper-parameters, and no duplicated steps after a resume.

Per-run scalars (``meta_loss_per_step``, ``meta_gradient_norm``, ``optimizee/final_loss``,
``elapsed_seconds``, ``validation_loss``) use the run number as step. The optimizee loss
curve (``optimizee/loss``) uses the optimizee step counted over all runs
(``(run - 1) * num_steps + t``), so the runs' curves follow each other.

A killed job resumes from its last checkpoint, but its event files hold summaries
written after that checkpoint; ``drop_after`` rewrites them without those, so the resumed
job's summaries do not repeat steps.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2

OPTIMIZEE_LOSS = "optimizee/loss"  # the one tag whose step counts optimizee steps


def write_run(writer: Any, run: int, num_steps: int, step_losses: np.ndarray, scalars: dict[str, float]) -> None:
    """Run ``run``'s ``scalars`` (step = run) and its optimizee loss curve ``step_losses``."""
    with writer.as_default():
        for name, value in scalars.items():
            tf.summary.scalar(name, value, step=run)
        offset = (run - 1) * num_steps
        for t, loss in enumerate(step_losses):
            tf.summary.scalar(OPTIMIZEE_LOSS, float(loss), step=offset + t)


def write_hparams(writer: Any, run_config: dict[str, Any]) -> None:
    """The run's settings in TensorBoard's HParams tab (scalars and strings; lists as text)."""
    from tensorboard.plugins.hparams import api as hp

    values = {}
    for key, value in sorted(run_config.items()):
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is not None and key != "problem_description":
            values[key] = str(value)
    with writer.as_default():
        hp.hparams(values)


def _limit(tag: str, run: int, num_steps: int) -> int:
    """The last step of ``tag`` that runs ``1..run`` log."""
    return run * num_steps - 1 if tag == OPTIMIZEE_LOSS else run


def drop_after(logdir: str, run: int, num_steps: int) -> int:
    """Rewrites the event files in ``logdir`` without summaries of runs after ``run``.

    Returns the number of summary values dropped."""
    dropped = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(logdir), "events.out.tfevents.*"))):
        kept, removed = [], 0
        for record in event_file_loader.RawEventFileLoader(path).Load():
            event = event_pb2.Event.FromString(record)
            if event.HasField("summary"):
                values = [v for v in event.summary.value if event.step <= _limit(v.tag, run, num_steps)]
                removed += len(event.summary.value) - len(values)
                if not values:
                    continue
                del event.summary.value[:]
                event.summary.value.extend(values)
            kept.append(event.SerializeToString())
        if removed:
            with tf.io.TFRecordWriter(path + ".tmp") as out:
                for record in kept:
                    out.write(record)
            os.replace(path + ".tmp", path)
            dropped += removed
    return dropped


def open_writer(
    logdir: str, run: int, num_steps: int, run_config: dict[str, Any] | None, log: Callable[[str], None]
) -> Any:
    """The TensorBoard writer; on a resume, first drops what was logged after the
    checkpoint (so no step repeats); on a fresh start, records the hyper-parameters."""
    if run > 0:
        dropped = drop_after(logdir, run, num_steps)
        if dropped:
            log(f"TensorBoard: dropped {dropped} values logged after run {run}, the checkpoint resumed from")
    writer = tf.summary.create_file_writer(logdir)
    if run == 0:
        write_hparams(writer, run_config or {})
    return writer
