"""Optimizee families and a registry of the named ones the binaries accept."""

from __future__ import annotations

from l2l_tf.problems.base import Problem
from l2l_tf.problems.conv import CONV_VARIANTS, conv_problem
from l2l_tf.problems.data import TFDS
from l2l_tf.problems.keras_problem import KerasProblem
from l2l_tf.problems.mnist import MLP_VARIANTS, mnist_mlp_problem
from l2l_tf.problems.neural_art import (
    NEURAL_ART_VARIANTS,
    NeuralArt,
    neural_art_problem,
)
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.problems.task_lists import (
    TASKS_PREFIX,
    is_task_list,
    register_task_list,
    task_list,
    task_list_names,
)

PROBLEM_NAMES = ("quadratic", *MLP_VARIANTS, *CONV_VARIANTS, *NEURAL_ART_VARIANTS)


def make_problem(
    name: str, data_source: str = TFDS, data_dir: str | None = None, vgg_weights: str | None = None
) -> Problem:
    """Builds the named problem (``quadratic``, an MNIST MLP, a conv net or a neural-art variant).

    For neural art, ``data_dir`` is the folder with ``content/``, ``style/`` (and
    ``vgg19/``), and ``vgg_weights`` an ``.npz`` file or ``"imagenet"`` (default: the
    folder's ``vgg19/vgg19_notop_q8.npz``).
    """
    if name == "quadratic":
        return Quadratic()
    if name in MLP_VARIANTS:
        return mnist_mlp_problem(name, data_source, data_dir)
    if name in CONV_VARIANTS:
        return conv_problem(name, data_source, data_dir)
    if name in NEURAL_ART_VARIANTS:
        return neural_art_problem(name, data_dir, vgg_weights)
    raise ValueError(f"unknown problem {name!r}; choose from {PROBLEM_NAMES}")


def make_problems(
    name: str, data_source: str = TFDS, data_dir: str | None = None, vgg_weights: str | None = None
) -> list[Problem]:
    """The problems of task list ``tasks:NAME`` (``l2l_tf.problems.task_lists``), else
    ``make_problem``'s one problem as a list."""
    if is_task_list(name):
        return task_list(name, data_source, data_dir)
    return [make_problem(name, data_source, data_dir, vgg_weights)]


__all__ = [
    "PROBLEM_NAMES", "TASKS_PREFIX", "KerasProblem", "NeuralArt", "Problem", "Quadratic", "conv_problem",
    "is_task_list", "make_problem", "make_problems", "mnist_mlp_problem", "neural_art_problem", "register_task_list",
    "task_list", "task_list_names",
]
