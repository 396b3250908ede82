"""The optimizee interface that meta-training and evaluation are written against."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

Batch = Any  # a nest of tensors: one step's data (a minibatch, or a quadratic's W and y)


class Problem(abc.ABC):
    """A family of optimizees: parameters, a per-step data stream and a loss.

    ``loss`` returns one value per independent function optimised in parallel
    (``num_functions``; 128 random quadratics, or 1 for a network). The gradient fed to
    an optimizer is that of the *sum* of these values, so each function's parameters
    see only their own function's gradient; reported and meta losses use the *mean*.
    """

    name: str = "problem"
    num_functions: int = 1

    @abc.abstractmethod
    def param_shapes(self) -> list[tf.TensorShape]:
        """Shapes of the optimizee's parameter tensors, in a fixed order."""

    def param_names(self) -> list[str]:
        """A path per parameter tensor (``param_shapes`` order), what rule sets assign
        parameters by (``l2l_tf.rule_sets``); ``param_<i>`` unless the problem names them."""
        return [f"param_{i}" for i in range(len(self.param_shapes()))]

    @abc.abstractmethod
    def initial_params(self, seed: int) -> list[tf.Tensor]:
        """Freshly initialised parameters for optimizee number ``seed``."""

    @abc.abstractmethod
    def batches(self, seed: int, split: str = "train") -> tf.data.Dataset:
        """An endless dataset of per-step data for optimizee number ``seed``."""

    @abc.abstractmethod
    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        """The ``[num_functions]`` losses of ``params`` on one step's ``batch``."""

    def metrics(
        self, params: Sequence[tf.Tensor], seed: int, state: tf.Tensor | None = None
    ) -> dict[str, float]:
        """Problem-specific end-of-run metrics (e.g. test accuracy) at the run's final
        parameters and optimizee ``state``; none by default."""
        del params, seed, state
        return {}

    # Optimizee state: non-trainable tensors that the forward pass updates (BatchNorm
    # moving statistics), one flat float32 vector carried through a run, reset per run,
    # never changed by the optimizer and never differentiated. Empty by default.

    @property
    def state_size(self) -> int:
        """Length of the flat optimizee state (0: a pure function of the parameters)."""
        return 0

    def initial_state(self, seed: int) -> tf.Tensor:
        """The ``[state_size]`` optimizee state at the start of run ``seed``."""
        del seed
        return tf.zeros([0])

    def loss_and_state(
        self, params: Sequence[tf.Tensor], state: tf.Tensor, batch: Batch
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``loss`` and the state after this step's forward pass (unchanged by default)."""
        return self.loss(params, batch), state

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, stored in exported rules' metadata."""
        return {"name": self.name, "num_functions": self.num_functions}

    # Flat-vector helpers: the rule sees every coordinate of every parameter at once.

    @property
    def num_coordinates(self) -> int:
        return int(sum(shape.num_elements() for shape in self.param_shapes()))

    def flatten(self, params: Sequence[tf.Tensor]) -> tf.Tensor:
        return tf.concat([tf.reshape(p, [-1]) for p in params], axis=0)

    def unflatten(self, flat: tf.Tensor) -> list[tf.Tensor]:
        shapes = self.param_shapes()
        sizes = [shape.num_elements() for shape in shapes]
        return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, sizes), shapes)]

    def flat_loss(self, flat_params: tf.Tensor, batch: Batch) -> tf.Tensor:
        return self.loss(self.unflatten(flat_params), batch)

    def flat_loss_and_state(
        self, flat_params: tf.Tensor, state: tf.Tensor, batch: Batch
    ) -> tuple[tf.Tensor, tf.Tensor]:
        return self.loss_and_state(self.unflatten(flat_params), state, batch)

    def batch_spec(self) -> Any:
        """``tf.TensorSpec`` nest of one step's batch (fixes compiled signatures)."""
        return self.batches(0).element_spec

    def stacked_batch_spec(self, length: int) -> Any:
        """``tf.TensorSpec`` nest of ``length`` steps' batches stacked ``[length, ...]``."""
        return tf.nest.map_structure(
            lambda s: tf.TensorSpec([length, *s.shape], s.dtype), self.batch_spec()
        )


def seed_pair(seed: int, salt: int = 0) -> tf.Tensor:
    """A stateless-RNG seed from an integer seed and a salt separating streams."""
    if seed < 0:
        raise ValueError(f"seeds must be non-negative, got {seed}")
    return tf.constant([seed, salt], tf.int64)

