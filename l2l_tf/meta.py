"""Meta-training of a rule on a problem family, one truncation of an optimizee run at a time.

An optimizee run of ``num_steps`` is split into unrolls of ``unroll_length`` steps. For
each, a ``GradientEstimator`` (``l2l_tf.estimators``; truncated BPTT by default) gives the
meta-gradients, and ``MetaTrainer`` applies one meta-optimizer (Adam) step to the
estimator's variables, in one compiled ``tf.function``. Optimizee parameters and rule
states carry over between unrolls as plain tensors; a fresh optimizee is drawn every
``num_steps``. The unroll itself lives in ``l2l_tf.unroll`` (re-exported here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from l2l_tf.estimators import GradientEstimator, make_estimator
from l2l_tf.layout import run_progress
from l2l_tf.meta_config import (  # re-exported: l2l_tf.meta.MetaConfig
    MetaConfig,
    MetaSchedule,
)
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rule_base import compiled_function
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.unroll import (  # re-exported: l2l_tf.meta.unroll_with_state etc.
    all_finite,
    loss_and_gradient,
    loss_gradient_and_state,
    step_batch,
    unroll_with_state,
)

__all__ = [
    "MetaConfig", "MetaSchedule", "MetaTrainer", "TrainStep", "UnrollResult", "all_finite", "loss_and_gradient",
    "loss_gradient_and_state", "make_meta_optimizer", "step_batch", "unroll_with_state",
]


@dataclasses.dataclass(frozen=True)
class UnrollResult:
    """One unroll's outcome, as the meta-trainers yield it.

    ``meta_loss`` (scalar), ``step_losses`` (``[T]``; ``[replicas, T]`` when distributed),
    ``meta_gradient_norm``, ``applied`` (``False``: the update was skipped as non-finite);
    on one device the optimizee ``params``, rule ``state`` and ``optimizee_state`` (e.g.
    BatchNorm statistics; ``()`` for stateless optimizees) after the unroll; when
    distributed, ``local_seeds``, the runs of this worker's replicas.
    """

    meta_loss: Any
    step_losses: Any
    meta_gradient_norm: Any
    applied: Any
    params: tf.Tensor | None = None
    state: tf.Tensor | None = None
    local_seeds: tuple[int, ...] = ()
    optimizee_state: Any = None


class TrainStep(NamedTuple):
    """What the compiled ``MetaTrainer.train_unroll`` returns: the estimator's ``meta_loss``
    and ``step_losses``, the meta-gradient's global norm, whether the update was ``applied``,
    and the estimator's ``carry`` for the next unroll."""

    meta_loss: tf.Tensor
    step_losses: tf.Tensor
    meta_gradient_norm: tf.Tensor
    applied: tf.Tensor
    carry: Any


def make_meta_optimizer(
    config: MetaConfig, variables: Sequence[tf.Variable], optimizer_class: type[keras.optimizers.Adam] = keras.optimizers.Adam
) -> keras.optimizers.Adam:
    """The meta-optimizer ``config`` names, built for ``variables`` (shared by the trainers of
    every problem of a task distribution, so its slots and step count are one)."""
    optimizer = optimizer_class(
        learning_rate=config.meta_learning_rate,
        global_clipnorm=config.meta_gradient_clip_norm,
        gradient_accumulation_steps=config.meta_gradient_accumulation if config.meta_gradient_accumulation > 1 else None,
    )
    optimizer.build(list(variables))
    return optimizer


