"""Optimizee families and a registry of the named ones the binaries accept."""

from __future__ import annotations

from l2l_tf.problems.base import Problem
from l2l_tf.problems.conv import CONV_VARIANTS, conv_problem
from l2l_tf.problems.data import TFDS
from l2l_tf.problems.keras_problem import KerasProblem
from l2l_tf.problems.mnist import MLP_VARIANTS, mnist_mlp_problem
from l2l_tf.problems.quadratic import Quadratic

PROBLEM_NAMES = ("quadratic", *MLP_VARIANTS, *CONV_VARIANTS)


def make_problem(name: str, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
    """Builds the named problem (``quadratic``, an MNIST MLP variant or a conv net variant)."""
    if name == "quadratic":
        return Quadratic()
    if name in MLP_VARIANTS:
        return mnist_mlp_problem(name, data_source, data_dir)
    if name in CONV_VARIANTS:
        return conv_problem(name, data_source, data_dir)
    raise ValueError(f"unknown problem {name!r}; choose from {PROBLEM_NAMES}")


__all__ = ["PROBLEM_NAMES", "KerasProblem", "Problem", "Quadratic", "conv_problem", "make_problem", "mnist_mlp_problem"]
