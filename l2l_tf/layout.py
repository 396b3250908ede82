"""Which coordinates of a flat ``[N]`` vector belong to which optimizee tensor.

A coordinatewise rule (the paper's LSTM) treats every coordinate alone. Rules that
normalise or condition per tensor (``rules_mlp.MLPRule``) or average over all
coordinates (an LSTM with global averaging cells) need to know the tensors: the flat
vector is the concatenation of the tensors' flattened values, in order, so the layout is
just the tensors' sizes::

    layout = TensorLayout.from_shapes(problem.param_shapes())
    per_tensor = layout.mean(tf.square(gradients))     # [T]
    update, state = rule_step(rule, gradients, state, layout=layout)  # passes what rule declares

``sizes`` is a tuple of Python ints where they are known when the step is built (the
Keras optimizer, meta-training, evaluation), or an int32 ``[T]`` tensor (an exported
rule's signature, where the caller passes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf.rules import CellRule, Rule


class LayoutError(ValueError):
    """Tensor sizes that do not describe the coordinates they are given with."""


class TensorLayout:
    """The sizes of the tensors a flat vector is made of, and per-tensor reductions over it.

    Args:
      sizes: each tensor's number of coordinates, in flat order: Python ints >= 0, or
        an int32 ``[T]`` tensor (checked only for its type and rank).
    """

    def __init__(self, sizes: Sequence[int] | tf.Tensor):
        if isinstance(sizes, (tf.Tensor, tf.Variable)):
            if sizes.shape.rank != 1:
                raise LayoutError(f"tensor sizes must be a [T] tensor, got shape {sizes.shape}")
            self.sizes: tuple[int, ...] | tf.Tensor = tf.cast(sizes, tf.int32)
            self.num_tensors: int | tf.Tensor = tf.size(self.sizes)
            self.segment_ids = tf.repeat(tf.range(self.num_tensors), self.sizes)
        else:
            values = tuple(sizes)
            if not values or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0
                                     for s in values):
                raise LayoutError(f"tensor sizes must be a non-empty list of ints >= 0, got {values!r}")
            self.sizes = tuple(int(s) for s in values)
            self.num_tensors = len(self.sizes)
            self.segment_ids = tf.constant(np.repeat(np.arange(len(values), dtype=np.int32), values))
        self._counts = tf.maximum(tf.cast(self.sizes, tf.float32), 1.0)  # an empty tensor's mean is 0

    @classmethod
    def from_shapes(cls, shapes: Sequence[Any]) -> TensorLayout:
        """The layout of tensors of these shapes (``TensorShape``s or lists of ints)."""
        return cls([math.prod(tf.TensorShape(shape).as_list()) for shape in shapes])

    @classmethod
    def single(cls, num_coordinates: int) -> TensorLayout:
        """All coordinates as one tensor (an all-coordinate reduction)."""
        return cls([num_coordinates])

    @property
    def num_coordinates(self) -> int | tf.Tensor:
        """``N``, the sum of the sizes."""
        if isinstance(self.sizes, tuple):
            return sum(self.sizes)
        return tf.reduce_sum(self.sizes)

    def check(self, num_coordinates: int | None) -> None:
        """Raises ``LayoutError`` if static sizes do not add up to a static ``num_coordinates``."""
        if isinstance(self.sizes, tuple) and num_coordinates is not None and sum(self.sizes) != num_coordinates:
            raise LayoutError(
                f"the tensor sizes add up to {sum(self.sizes)} coordinates but {num_coordinates} were given;"
                " pass the sizes of exactly the tensors whose gradients are concatenated"
            )

    def sum(self, values: tf.Tensor) -> tf.Tensor:
        """Per-tensor sums of ``[N, ...]`` values: ``[T, ...]``."""
        return tf.math.unsorted_segment_sum(values, self.segment_ids, self.num_tensors)

    def mean(self, values: tf.Tensor) -> tf.Tensor:
        """Per-tensor means of ``[N, ...]`` values: ``[T, ...]``."""
        counts = tf.reshape(self._counts, [-1] + [1] * (values.shape.rank - 1))
        return self.sum(values) / counts

    def broadcast(self, per_tensor: tf.Tensor) -> tf.Tensor:
        """``[T, ...]`` per-tensor values repeated to every coordinate: ``[N, ...]``."""
        return tf.gather(per_tensor, self.segment_ids)

    @property
    def is_static(self) -> bool:
        """Whether the sizes are Python ints (known when the step is built)."""
        return isinstance(self.sizes, tuple)

    def spread_mean(self, values: tf.Tensor) -> tf.Tensor:
        """Each coordinate's tensor's mean of ``[N, ...]`` values: ``[N, ...]``."""
        return self.broadcast(self.mean(values))

    def sizes_tensor(self) -> tf.Tensor:
        """The sizes as an int32 ``[T]`` tensor (an exported rule's ``tensor_sizes`` input)."""
        return tf.convert_to_tensor(self.sizes, tf.int32)


def needs_layout(rule: Rule) -> bool:
    """Whether ``rule.step`` takes ``layout=`` (per-tensor reductions); false if undeclared."""
    return bool(getattr(rule, "needs_layout", False))


def needs_params(rule: Rule) -> bool:
    """Whether ``rule.step`` takes ``params=`` (the parameter values); false if undeclared."""
    return bool(getattr(rule, "needs_params", False))


def needs_progress(rule: Rule) -> bool:
    """Whether ``rule.step`` takes ``progress=`` (how far through its run the optimizee is);
    false if undeclared."""
    return bool(getattr(rule, "needs_progress", False))


def run_progress(step: tf.Tensor | int, total_steps: tf.Tensor | int) -> tf.Tensor:
    """``progress=`` at optimizee step ``step`` (0-based) of a run of ``total_steps``: ``step /
    total_steps``, clipped to [0, 1]: the last step of the run reads ``(T - 1) / T``, the steps
    past its end read 1."""
    ratio = tf.cast(step, tf.float32) / tf.cast(tf.maximum(total_steps, 1), tf.float32)
    return tf.clip_by_value(ratio, 0.0, 1.0)


def has_global_cells(rule: Rule) -> bool:
    """Whether ``rule`` reads a statistic over all coordinates (``rules.CoordinatewiseLSTM``
    with ``gac_cells``: ``global_context``); false if undeclared."""
    return bool(getattr(rule, "has_global_cells", False))


def global_context(rule: Rule, blocks: Sequence[list[tf.Tensor]]) -> tf.Tensor | None:
    """The all-coordinate statistic a rule with global cells reads (``None`` for other rules),
    from the cells (``split_state``) of every block of the coordinates it is about to step:
    what callers that cut the coordinates into blocks pass to each block as ``context=``."""
    return rule.global_context(blocks) if has_global_cells(rule) else None


def _optional_inputs(rule: Rule, layout: TensorLayout | None, params: tf.Tensor | None,
                     context: tf.Tensor | None = None, progress: tf.Tensor | None = None) -> dict[str, Any]:
    """The keyword inputs ``rule`` declares, checked to be given (and a global-cell rule's
    ``context``, when the caller computed it over all coordinates: ``rules.global_context``)."""
    inputs: dict[str, Any] = {} if context is None else {"context": context}
    if needs_progress(rule):
        if progress is None:
            raise ValueError(f"{type(rule).__name__} reads the run's progress and needs progress= (t / T)")
        inputs["progress"] = progress
    if needs_layout(rule):
        if layout is None:
            raise ValueError(f"{type(rule).__name__} normalises per tensor and needs layout= (a TensorLayout)")
        inputs["layout"] = layout
    if needs_params(rule):
        if params is None:
            raise ValueError(f"{type(rule).__name__} reads the parameter values and needs params= ([N] floats)")
        inputs["params"] = params
    return inputs


def rule_step(rule: Rule, gradients: tf.Tensor, state: tf.Tensor, layout: TensorLayout | None = None,
              params: tf.Tensor | None = None, context: tf.Tensor | None = None,
              progress: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``rule.step``, given the layout, parameter values and progress if (and only if) it
    declares them."""
    return rule.step(gradients, state, **_optional_inputs(rule, layout, params, context, progress))


def rule_step_cells(rule: CellRule, gradients: tf.Tensor, cells: list[tf.Tensor],
                    layout: TensorLayout | None = None, params: tf.Tensor | None = None,
                    progress: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """``rule.step_cells``, given the layout, parameter values and progress if it declares them."""
    return rule.step_cells(gradients, cells, **_optional_inputs(rule, layout, params, progress=progress))


def check_blockable(rule: Rule, setting: str, blocked: bool) -> None:
    """Refuses ``setting`` (a way of cutting the coordinates into blocks, in use when
    ``blocked``) for a rule that reduces over whole tensors: blocks would change its values."""
    if blocked and needs_layout(rule):
        raise ValueError(
            f"{setting} cuts the coordinates into blocks, but {type(rule).__name__} normalises over whole"
            " tensors; leave it at its default (no blocks) for this rule"
        )