class MetaTrainer:
    """Meta-trains ``rule`` (a rule, or a ``RuleSet`` whose rules train jointly) on
    ``problem`` with a gradient estimator (default truncated BPTT) and Adam.

    The compiled unroll (``train_unroll``: estimate, then apply) is built once, with a fixed
    input signature, and holds no Python-side state, so it neither retraces nor blocks a
    ``tf.distribute`` strategy. A non-finite meta-loss or meta-gradient skips the update
    (``skipped_updates`` counts them); the weights are never touched. ``meta_optimizer``
    and ``skipped_updates`` may be shared with the trainers of other problems.
    """

    def __init__(
        self,
        rule: CoordinatewiseLSTM | RuleSet,
        problem: Problem,
        config: MetaConfig,
        meta_optimizer_class: type[keras.optimizers.Adam] = keras.optimizers.Adam,
        estimator: GradientEstimator | None = None,
        meta_optimizer: keras.optimizers.Optimizer | None = None,
        skipped_updates: tf.Variable | None = None,
    ):
        self.rule, self.problem, self.config = rule, problem, config
        self.estimator = estimator or make_estimator(rule, problem, config)
        self.variables = list(self.estimator.variables)
        self.meta_optimizer = meta_optimizer or make_meta_optimizer(config, self.variables, meta_optimizer_class)
        if skipped_updates is None:
            skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
        self.skipped_updates = skipped_updates
        self.unroll_signature = [
            self.estimator.carry_spec(),
            problem.stacked_batch_spec(config.unroll_length),
            tf.TensorSpec([config.unroll_length], tf.float32),  # step weights
            tf.TensorSpec([config.unroll_length], tf.float32),  # each step's run progress
        ]
        self.train_unroll = compiled_function(
            self._train_unroll, config.schedule.jit_compile, input_signature=self.unroll_signature
        )

    def _train_unroll(self, carry: Any, batches: Batch, step_weights: tf.Tensor, progress: tf.Tensor) -> TrainStep:
        estimate = self.estimator.estimate(carry, batches, step_weights, progress)
        meta_gradients = estimate.gradients
        finite = all_finite([estimate.meta_loss, *meta_gradients])

        def apply() -> tf.Tensor:
            self.meta_optimizer.apply_gradients(zip(meta_gradients, self.variables))
            return tf.constant(True)

        def skip() -> tf.Tensor:
            self.skipped_updates.assign_add(1)
            return tf.constant(False)

        applied = tf.cond(finite, apply, skip)
        norm = tf.linalg.global_norm(meta_gradients)
        return TrainStep(estimate.meta_loss, estimate.step_losses, norm, applied, estimate.carry)

    def run_batches(self, seed: int) -> Iterator[Batch]:
        """Per-unroll stacked batches for optimizee ``seed`` (a tf.data pipeline) over its
        ``config.run_num_steps(seed)`` steps."""
        dataset = self.problem.batches(seed, "train")
        dataset = dataset.batch(self.config.unroll_length, drop_remainder=True).prefetch(2)
        return iter(dataset.take(self.config.run_num_steps(seed) // self.config.unroll_length))

    def unroll_weights(self, index: int, num_steps: int | None = None) -> tf.Tensor:
        """The step weights ``w_t`` of unroll ``index``'s meta-loss terms (steps ``t = 1..T``)
        in a run of ``num_steps`` (default ``config.num_steps``)."""
        length = self.config.unroll_length
        return tf.constant(self.config.step_weights(num_steps)[index * length + 1 : (index + 1) * length + 1])

    def unroll_progress(self, index: int, num_steps: int | None = None) -> tf.Tensor:
        """Each step's ``progress=`` in unroll ``index`` of a run of ``num_steps`` (default
        ``config.num_steps``): ``layout.run_progress`` of its step index (read by a rule with
        ``progress_input`` only)."""
        length = self.config.unroll_length
        steps = tf.range(index * length, (index + 1) * length)
        return run_progress(steps, num_steps or self.config.num_steps)

    def unrolls(self, seed: int) -> Iterator[UnrollResult]:
        """Meta-trains over optimizee run ``seed``, yielding each unroll's ``UnrollResult``.

        The estimator's carry (optimizee parameters and state, rule states) carries over
        between unrolls as constants.
        """
        carry, num_steps = self.estimator.initial_carry(seed), self.config.run_num_steps(seed)
        for index, batches in enumerate(self.run_batches(seed)):
            step = self.train_unroll(
                carry, batches, self.unroll_weights(index, num_steps), self.unroll_progress(index, num_steps)
            )
            carry, run = step.carry, self.estimator.run_of(step.carry)
            yield UnrollResult(step.meta_loss, step.step_losses, step.meta_gradient_norm, step.applied,
                               run.params, run.state, optimizee_state=run.optimizee_state)
