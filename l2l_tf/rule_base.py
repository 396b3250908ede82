"""What the rule families share: their errors, config JSON, weight checks and ``tf.Module`` base.

``l2l_tf.rules`` (the paper's LSTM) and ``l2l_tf.rules_mlp`` (the per-parameter MLP) build on
these; ``l2l_tf.rules`` re-exports them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf


class RuleConfigError(ValueError):
    """A rule architecture is invalid or beyond the size limits; the message names the field."""


class RuleWeightsError(ValueError):
    """Weight values that do not fit a rule's architecture; the message names the weight."""


_FOR_XLA = contextvars.ContextVar("l2l_tf_rules_traced_for_xla", default=True)


@contextlib.contextmanager
def traced_for(xla: bool) -> Iterator[None]:
    """Rules traced inside this context write their step for XLA (``True``) or for a plain graph
    (``False``). Only rules whose best form differs read it (``rules_mlp.MLPRule``: column-wise
    sums that XLA fuses, or matmuls); every form computes the same function, to float rounding.

    It acts where a rule is *traced*, in this thread: enter it inside the function being
    traced (``compiled_function`` does), not around a call of a ``tf.function`` that may
    already be traced or that traces in another thread (``tf.distribute`` replicas). Outside
    any context rules take the XLA form: eager calls, exported SavedModels, and
    ``LearnedOptimizer``'s rule step (XLA-compiled by default for the mlp rule; with
    ``jit_compile_rule=False`` it is traced into Keras's train function in that form)."""
    token = _FOR_XLA.set(bool(xla))
    try:
        yield
    finally:
        _FOR_XLA.reset(token)


def tracing_for_xla() -> bool:
    """Whether the rule being traced should write its step for XLA (``traced_for``)."""
    return _FOR_XLA.get()


def compiled_function(fn: Callable, jit_compile: bool, xla_form: bool | None = None, **kwargs: Any) -> Any:
    """``tf.function(fn, jit_compile=jit_compile, **kwargs)`` whose traces of the rules run
    inside ``traced_for(jit_compile)``, so each rule takes the form that compiler runs best
    (``xla_form`` overrides the form, for benchmarks)."""
    form = jit_compile if xla_form is None else xla_form

    @functools.wraps(fn)
    def traced(*args: Any) -> Any:
        with traced_for(form):
            return fn(*args)

    return tf.function(traced, jit_compile=jit_compile, **kwargs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class JsonConfig:
    """JSON (de)serialisation of a rule-config dataclass with a ``momentum_decays`` tuple."""

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["momentum_decays"] = list(self.momentum_decays)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """The config of ``to_dict``'s object; ``RuleConfigError`` naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict):
            raise RuleConfigError(f"a rule config must be a JSON object, got {type(values).__name__}")
        unknown = set(values) - known
        if unknown:
            raise RuleConfigError(f"unknown rule config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def check_weight_values(config: Any, values: Sequence[Any], source: str) -> list[np.ndarray]:
    """``values`` as float32 arrays, checked against ``config``'s shapes and for finiteness
    before anything of the rule's size is allocated (``RuleWeightsError`` naming the weight)."""
    shapes = config.weight_shapes()
    if not isinstance(values, (list, tuple)) or len(values) != len(shapes):
        count = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise RuleWeightsError(f"{source}: expected {len(shapes)} weight tensors for {config}, got {count}")
    arrays = []
    for name, value, shape in zip(config.weight_names(), values, shapes):
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise RuleWeightsError(f"{source}: weight rule/{name} is not an array of numbers ({error})") from error
        if array.shape != shape:
            raise RuleWeightsError(f"{source}: weight rule/{name} has shape {list(array.shape)}, expected {list(shape)}")
        if not np.all(np.isfinite(array)):
            raise RuleWeightsError(f"{source}: weight rule/{name} holds NaN or infinite values; the rule is broken")
        arrays.append(array)
    return arrays


class RuleModule(tf.Module):
    """What the rule families' ``tf.Module``s share: zero initial state of ``config.state_size``
    columns and the weights' (de)serialisation in ``weights()`` order."""

    config: Any

    def weights(self) -> list[tf.Variable]:
        raise NotImplementedError

    @property
    def state_size(self) -> int:
        return self.config.state_size

    def init_state(self, num_coordinates: int | tf.Tensor) -> tf.Tensor:
        """Zero state for ``num_coordinates`` coordinates: ``[N, state_size]``."""
        return tf.zeros(tf.stack([num_coordinates, self.state_size]), tf.float32)

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values as float32 arrays, in ``weights()`` order."""
        return [variable.numpy() for variable in self.weights()]

    def set_weights(self, values: Sequence[Any], source: str = "weights") -> None:
        """Assigns ``values`` (``get_weights`` order), after ``check_weight_values``; ``source``
        names where they came from in errors."""
        for variable, array in zip(self.weights(), check_weight_values(self.config, values, source)):
            variable.assign(array)

    def num_meta_parameters(self) -> int:
        return int(sum(v.shape.num_elements() for v in self.trainable_variables))
