"""Learning-rate tuning of the baselines: grid search on tuning seeds, and reuse of its runs.

Each tuning run records its whole loss curve, so a grid searched once at a long horizon also
tunes every shorter one: with a constant learning rate and the same seed, the first ``h``
steps of a ``T``-step run are exactly an ``h``-step run (same start, same batches), so
scoring the curves' prefix is the same grid search at horizon ``h`` without running it again.
``train.evaluate --tuning_curves`` uses this; the curves are stored as ``tuning_curves.npz``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile
from collections.abc import Sequence

import numpy as np

from l2l_tf.evaluation import BaselineRunner, run_start

TUNING_CURVES_FILE = "tuning_curves.npz"


def final_loss_score(curves: np.ndarray) -> float:
    """Tuning criterion: mean final loss over runs; a diverged (non-finite) run scores inf."""
    finals = curves[:, -1]
    return float(np.mean(finals)) if np.all(np.isfinite(finals)) else math.inf


@dataclasses.dataclass
class TuningResult:
    """A baseline's tuned learning rate, every grid point's score, and the tuning curves
    ``{learning rate: [tuning runs, steps + 1]}`` the scores came from."""

    name: str
    best_learning_rate: float
    scores: dict[float, float]
    curves: dict[float, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)


def pick_learning_rate(name: str, curves: dict[float, np.ndarray], num_steps: int) -> TuningResult:
    """The learning rate whose tuning runs end lowest at step ``num_steps`` (curves at least
    that long; longer ones are cut, see the module docstring)."""
    cut = {float(lr): np.asarray(c)[:, : num_steps + 1] for lr, c in curves.items()}
    if any(c.shape[1] != num_steps + 1 for c in cut.values()):
        raise ValueError(f"{name}: the tuning curves are shorter than {num_steps} steps")
    scores = {lr: final_loss_score(c) for lr, c in cut.items()}
    best = min(scores, key=lambda lr: scores[lr])
    if not math.isfinite(scores[best]):
        raise RuntimeError(f"{name}: every learning rate in the grid diverged")
    return TuningResult(name, best, scores, cut)


def tune_all(
    runners: Sequence[BaselineRunner], seeds: Sequence[int], learning_rates: Sequence[float]
) -> list[TuningResult]:
    """Grid-searches the learning rate of each of ``runners`` (all on one problem and
    horizon) for the lowest mean final loss; each tuning run's start (``run_start``) is drawn
    once and shared by every runner and learning rate."""
    curves: dict[tuple[int, float], list[np.ndarray]] = {}
    for seed in seeds:
        start = run_start(runners[0].problem, seed, runners[0].num_steps)
        for index, runner in enumerate(runners):
            for lr in learning_rates:
                curves.setdefault((index, float(lr)), []).append(runner.run_with_state(seed, lr, start)[0])
    return [
        pick_learning_rate(runner.name, {float(lr): np.stack(curves[index, float(lr)]) for lr in learning_rates}, runner.num_steps)
        for index, runner in enumerate(runners)
    ]


def tune(runner: BaselineRunner, seeds: Sequence[int], learning_rates: Sequence[float]) -> TuningResult:
    """Grid-searches the learning rate of ``runner`` for the lowest mean final loss."""
    return tune_all([runner], seeds, learning_rates)[0]


def write_tuning_curves(directory: str, tuned: Sequence[TuningResult]) -> None:
    """``tuning_curves.npz`` in ``directory``: one ``[runs, steps + 1]`` array per baseline and
    learning rate, named ``NAME@LR`` (written whole, then moved into place). Without tuning
    runs, an older file there is removed, so that it cannot pass for this run's."""
    path = os.path.join(directory, TUNING_CURVES_FILE)
    arrays = {f"{t.name}@{lr!r}": c for t in tuned for lr, c in t.curves.items()}
    if not arrays:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path + ".partial", "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(path + ".partial", path)


def read_tuning_curves(directory: str) -> dict[str, dict[float, np.ndarray]]:
    """``{baseline: {learning rate: curves}}`` from a ``train.evaluate --output_dir``; raises
    ``ValueError`` naming the problem if there is no readable file."""
    path = os.path.join(directory, TUNING_CURVES_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"no {TUNING_CURVES_FILE} (rerun the longer evaluation with baselines and this version of l2l_tf)")
    out: dict[str, dict[float, np.ndarray]] = {}
    try:
        with np.load(path) as stored:
            for key in stored.files:
                name, lr = key.rsplit("@", 1)
                out.setdefault(name, {})[float(lr)] = stored[key]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not readable ({error}); rerun the longer evaluation") from error
    return out
