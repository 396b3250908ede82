"""The data variants of the task distribution (``l2l_tf.problems.tasks``).

Digit variants read MNIST through ``load_split`` (TFDS by default; offline, the local IDX
files: ``data_source="idx"`` with ``data_dir=../shared/data/mnist-10k``) and derive cheap
variations from it: 14x14 digits (2x2 average pooling, 196 inputs) and label subsets (the
first ``k`` labels, as the conv net's ``mnist_conv5``). Synthetic variants need no files:
inputs are standard normal, and targets come from a fixed random teacher network drawn from
the variant's own seed (classification: the teacher's argmax; regression: its outputs plus
noise), so they are the same on every machine.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from l2l_tf.problems.conv import first_classes
from l2l_tf.problems.data import TFDS, Split, load_split

DIGITS = "digits"
SYNTHETIC_CLASSIFICATION = "synthetic_classification"
SYNTHETIC_REGRESSION = "synthetic_regression"


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One data variant: MNIST digits (at ``resolution`` pixels a side, the first ``classes``
    labels) or synthetic data (``features`` inputs, ``classes`` classes or regression outputs)."""

    kind: str
    classes: int = 10
    resolution: int = 28
    features: int = 0
    examples: int = 0
    seed: int = 0

    @property
    def regression(self) -> bool:
        return self.kind == SYNTHETIC_REGRESSION

    @property
    def inputs(self) -> int:
        return self.resolution**2 if self.kind == DIGITS else self.features

    def image_shape(self) -> tuple[int, int, int]:
        """The ``(height, width, channels)`` a conv net sees (digits only)."""
        if self.kind != DIGITS:
            raise ValueError(f"{self.kind} data has no image shape: conv tasks need digits data")
        return (self.resolution, self.resolution, 1)


DATA: dict[str, DataSpec] = {
    "digits": DataSpec(DIGITS),
    "digits14": DataSpec(DIGITS, resolution=14),
    "digits5": DataSpec(DIGITS, classes=5),
    "digits14_5": DataSpec(DIGITS, classes=5, resolution=14),
    "digits14_2": DataSpec(DIGITS, classes=2, resolution=14),
    "blobs": DataSpec(SYNTHETIC_CLASSIFICATION, classes=4, features=32, examples=4096, seed=1),
    "blobs_wide": DataSpec(SYNTHETIC_CLASSIFICATION, classes=8, features=64, examples=4096, seed=2),
    "regression": DataSpec(SYNTHETIC_REGRESSION, classes=4, features=16, examples=4096, seed=3),
    "regression_wide": DataSpec(SYNTHETIC_REGRESSION, classes=8, features=48, examples=4096, seed=4),
}


def downsample(split: Split, resolution: int) -> Split:
    """``split``'s 28x28 digits averaged over square blocks down to ``resolution`` a side."""
    if 28 % resolution:
        raise ValueError(f"resolution must divide 28, got {resolution}")
    block = 28 // resolution
    images = split.images.reshape(-1, resolution, block, resolution, block).mean(axis=(2, 4))
    return Split(images.reshape(len(images), -1).astype(np.float32), split.labels)


@functools.lru_cache(maxsize=8)
def _digits(split: str, source: str, data_dir: str | None) -> Split:
    return load_split(split, source, data_dir)


def _teacher(spec: DataSpec, count: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` standard-normal inputs and the fixed teacher's outputs on them."""
    weights = np.random.default_rng(spec.seed)
    hidden = weights.normal(size=(spec.features, 32)) / np.sqrt(spec.features)
    head = weights.normal(size=(32, spec.classes)) / np.sqrt(32)
    inputs = np.random.default_rng([spec.seed, salt]).normal(size=(count, spec.features))
    return inputs.astype(np.float32), np.tanh(inputs @ hidden) @ head


def _synthetic(spec: DataSpec, split: str) -> Split:
    count = spec.examples if split == "train" else spec.examples // 4
    inputs, outputs = _teacher(spec, count, 1 if split == "train" else 2)
    if spec.regression:
        noise = np.random.default_rng([spec.seed, 3]).normal(scale=0.1, size=outputs.shape)
        return Split(inputs, (outputs + noise).astype(np.float32))
    return Split(inputs, np.argmax(outputs, axis=-1).astype(np.int32))


def load_data(name: str, data_source: str = TFDS, data_dir: str | None = None) -> tuple[Split, Split]:
    """The ``(train, test)`` splits of data variant ``name`` (one of ``DATA``)."""
    if name not in DATA:
        raise ValueError(f"unknown data variant {name!r}; choose from {sorted(DATA)}")
    spec = DATA[name]
    if spec.kind != DIGITS:
        return _synthetic(spec, "train"), _synthetic(spec, "test")
    splits = []
    for split in ("train", "test"):
        data = first_classes(_digits(split, data_source, data_dir), spec.classes)
        splits.append(data if spec.resolution == 28 else downsample(data, spec.resolution))
    return splits[0], splits[1]
