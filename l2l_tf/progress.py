"""Progress of a meta-training job: what each finished run reports, elapsed time and ETA.

``l2l_tf.training.meta_train`` hands every finished run to a ``Reporter``, which writes its
TensorBoard summaries, calls ``on_run_end(RunReport)`` and logs a progress line every
``log_every`` runs; ``progbar`` turns ``on_run_end`` into a Keras progress bar for
interactive use:

    meta_train(rule, problem, meta_config, options, "runs/mine", on_run_end=progress.progbar(options.num_epochs))
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from l2l_tf import summaries


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
    problem: str = ""  # the name of the problem the run trained on


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


def per_step_meta_loss(results: list[Any], unroll_length: int) -> float:
    """The unrolls' mean meta-loss per optimizee step: the scale of the validation score
    (which averages ``w_t g(loss_t)`` over a run's steps)."""
    return float(np.mean([float(r.meta_loss) / unroll_length for r in results]))


def communication_share(before: dict[str, float], after: dict[str, float]) -> str:
    """The all-reduce's share of the time in the trainer's phases since ``before``
    (it includes waiting for the slowest replica)."""
    spent = {phase: after[phase] - before.get(phase, 0.0) for phase in after}
    return f"all-reduce {spent['all_reduce'] / max(sum(spent.values()), 1e-9):.1%} of the step"


class ProgressLine:
    """The binaries' progress line: averages over the epochs since the last line.
    ``trainer.timings`` (distributed: seconds per phase) gives the all-reduce's share."""

    def __init__(self, trainer: Any, replicas: int) -> None:
        self.trainer, self.replicas = trainer, replicas
        self.timings = dict(getattr(trainer, "timings", {}))
        self._reset()

    def _reset(self) -> None:
        self.meta_losses: list[float] = []
        self.norms: list[float] = []
        self.steps, self.start = 0, time.monotonic()

    def add(self, results: list[Any], unroll_length: int) -> None:
        self.meta_losses += [float(r.meta_loss) / unroll_length for r in results]
        self.norms += [float(r.meta_gradient_norm) for r in results]
        self.steps += len(results) * unroll_length * self.replicas

    def line(self, report: RunReport, results: list[Any], skipped: int, resets: int) -> str:
        """The progress line, then a new window."""
        rate = self.steps / max(time.monotonic() - self.start, 1e-9)
        runs = ""
        if results[-1].local_seeds:
            runs = f"  {communication_share(self.timings, self.trainer.timings)}  this worker's runs {list(results[-1].local_seeds)}"
            self.timings = dict(self.trainer.timings)
        unit = "run" if self.replicas == 1 else f"epoch ({self.replicas} runs each)"
        text = (
            f"{unit} {report.run}/{report.num_runs}  meta-loss/step {np.mean(self.meta_losses):.5g}"
            f"  |meta-grad| {np.mean(self.norms):.3g}  {rate:.1f} optimizee steps/s  skipped {skipped}  resets {resets}"
            f"  elapsed {format_duration(report.elapsed_seconds)}  ETA {format_duration(report.eta_seconds)}{runs}"
        )
        self._reset()
        return text


@dataclasses.dataclass
class Reporter:
    """Reports each finished run of meta-training: TensorBoard summaries (``writer``; none
    on workers other than the chief), ``on_run_end(RunReport)``, and a ``ProgressLine`` to
    ``log`` every ``log_every`` runs and after the last. ``trainer`` gives the timings of
    distributed phases (``TrainerPool``)."""

    num_runs: int
    log_every: int
    num_steps: int
    unroll_length: int
    first_run: int
    replicas: int
    trainer: Any
    log: Callable[[str], None] = print
    writer: Any = None
    on_run_end: Callable[[RunReport], None] | None = None

    def __post_init__(self) -> None:
        self.window = ProgressLine(self.trainer, self.replicas)
        self.clock = Clock(self.first_run, self.num_runs)

    def run_finished(self, run: int, results: list[Any], skipped: int, resets: int, problem: str = "") -> RunReport:
        """Reports run ``run`` (1-based), whose unrolls gave ``results``."""
        self.window.add(results, self.unroll_length)
        elapsed = self.clock.elapsed()
        curve = np.concatenate([np.atleast_2d(np.asarray(r.step_losses)).mean(axis=0) for r in results])
        report = RunReport(
            run, self.num_runs, per_step_meta_loss(results, self.unroll_length), float(curve[-1]),
            float(np.mean([float(r.meta_gradient_norm) for r in results])), elapsed, self.clock.eta(run, elapsed), problem,
        )
        if self.writer is not None:
            summaries.write_run(self.writer, run, self.num_steps, curve, {
                "meta_loss_per_step": report.meta_loss_per_step, "meta_gradient_norm": report.meta_gradient_norm,
                "optimizee/final_loss": report.final_loss, "elapsed_seconds": elapsed,
            })
        if self.on_run_end is not None:
            self.on_run_end(report)
        if run % self.log_every == 0 or run == self.num_runs:
            self.log(self.window.line(report, results, skipped, resets))
        return report
