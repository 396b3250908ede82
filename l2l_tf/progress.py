"""Progress of a meta-training job: what each finished run reports, elapsed time and ETA.

``l2l_tf.training.meta_train`` calls ``on_run_end(RunReport)`` after every optimizee run;
``progbar`` turns that into a Keras progress bar for interactive use:

    meta_train(rule, problem, meta_config, options, "runs/mine", on_run_end=progress.progbar(options.num_epochs))
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class RunReport:
    """One finished optimizee run of meta-training.

    ``meta_loss_per_step`` is the run's meta-loss divided by its number of steps (the mean
    of ``w_t g(loss_t)``), the scale of the validation score; ``final_loss`` the
    optimizee's loss at its last step; ``eta_seconds`` the time the remaining runs take
    at this process's pace so far."""

    run: int
    num_runs: int
    meta_loss_per_step: float
    final_loss: float
    meta_gradient_norm: float
    elapsed_seconds: float
    eta_seconds: float


class Clock:
    """Elapsed time and ETA from the pace of the runs done by this process (resumes included)."""

    def __init__(self, first_run: int, num_runs: int, now: Callable[[], float] = time.monotonic):
        self.first_run, self.num_runs, self._now = first_run, num_runs, now
        self.start = now()

    def elapsed(self) -> float:
        return self._now() - self.start

    def eta(self, runs_done: int, elapsed: float | None = None) -> float:
        """Seconds left after ``runs_done`` of ``num_runs`` runs (``elapsed`` seconds so far,
        default now)."""
        done_here = runs_done - self.first_run
        if done_here <= 0:
            return float("nan")
        elapsed = self.elapsed() if elapsed is None else elapsed
        return elapsed / done_here * max(self.num_runs - runs_done, 0)


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (``?`` when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progbar(num_runs: int, first_run: int = 0) -> Callable[[RunReport], None]:
    """An ``on_run_end`` callback drawing a ``keras.utils.Progbar`` over the runs."""
    import keras

    bar = keras.utils.Progbar(num_runs, unit_name="run", stateful_metrics=["meta_loss_per_step", "final_loss"])
    if first_run:
        bar.update(first_run)

    def on_run_end(report: RunReport) -> None:
        bar.update(report.run, [("meta_loss_per_step", report.meta_loss_per_step), ("final_loss", report.final_loss)])

    return on_run_end
