"""Picture grids of image optimizees: content, style and each optimizer's image after N steps."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from l2l_tf.evaluation import BaselineRunner, RuleRunner
from l2l_tf.problems.neural_art import NeuralArt


def final_images(
    problem: NeuralArt,
    rule: Any,
    learning_rates: Mapping[str, float],
    seeds: Sequence[int],
    num_steps: int,
    rule_name: str = "lstm",
    jit_compile: bool = True,
) -> dict[str, list[tuple[np.ndarray, float]]]:
    """``{optimizer: [(image [H, W, 3], loss at step num_steps) per seed]}`` for the rule and
    each baseline at its learning rate (``learning_rates``: baseline name -> rate)."""
    out = {}
    runner = RuleRunner(rule, problem, num_steps, jit_compile)
    out[rule_name] = [_final(problem, *runner.run(seed)) for seed in seeds]
    for name, learning_rate in learning_rates.items():
        baseline = BaselineRunner(name, problem, num_steps, jit_compile)
        out[name] = [_final(problem, *baseline.run(seed, learning_rate)) for seed in seeds]
    return out


def _final(problem: NeuralArt, losses: np.ndarray, params: Any) -> tuple[np.ndarray, float]:
    (image,) = problem.unflatten(params)
    return np.clip(np.asarray(image), 0.0, 1.0), float(losses[-1])


def plot_grid(
    problem: NeuralArt,
    seeds: Sequence[int],
    results: Mapping[str, list[tuple[np.ndarray, float]]],
    path: str,
    title: str,
    labels: Mapping[str, str] | None = None,
) -> None:
    """One row per seed: content, style, then each optimizer's image (its final loss above it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    columns = 2 + len(results)
    fig, axes = plt.subplots(len(seeds), columns, figsize=(1.6 * columns, 1.75 * len(seeds) + 0.4), squeeze=False)
    style = np.asarray(problem.style)
    for row, seed in enumerate(seeds):
        cells = [("content", np.asarray(problem.content_image(seed))), ("style", style)]
        cells += [
            (f"{labels.get(name, name)}\nloss {images[row][1]:.3g}", images[row][0])
            for name, images in results.items()
        ]
        for column, (label, image) in enumerate(cells):
            axis = axes[row][column]
            axis.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0 or column >= 2:
                axis.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
