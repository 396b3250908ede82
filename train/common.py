"""Flags and helpers shared by the l2l_tf binaries."""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from l2l_tf.problems import PROBLEM_NAMES, Problem, make_problem
from l2l_tf.problems.data import SOURCES, TFDS, DataUnavailableError

# TensorFlow's Python INFO logs (checkpoint sharding etc.) would bury the progress lines.
logging.set_verbosity(logging.WARNING)


def define_problem_flags() -> None:
    flags.DEFINE_enum("problem", "quadratic", PROBLEM_NAMES, "Optimizee family.")
    flags.DEFINE_enum(
        "data_source", TFDS, SOURCES,
        "Where MNIST comes from: 'tfds' (tfds.load, needs network the first time) or 'idx'"
        " (local IDX files in --data_dir).",
    )
    flags.DEFINE_string(
        "data_dir", None,
        "With --data_source=idx: folder of the four MNIST IDX files (e.g."
        " ../shared/data/mnist-10k). With tfds: TFDS's data_dir. With neural_art problems: the folder"
        " with content/ and style/ images (default $L2L_NEURAL_ART_DIR or ../shared/data/neural-art).",
    )
    flags.DEFINE_string(
        "vgg_weights", None,
        "neural_art problems: VGG19 weights, an .npz file (default DATA_DIR/vgg19/vgg19_notop_q8.npz)"
        " or 'imagenet' (Keras downloads them; needs network access once).",
    )


def build_problem() -> Problem:
    """The problem named by the flags; data problems exit with a usage error if unavailable."""
    values = flags.FLAGS
    try:
        return make_problem(values.problem, values.data_source, values.data_dir, values.vgg_weights)
    except (DataUnavailableError, FileNotFoundError, ValueError) as error:
        usage_error(str(error))
        raise  # unreachable


def usage_error(message: str) -> None:
    """Exits with status 2 and a one-line message, like absl does for bad flags."""
    print(f"FATAL Flags/input error: {message}\nPass --helpshort for usage.", file=sys.stderr)
    sys.exit(2)


def require_dir_parent_writable(path: str, flag: str) -> None:
    """Creates the parent folder of ``path`` if needed; a usage error if that is impossible."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        usage_error(f"--{flag}={path}: cannot create parent folder {parent!r} ({error.strerror})")
    if not os.access(parent, os.W_OK):
        usage_error(f"--{flag}={path}: parent folder {parent!r} is not writable")
