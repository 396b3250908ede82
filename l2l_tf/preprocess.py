"""Gradient preprocessing for coordinatewise learned optimizers.

Implements the log/sign preprocessing of Andrychowicz et al. (2016), appendix A.
Each gradient coordinate ``g`` becomes two features::

    |g| >= exp(-p):  (log|g| / p,  sign(g))
    otherwise:       (-1,          exp(p) * g)

so that gradients spanning many orders of magnitude reach the LSTM on a common scale.
Zero maps to ``(-1, 0)``. ``+-inf`` maps to ``(+inf, +-1)`` and NaN to ``(-1, NaN)``: non-finite
gradients are screened out before the rule (see ``LearnedOptimizer``), never here.
The log is taken of ``max(|g|, exp(-p))`` so the unused branch never produces
``-inf`` and gradients through this function (``second_derivatives=True``) stay finite.
"""

from __future__ import annotations

import math

import tensorflow as tf

LOG_SIGN = "log_sign"
IDENTITY = "none"
PREPROCESSINGS = (LOG_SIGN, IDENTITY)


def log_sign(gradients: tf.Tensor, p: float = 10.0) -> tf.Tensor:
    """Returns the ``[..., 2]`` log/sign features of ``gradients`` (see module doc)."""
    if p <= 0:
        raise ValueError(f"preprocessing exponent p must be > 0, got {p}")
    gradients = tf.convert_to_tensor(gradients)
    threshold = math.exp(-p)
    magnitude = tf.abs(gradients)
    is_large = magnitude >= threshold
    safe_log = tf.math.log(tf.maximum(magnitude, threshold)) / p
    first = tf.where(is_large, safe_log, -tf.ones_like(gradients))
    second = tf.where(is_large, tf.sign(gradients), math.exp(p) * gradients)
    return tf.stack([first, second], axis=-1)


def identity(gradients: tf.Tensor) -> tf.Tensor:
    """Returns the raw gradients as a ``[..., 1]`` feature (the paper's quadratics setting)."""
    return tf.expand_dims(tf.convert_to_tensor(gradients), -1)


def num_features(kind: str) -> int:
    """Number of input features per coordinate that preprocessing ``kind`` produces."""
    return {LOG_SIGN: 2, IDENTITY: 1}[check_kind(kind)]


def check_kind(kind: str) -> str:
    if kind not in PREPROCESSINGS:
        raise ValueError(f"unknown preprocessing {kind!r}; choose one of {PREPROCESSINGS}")
    return kind


def preprocess(gradients: tf.Tensor, kind: str = LOG_SIGN, p: float = 10.0) -> tf.Tensor:
    """Applies preprocessing ``kind`` (``"log_sign"`` or ``"none"``) to a gradient tensor."""
    if check_kind(kind) == LOG_SIGN:
        return log_sign(gradients, p)
    return identity(gradients)
