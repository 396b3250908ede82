"""Shared fixtures: quiet TensorFlow, the shared MNIST sample, small trained rules."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def mnist_dir() -> str | None:
    """The shared 10k-digit MNIST sample (IDX), from $L2L_MNIST_DIR or ../shared beside the repo."""
    for candidate in (
        os.environ.get("L2L_MNIST_DIR"),
        os.path.join(REPO, "..", "shared", "data", "mnist-10k"),
        os.path.join(REPO, "shared", "data", "mnist-10k"),
    ):
        if candidate and os.path.isfile(os.path.join(candidate, "train-images-idx3-ubyte.gz")):
            return os.path.abspath(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_data_dir() -> str:
    path = mnist_dir()
    if path is None:
        pytest.skip("shared MNIST sample not found (set L2L_MNIST_DIR)")
    return path


@pytest.fixture(scope="session")
def small_mnist(mnist_data_dir):
    """The train/test splits of the shared sample, truncated to keep tests fast."""
    from l2l_tf.problems.data import Split, load_idx_split

    train = load_idx_split(mnist_data_dir, "train")
    test = load_idx_split(mnist_data_dir, "test")
    return Split(train.images[:2048], train.labels[:2048]), Split(test.images[:512], test.labels[:512])


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
