"""Image-classification data for optimizees: TFDS by default, or local IDX files offline."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from typing import Any

import numpy as np

from l2l_tf.problems.idx import IdxFormatError, read_idx, read_idx_shape

TFDS = "tfds"
IDX = "idx"
SOURCES = (TFDS, IDX)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


IMAGE_SHAPE = (28, 28)  # the MLPs take 784 inputs
MAX_IMAGES = 100_000  # per file: MNIST has 60,000 + 10,000


class DataUnavailableError(RuntimeError):
    """The requested data cannot be loaded here (no network, or missing files)."""


@dataclasses.dataclass(frozen=True)
class Split:
    """Features ``[n, d]`` float32 in [0, 1] and integer labels ``[n]``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{len(self.images)} images but {len(self.labels)} labels: the files do not match"
            )


def as_split(data: object, name: str = "train") -> Split:
    """``data`` as a ``Split``: a ``Split``, an ``(x, y)`` pair of arrays, or a finite
    ``tf.data.Dataset`` of ``(x, y)`` elements (batched or not; read into memory once).

    ``x`` keeps its shape (the model's input shape) as float32; ``y`` keeps its values."""
    if isinstance(data, Split):
        return data
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise TypeError(f"{name}: a tf.data.Dataset must yield (x, y) pairs, got elements {spec}")
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(f"{name}: the tf.data.Dataset is infinite (.repeat()); pass a finite one")
        batched = spec[0].shape.rank is not None and spec[1].shape.rank is not None and spec[1].shape.rank >= 1
        pairs = list(data.as_numpy_iterator())
        if not pairs:
            raise ValueError(f"{name}: the tf.data.Dataset is empty")
        join = np.concatenate if batched else np.stack
        data = (join([p[0] for p in pairs]), join([p[1] for p in pairs]))
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0], dtype=np.float32), np.asarray(data[1])
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(f"{name}: x and y need a first (example) axis, got shapes {x.shape} and {y.shape}")
        return Split(x, y)
    raise TypeError(
        f"{name} must be (x, y) arrays, a tf.data.Dataset of (x, y) pairs, or an l2l_tf.problems.data.Split;"
        f" got {type(data).__name__}"
    )


def _find(data_dir: str, stem: str) -> str:
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    raise DataUnavailableError(
        f"missing {stem}[.gz] in {data_dir!r}: the IDX data_dir must be a folder holding the four"
        " standard MNIST IDX files"
    )


def load_idx_split(data_dir: str, split: str) -> Split:
    """Reads one split (``train`` or ``test``) of IDX files from ``data_dir``."""
    if split not in IDX_FILES:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(IDX_FILES)}")
    images_stem, labels_stem = IDX_FILES[split]
    images_path, labels_path = _find(data_dir, images_stem), _find(data_dir, labels_stem)
    shape = read_idx_shape(images_path, expected_ndim=3)
    if tuple(shape[1:]) != IMAGE_SHAPE or not 1 <= shape[0] <= MAX_IMAGES:
        raise IdxFormatError(
            f"{images_path}: declares {shape[0]} images of {shape[1]}x{shape[2]} pixels; expected 1 to"
            f" {MAX_IMAGES} MNIST images of 28x28. The IDX data_dir must hold MNIST-format IDX files"
        )
    images = read_idx(images_path, expected_ndim=3, max_elements=MAX_IMAGES * math.prod(IMAGE_SHAPE))
    labels = read_idx(labels_path, expected_ndim=1, max_elements=MAX_IMAGES)
    if labels.size and labels.max() > 9:
        raise IdxFormatError(f"labels file for {split!r} holds label {labels.max()} > 9")
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return Split(flat, labels.astype(np.int32))


# The offline alternative, in the library's words (the binaries add their flags).
IDX_HINT = "source 'idx' with a data_dir holding them (e.g. ../shared/data/mnist-10k)"
# Where TFDS downloads from; probed before a download so that offline runs fail at once.
NETWORK_PROBE = ("storage.googleapis.com", 443)


def network_available(address: tuple[str, int] = NETWORK_PROBE, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``address`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError:
        return False
    return True


def _offline_fix(name: str) -> str:
    """What to do without network access: IDX files for MNIST, a prepared TFDS folder otherwise."""
    if name == "mnist":
        return f"read local IDX files instead: {IDX_HINT}"
    return f"prepare {name!r} once where TFDS can download it and pass that TFDS folder as the data_dir"


def _tfds_dataset(name: str, split: str, data_dir: str | None) -> Any:
    """``tfds.load`` of data already prepared in ``data_dir``; only if it is not there,
    a download, and offline a ``DataUnavailableError`` naming source ``idx`` at once
    (instead of minutes of TFDS download retries)."""
    import tensorflow_datasets as tfds

    try:
        return tfds.load(name, split=split, as_supervised=True, data_dir=data_dir, download=False)
    except Exception as error:  # not prepared here: TFDS raises AssertionError or its own errors
        if not network_available():
            raise DataUnavailableError(
                f"TFDS dataset {name!r} is not prepared in {data_dir or 'the TFDS data folder'} and there is no"
                f" network ({NETWORK_PROBE[0]} unreachable) to download it. Offline, {_offline_fix(name)}"
            ) from error
    return tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)


def load_tfds_split(name: str, split: str, data_dir: str | None = None) -> Split:
    """Loads a TFDS image-classification dataset split into memory."""
    import tensorflow_datasets as tfds

    try:
        dataset = _tfds_dataset(name, split, data_dir)
        chunks = list(tfds.as_numpy(dataset.batch(8192)))
    except DataUnavailableError:
        raise
    except Exception as error:  # TFDS raises many types for download/prepare failures
        fix = _offline_fix(name)
        raise DataUnavailableError(
            f"could not load TFDS dataset {name!r} split {split!r} ({type(error).__name__}:"
            f" {str(error)[:200]}). Without network access, {fix}"
        ) from error
    if not chunks:
        raise DataUnavailableError(f"TFDS dataset {name!r} split {split!r} is empty")
    images = np.concatenate([c[0] for c in chunks])
    labels = np.concatenate([c[1] for c in chunks])
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return Split(flat, labels.astype(np.int32))


def load_split(
    split: str, source: str = TFDS, data_dir: str | None = None, dataset: str = "mnist"
) -> Split:
    """One split of ``dataset`` from ``source`` (``tfds``, the default, or ``idx``)."""
    if source == TFDS:
        return load_tfds_split(dataset, split, data_dir)
    if source == IDX:
        if not data_dir:
            raise DataUnavailableError("source 'idx' needs a data_dir: the folder of the four MNIST IDX files")
        return load_idx_split(data_dir, split)
    raise ValueError(f"unknown data source {source!r}; choose from {SOURCES}")
