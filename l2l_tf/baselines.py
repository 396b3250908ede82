"""Hand-designed baseline optimizers (Keras' own implementations) and their LR grid."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

BASELINES: dict[str, Callable[[float], keras.optimizers.Optimizer]] = {
    "sgd": lambda lr: keras.optimizers.SGD(learning_rate=lr),
    "nag": lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True),
    "rmsprop": lambda lr: keras.optimizers.RMSprop(learning_rate=lr),
    "adam": lambda lr: keras.optimizers.Adam(learning_rate=lr),
}

# 1e-4 ... 10 with three points per decade: 1, 2, 5 x 10^k.
DEFAULT_LEARNING_RATES: tuple[float, ...] = tuple(
    float(m * 10.0**k) for k in range(-4, 1) for m in (1, 2, 5)
) + (10.0,)


def make_baseline(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer for baseline ``name`` (one of ``BASELINES``)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning rate must be a positive number, got {learning_rate}")
    return BASELINES[name](learning_rate)
