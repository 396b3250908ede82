"""Random quadratic optimizees f(theta) = ||W theta - y||^2 (the paper's first experiment)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from l2l_tf.problems.base import Batch, Problem, seed_pair


class Quadratic(Problem):
    """``batch_size`` independent quadratics in ``dims`` dimensions, optimised in parallel.

    ``W`` (``dims x dims``) and ``y`` (``dims``) have i.i.d. standard normal entries, as
    in the paper; ``theta`` starts from ``N(0, init_stddev^2)`` (0.01, the public code's
    value). The function stays the same for the whole run: the dataset repeats one
    ``(W, y)`` pair.
    """

    def __init__(self, dims: int = 10, batch_size: int = 128, init_stddev: float = 0.01):
        if dims < 1 or batch_size < 1:
            raise ValueError(f"dims and batch_size must be >= 1, got {dims}, {batch_size}")
        self.dims = dims
        self.batch_size = batch_size
        self.init_stddev = init_stddev
        self.num_functions = batch_size
        self.name = "quadratic"

    def param_shapes(self) -> list[tf.TensorShape]:
        return [tf.TensorShape([self.batch_size, self.dims])]

    def initial_params(self, seed: int) -> list[tf.Tensor]:
        return [
            tf.random.stateless_normal(
                [self.batch_size, self.dims], seed_pair(seed, 1), stddev=self.init_stddev
            )
        ]

    def sample_function(self, seed: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The ``(W, y)`` of optimizee ``seed``: ``[B, d, d]`` and ``[B, d]``."""
        w = tf.random.stateless_normal([self.batch_size, self.dims, self.dims], seed_pair(seed, 2))
        y = tf.random.stateless_normal([self.batch_size, self.dims], seed_pair(seed, 3))
        return w, y

    def batches(self, seed: int, split: str = "train") -> tf.data.Dataset:
        del split  # a quadratic has no data splits
        return tf.data.Dataset.from_tensors(self.sample_function(seed)).repeat()

    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        (theta,) = params
        w, y = batch
        residual = tf.linalg.matvec(w, theta) - y
        return tf.reduce_sum(tf.square(residual), axis=-1)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "dims": self.dims,
            "batch_size": self.batch_size,
            "init_stddev": self.init_stddev,
            "num_functions": self.num_functions,
        }
