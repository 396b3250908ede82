"""Small typed specifications of optimizee tasks, each building a ``Problem``.

A task is an MLP, a conv net (with or without BatchNormalization) or a batch of random
quadratics, together with its data variant (``task_data.DATA``), minibatch size,
initialisation scale and loss scale. ``init_stddev=None`` keeps Keras' own initialisers
(Glorot uniform weights, zero biases; seeded per run); a number draws every weight and
bias from ``N(0, init_stddev^2)`` as the paper does. ``loss_scale`` multiplies the loss
(and so every gradient): a rule that works only at one gradient magnitude fails there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from l2l_tf.problems.base import Batch, Problem
from l2l_tf.problems.conv import conv_net
from l2l_tf.problems.data import TFDS
from l2l_tf.problems.keras_problem import KerasProblem
from l2l_tf.problems.mnist import mlp
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.problems.task_data import DATA, load_data

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")


def _check_scales(name: str, batch_size: int, init_stddev: float | None, loss_scale: float) -> None:
    if batch_size < 1:
        raise ValueError(f"task {name}: batch_size must be >= 1, got {batch_size}")
    if init_stddev is not None and not init_stddev > 0:
        raise ValueError(f"task {name}: init_stddev must be > 0 or None (Keras' initialisers), got {init_stddev}")
    if not loss_scale > 0:
        raise ValueError(f"task {name}: loss_scale must be > 0, got {loss_scale}")


def _scaled_loss(regression: bool, loss_scale: float):
    base = keras.losses.MeanSquaredError() if regression else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss_scale == 1.0:
        return base
    return lambda labels, outputs: loss_scale * base(labels, outputs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkTask:
    """What every network task sets (keywords only): data variant, minibatch size,
    initialisation scale (None: Keras' initialisers) and loss scale."""

    data: str = "digits"
    batch_size: int = 128
    init_stddev: float | None = None
    loss_scale: float = 1.0

    def check(self, name: str) -> None:
        _check_scales(name, self.batch_size, self.init_stddev, self.loss_scale)
        if self.data not in DATA:
            raise ValueError(f"task {name}: needs known data ({sorted(DATA)}), got {self.data!r}")

    def keras_problem(self, name: str, model_fn, description: dict, data_source: str, data_dir: str | None) -> KerasProblem:
        """A ``KerasProblem`` of ``model_fn`` on the task's data (regression: mean squared error, no test metrics)."""
        train, test = load_data(self.data, data_source, data_dir)
        regression = DATA[self.data].regression
        return KerasProblem(
            model_fn, train, None if regression else test, loss_fn=_scaled_loss(regression, self.loss_scale),
            batch_size=self.batch_size, init_stddev=self.init_stddev, name=name,
            description={**description, "data": self.data, "data_source": data_source, "loss_scale": self.loss_scale},
        )


@dataclasses.dataclass(frozen=True)
class MLPTask(NetworkTask):
    """A multi-layer perceptron ``inputs -> hidden... -> outputs`` on data variant ``data``."""

    hidden: tuple[int, ...]
    activation: str

    def check(self, name: str) -> None:
        super().check(name)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"task {name}: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"task {name}: hidden sizes must be >= 1, got {self.hidden}")

    def build(self, name: str, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
        spec = DATA[self.data]
        return self.keras_problem(
            name, lambda: mlp(self.hidden, self.activation, spec.inputs, spec.classes),
            {"hidden": list(self.hidden), "activation": self.activation}, data_source, data_dir,
        )


@dataclasses.dataclass(frozen=True)
class ConvTask(NetworkTask):
    """A conv net (``conv.conv_net``: conv/[BatchNorm]/ReLU/max-pool blocks, one dense layer)."""

    channels: tuple[int, ...]
    batch_norm: bool
    kernel_size: int = 3
    hidden: int = 32

    def check(self, name: str) -> None:
        super().check(name)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"task {name}: channels must be >= 1, got {self.channels}")
        DATA[self.data].image_shape()  # raises for non-image data

    def build(self, name: str, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
        spec = DATA[self.data]
        model_fn = lambda: conv_net(
            spec.image_shape(), spec.classes, self.channels, self.kernel_size, self.hidden, self.batch_norm
        )
        description = {"channels": list(self.channels), "batch_norm": self.batch_norm,
                       "kernel_size": self.kernel_size, "hidden": self.hidden}
        return self.keras_problem(name, model_fn, description, data_source, data_dir)


class ScaledQuadratic(Quadratic):
    """``Quadratic`` whose losses are multiplied by ``loss_scale``."""

    def __init__(self, dims: int, batch_size: int, init_stddev: float, loss_scale: float, name: str):
        super().__init__(dims, batch_size, init_stddev)
        self.loss_scale, self.name = loss_scale, name

    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        return self.loss_scale * super().loss(params, batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "loss_scale": self.loss_scale}


@dataclasses.dataclass(frozen=True)
class QuadraticTask:
    """``functions`` random quadratics ``||W theta - y||^2`` in ``dims`` dimensions (``quadratic.py``)."""

    dims: int
    functions: int = 128
    init_stddev: float = 0.01
    loss_scale: float = 1.0

    def check(self, name: str) -> None:
        _check_scales(name, self.functions, self.init_stddev, self.loss_scale)
        if self.dims < 1:
            raise ValueError(f"task {name}: dims must be >= 1, got {self.dims}")

    def build(self, name: str, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
        del data_source, data_dir  # quadratics need no data
        return ScaledQuadratic(self.dims, self.functions, self.init_stddev, self.loss_scale, name)


TaskSpec = MLPTask | ConvTask | QuadraticTask
