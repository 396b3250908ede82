"""Gradient estimators: the seam between the meta-training loop and how meta-gradients are made.

A ``GradientEstimator`` turns one truncation of an optimizee run (a run's batches for
``unroll_length`` steps, and whatever the estimator carries from the previous truncation)
into meta-gradients for its ``variables`` and the losses it saw. It never updates the
variables: ``l2l_tf.meta.MetaTrainer`` (one device) and ``DistributedMetaTrainer``
(all-reduced over replicas) apply the meta-optimizer, skip non-finite updates and drive
the truncations of a run, whatever the estimator.

``TruncatedBPTT`` (the paper's, and the default) differentiates the unroll's meta-loss
through the rule. ``l2l_tf.pes.PersistentES`` estimates it from antithetic perturbations
of the weights that persist over a run's truncations (unbiased over the whole run).

The carry is the estimator's own nest of tensors (fixed shapes, so the compiled call
never retraces); ``run_of`` reads the unperturbed optimizee run out of it for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import tensorflow as tf

from l2l_tf import rule_sets
from l2l_tf.layout import check_blockable
from l2l_tf.meta_config import GRADIENT_ESTIMATORS, MetaConfig
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import CellRule, CoordinatewiseLSTM
from l2l_tf.unroll import unroll_with_state


class RunCarry(NamedTuple):
    """An optimizee run between two truncations: flat ``params`` ``[n]``, the rule's
    ``state`` ``[n, state_size]`` and the problem's ``optimizee_state`` ``[state_size]``."""

    params: tf.Tensor
    state: tf.Tensor
    optimizee_state: tf.Tensor


class Estimate(NamedTuple):
    """One truncation's outcome: the (estimated) ``meta_loss``, the ``step_losses`` ``[T]``
    of the unperturbed run, ``gradients`` (one per variable, in ``variables``' order) and
    the ``carry`` for the next truncation."""

    meta_loss: tf.Tensor
    step_losses: tf.Tensor
    gradients: list[tf.Tensor]
    carry: Any


@runtime_checkable
class GradientEstimator(Protocol):
    """Meta-gradients of one truncation of an optimizee run (see the module docstring).

    ``variables`` are what the gradients are for (the rule's weights, or every weight list
    of a rule set); ``estimate`` is called inside a compiled function with ``carry_spec()``,
    ``problem.stacked_batch_spec(unroll_length)`` and ``[unroll_length]`` step weights.
    """

    problem: Problem
    variables: Sequence[tf.Variable]

    def carry_spec(self) -> Any:
        """The ``tf.TensorSpec`` nest of the carry."""

    def initial_carry(self, seed: int) -> Any:
        """The carry at the start of optimizee run ``seed``."""

    def estimate(self, carry: Any, batches: Batch, step_weights: tf.Tensor,
                 progress: tf.Tensor | None = None) -> Estimate:
        """Meta-gradients and losses of the truncation starting from ``carry`` (``progress``:
        each step's run progress, for a rule that reads it)."""

    def run_of(self, carry: Any) -> RunCarry:
        """The unperturbed optimizee run held by ``carry``."""


def run_spec(problem: Problem, state_size: int) -> RunCarry:
    """``RunCarry``'s ``tf.TensorSpec``s for ``problem`` and a rule of ``state_size``."""
    n = problem.num_coordinates
    return RunCarry(
        tf.TensorSpec([n], tf.float32), tf.TensorSpec([n, state_size], tf.float32),
        tf.TensorSpec([problem.state_size], tf.float32),
    )


def initial_run(rule: CellRule, problem: Problem, seed: int) -> RunCarry:
    """Run ``seed``'s initial parameters, the state of ``rule`` (the rule the unroll steps)
    and the optimizee state."""
    return RunCarry(
        problem.flatten(problem.initial_params(seed)), rule.init_state(problem.num_coordinates),
        problem.initial_state(seed),
    )


class TruncatedBPTT:
    """Truncated backpropagation through time: the gradient of the truncation's meta-loss
    (``l2l_tf.unroll.unroll_with_state``) with respect to the rule's weights (every rule's,
    for a ``RuleSet``). No gradient flows across truncations; the carry is the ``RunCarry``."""

    def __init__(self, rule: CoordinatewiseLSTM | RuleSet, problem: Problem, config: MetaConfig):
        self.rule, self.problem, self.config = rule, problem, config
        self.variables = rule.trainable_variables
        # What the unroll steps: the rule itself, its coordinate blocks as parallel chains, or
        # a rule set bound to the problem's parameters (whose rules are checked in ``bind``).
        shards = config.schedule.coordinate_shards
        check_blockable(rule, f"coordinate_shards={shards}", shards > 1)
        self.unroll_rule: CellRule = rule_sets.for_problem(rule, problem, shards)

    def carry_spec(self) -> RunCarry:
        return run_spec(self.problem, self.unroll_rule.state_size)

    def initial_carry(self, seed: int) -> RunCarry:
        return initial_run(self.unroll_rule, self.problem, seed)

    def run_of(self, carry: RunCarry) -> RunCarry:
        return carry

    def unroll(self, carry: RunCarry, batches: Batch, step_weights: tf.Tensor,
               progress: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, RunCarry]:
        """The truncation under the current weights: ``(meta_loss, step_losses, carry)``."""
        config = self.config
        meta_loss, step_losses, params, state, optimizee_state = unroll_with_state(
            self.unroll_rule, self.problem, carry.params, carry.state, batches, config.unroll_length,
            config.second_derivatives, step_weights, config.objective, config.schedule.recompute_segment,
            carry.optimizee_state, progress,
        )
        return meta_loss, step_losses, RunCarry(params, state, optimizee_state)

    def estimate(self, carry: RunCarry, batches: Batch, step_weights: tf.Tensor,
                 progress: tf.Tensor | None = None) -> Estimate:
        with tf.GradientTape() as tape:
            meta_loss, step_losses, carry = self.unroll(carry, batches, step_weights, progress)
        # ZERO: a rule of a set that no parameter of this problem is assigned to stays as it is.
        gradients = tape.gradient(meta_loss, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return Estimate(meta_loss, step_losses, gradients, carry)


def make_estimator(rule: CoordinatewiseLSTM, problem: Problem, config: MetaConfig) -> GradientEstimator:
    """The estimator ``config.gradient_estimator`` names, for ``rule`` on ``problem``."""
    if config.gradient_estimator == "tbptt":
        return TruncatedBPTT(rule, problem, config)
    if config.gradient_estimator == "pes":
        from l2l_tf.pes import PersistentES  # pes builds on this module

        return PersistentES(rule, problem, config)
    raise ValueError(f"unknown gradient_estimator {config.gradient_estimator!r}; choose from {GRADIENT_ESTIMATORS}")
