"""The paper's convolutional optimizee (its CIFAR-10 net) on digits and on CIFAR-10.

The network follows the paper's public release: three 5x5 convolutions of 16 channels,
each followed by BatchNormalization (offset only), ReLU and 2x2 max-pooling ("same"
padding); then a 32-unit fully-connected layer with BatchNormalization and ReLU, and a
linear output layer. Weights start from ``N(0, 0.01^2)`` as in that release.

Label subsets (the paper's CIFAR-5 / CIFAR-2): a ``k``-class variant keeps the examples
whose label is one of the **first k labels** (``0 .. k-1``: digits 0-4 and 0-1; CIFAR-10's
airplane, automobile, bird, cat, deer and airplane, automobile) in both splits, and has
``k`` outputs.

BatchNormalization's moving statistics are optimizee state (``KerasProblem``); their
momentum is 0.9 rather than Keras' 0.99 (the release: 0.999) because optimizee runs are
only 100-1000 steps long: with 0.99, 100 steps leave the statistics 37% at their
initial values, which would make the reported test metrics meaningless.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from l2l_tf.problems.data import IDX, TFDS, Split, load_split
from l2l_tf.problems.keras_problem import KerasProblem

BATCH_NORM_MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class ConvVariant:
    """A named conv problem: TFDS dataset name, image shape, number of classes kept."""

    dataset: str
    image_shape: tuple[int, int, int]
    classes: int


CONV_VARIANTS: dict[str, ConvVariant] = {
    "mnist_conv": ConvVariant("mnist", (28, 28, 1), 10),
    "mnist_conv5": ConvVariant("mnist", (28, 28, 1), 5),
    "mnist_conv2": ConvVariant("mnist", (28, 28, 1), 2),
    "cifar10": ConvVariant("cifar10", (32, 32, 3), 10),
    "cifar5": ConvVariant("cifar10", (32, 32, 3), 5),
    "cifar2": ConvVariant("cifar10", (32, 32, 3), 2),
}


def conv_net(
    image_shape: tuple[int, int, int],
    classes: int = 10,
    channels: tuple[int, ...] = (16, 16, 16),
    kernel_size: int = 5,
    hidden: int = 32,
    batch_norm: bool = True,
) -> keras.Model:
    """The paper's conv net (built), taking flat ``[batch, prod(image_shape)]`` images.

    ``batch_norm=False`` drops the BatchNormalization layers (convolutions and the dense
    layer then have biases): a net without optimizee state."""

    def block(make: Callable[[bool], keras.layers.Layer]) -> list:
        """``make(use_bias)``'s layer, then BatchNormalization (if any) and ReLU."""
        if not batch_norm:
            return [make(True), keras.layers.ReLU()]
        return [make(False), keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, scale=False), keras.layers.ReLU()]

    layers: list = [keras.Input((int(np.prod(image_shape)),)), keras.layers.Reshape(image_shape)]
    for width in channels:
        layers += block(lambda bias, width=width: keras.layers.Conv2D(width, kernel_size, padding="same", use_bias=bias))
        layers.append(keras.layers.MaxPooling2D(2, padding="same"))
    layers += [keras.layers.Flatten(), *block(lambda bias: keras.layers.Dense(hidden, use_bias=bias))]
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


def first_classes(split: Split, classes: int) -> Split:
    """The examples of ``split`` whose label is below ``classes`` (labels unchanged)."""
    keep = split.labels < classes
    return Split(split.images[keep], split.labels[keep])


def conv_problem(
    variant: str = "mnist_conv",
    data_source: str = TFDS,
    data_dir: str | None = None,
    batch_size: int = 128,
    init_stddev: float | None = 0.01,
) -> KerasProblem:
    """The conv net on ``variant``'s data (one of ``CONV_VARIANTS``).

    Digits come from TFDS (``data_source="tfds"``) or local IDX files (``"idx"``);
    CIFAR-10 only from TFDS (it downloads once, where a network is available).
    """
    if variant not in CONV_VARIANTS:
        raise ValueError(f"unknown conv variant {variant!r}; choose from {sorted(CONV_VARIANTS)}")
    spec = CONV_VARIANTS[variant]
    if spec.dataset != "mnist" and data_source == IDX:
        raise ValueError(
            f"{variant} reads {spec.dataset} from TFDS only: use data_source 'tfds' (IDX files"
            " hold MNIST digits; the mnist_conv problem reads those)"
        )
    train, test = (
        first_classes(load_split(split, data_source, data_dir, spec.dataset), spec.classes)
        for split in ("train", "test")
    )
    return KerasProblem(
        lambda: conv_net(spec.image_shape, spec.classes),
        train,
        test,
        batch_size=batch_size,
        init_stddev=init_stddev,
        name=variant,
        description={
            "architecture": "conv 3x(5x5x16, batchnorm, relu, maxpool) + dense 32 (batchnorm, relu)",
            "dataset": spec.dataset,
            "classes": list(range(spec.classes)),
            "data_source": data_source,
        },
    )
