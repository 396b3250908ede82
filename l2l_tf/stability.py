"""Divergence of optimizee runs past the horizon a rule was meta-trained on.

A run **diverges** when any of its losses is non-finite, or when its mean loss over the
last tenth of its steps (steps 901-1000 of a 1,000-step run) exceeds its loss at step 0:
the optimizer ended up worse than where it started. This is the definition fixed in
``experiments/conv/NOTES.md`` for the stability evaluations of every shipped rule.
"""

from __future__ import annotations

import numpy as np


def diverged_runs(curves: np.ndarray, tail_fraction: float = 0.1) -> np.ndarray:
    """Boolean ``[runs]``: which of the loss curves ``[runs, num_steps + 1]`` diverge."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise ValueError(f"expected loss curves of shape [runs, num_steps + 1], got {curves.shape}")
    if not 0.0 < tail_fraction <= 1.0:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction}")
    num_steps = curves.shape[1] - 1
    tail = curves[:, -max(1, round(num_steps * tail_fraction)):]
    non_finite = ~np.isfinite(curves).all(axis=1)
    with np.errstate(invalid="ignore"):
        worse_than_start = tail.mean(axis=1) > curves[:, 0]
    return non_finite | worse_than_start
