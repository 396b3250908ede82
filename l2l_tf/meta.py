"""Truncated-BPTT meta-training of a coordinatewise rule on a problem family.

An optimizee run of ``num_steps`` is split into unrolls of ``unroll_length`` steps.
Each unroll is one compiled ``tf.function``: it runs the optimizee forward under the
rule, sums the optimizee losses (the meta-loss), differentiates that sum with
respect to the rule's weights and applies one Adam step to them. Optimizee
parameters and rule states carry over between unrolls as plain tensors (no gradient
flows across the truncation); a fresh optimizee is drawn every ``num_steps``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf

from l2l_tf import rule_sets
from l2l_tf.layout import TensorLayout, check_blockable, needs_layout, rule_step_cells
from l2l_tf.meta_config import MetaConfig  # re-exported: l2l_tf.meta.MetaConfig
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import CellRule, CoordinatewiseLSTM


def step_batch(batches: Batch, t: int | tf.Tensor) -> Batch:
    """Step ``t``'s data from a nest of per-unroll stacked batches ``[T, ...]``."""
    return tf.nest.map_structure(lambda b: b[t], batches)


def loss_gradient_and_state(
    problem: Problem, params: tf.Tensor, state: tf.Tensor, batch: Batch
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-function losses ``[F]``, the gradient of their sum w.r.t. flat ``params``, and
    the optimizee ``state`` after this step's forward pass (``Problem.loss_and_state``; no
    gradient flows through it).

    In a graph (``tf.function``) the gradient is built with ``tf.gradients``, which works
    where tapes are paused, e.g. inside the forward pass of ``tf.recompute_grad``; an
    enclosing tape still records it (second derivatives).
    """
    if not tf.executing_eagerly():
        losses, state = problem.flat_loss_and_state(params, state, batch)
        return losses, tf.gradients(tf.reduce_sum(losses), params)[0], state
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses, state = problem.flat_loss_and_state(params, state, batch)
        total = tf.reduce_sum(losses)
    return losses, tape.gradient(total, params), state


def loss_and_gradient(
    problem: Problem, params: tf.Tensor, batch: Batch
) -> tuple[tf.Tensor, tf.Tensor]:
    """``loss_gradient_and_state`` from the problem's initial state: losses and gradient."""
    return loss_gradient_and_state(problem, params, problem.initial_state(0), batch)[:2]


def _run_steps(
    rule: CellRule,
    problem: Problem,
    params: tf.Tensor,
    optimizee_state: tf.Tensor,
    cells: list[tf.Tensor],
    batches: Batch,
    steps: range,
    second_derivatives: bool,
    step_weights: tf.Tensor,
    objective: Callable[[tf.Tensor], tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor], tf.Tensor, tf.Tensor]:
    """Optimizee steps ``steps`` of an unroll:
    ``(params, optimizee state, cells, meta-loss terms, step losses)``.

    Step ``t > 0`` adds ``w_{t-1} g(mean f(theta_t))`` to the meta-loss (step 0's loss is
    the previous unroll's last term).
    """
    meta_loss, step_losses = tf.constant(0.0), []
    layout = TensorLayout.from_shapes(problem.param_shapes()) if needs_layout(rule) else None
    for t in steps:
        losses, gradients, optimizee_state = loss_gradient_and_state(
            problem, params, optimizee_state, step_batch(batches, t)
        )
        mean_loss = tf.reduce_mean(losses)
        step_losses.append(mean_loss)
        if t > 0:
            meta_loss += step_weights[t - 1] * objective(mean_loss)
        if not second_derivatives:
            gradients = tf.stop_gradient(gradients)
        update, cells = rule_step_cells(rule, gradients, cells, layout, params)
        params = params + update
    return params, optimizee_state, cells, meta_loss, tf.stack(step_losses)


def unroll_with_state(
    rule: CellRule,
    problem: Problem,
    params: tf.Tensor,
    state: tf.Tensor,
    batches: Batch,
    unroll_length: int,
    second_derivatives: bool = False,
    step_weights: tf.Tensor | None = None,
    objective: Callable[[tf.Tensor], tf.Tensor] | None = None,
    recompute_segment: int = 0,
    optimizee_state: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs ``unroll_length`` optimizee steps under ``rule`` (differentiably).

    Returns ``(meta_loss, step_losses, params, state, optimizee_state)``: ``state`` is the
    rule's; ``optimizee_state`` the problem's (default ``initial_state(0)``), carried by the
    forward passes; ``step_losses[t]`` the mean loss at the parameters step ``t`` started
    from, on its batch; ``meta_loss`` is ``sum_{t=1..T} w_t g(mean f(theta_t))``
    (``step_weights`` ``[T]``, default all 1; ``objective`` g, default the identity), where
    ``f(theta_T)`` is evaluated on the last step's batch so every update gets meta-gradient.

    ``recompute_segment=K > 0`` (must divide ``unroll_length``) runs the unroll as
    segments of K steps wrapped in ``tf.recompute_grad``: a tape keeps only each segment's
    inputs and recomputes its activations in the backward pass. Same values and gradients,
    far less memory, about one more forward pass per step.
    """
    if step_weights is None:
        step_weights = tf.ones([unroll_length])
    if objective is None:
        objective = tf.identity
    segment = recompute_segment or unroll_length
    if unroll_length % segment:
        raise ValueError(f"recompute_segment ({segment}) must divide unroll_length ({unroll_length})")
    if optimizee_state is None:
        optimizee_state = problem.initial_state(0)
    meta_loss, step_losses = tf.constant(0.0), []
    cells = rule.split_state(state)
    for start in range(0, unroll_length, segment):
        steps = range(start, start + segment)

        def run(
            params: tf.Tensor, optimizee_state: tf.Tensor, *cells: tf.Tensor, steps: range = steps
        ) -> list[tf.Tensor]:
            params, optimizee_state, cells, terms, losses = _run_steps(
                rule, problem, params, optimizee_state, list(cells), batches, steps,
                second_derivatives, step_weights, objective,
            )
            return [params, optimizee_state, *cells, terms, losses]

        if recompute_segment:
            run = tf.recompute_grad(run)
        params, optimizee_state, *cells, terms, losses = run(params, optimizee_state, *cells)
        meta_loss += terms
        step_losses.append(losses)
    state = rule.join_state(cells)
    last_batch = step_batch(batches, unroll_length - 1)
    final_losses, _ = problem.flat_loss_and_state(params, optimizee_state, last_batch)
    meta_loss += step_weights[-1] * objective(tf.reduce_mean(final_losses))
    return meta_loss, tf.concat(step_losses, axis=0), params, state, optimizee_state


def all_finite(tensors: list[tf.Tensor]) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


@dataclasses.dataclass(frozen=True)
class UnrollResult:
    """One truncated-BPTT unroll's outcome, as the meta-trainers yield it.

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


class MetaTrainer:
    """Meta-trains ``rule`` (a rule, or a ``RuleSet`` whose rules train jointly) on
    ``problem`` with truncated BPTT and Adam.

    The compiled unroll (``train_unroll``) is built once, with a fixed input signature,
    and holds no Python-side state, so it neither retraces nor blocks a
    ``tf.distribute`` strategy. A non-finite meta-loss or meta-gradient skips the
    update (``skipped_updates`` counts them); the rule's weights are never touched.
    """

    def __init__(
        self,
        rule: CoordinatewiseLSTM | RuleSet,
        problem: Problem,
        config: MetaConfig,
        meta_optimizer_class: type[keras.optimizers.Adam] = keras.optimizers.Adam,
    ):
        self.rule = rule
        self.problem = problem
        self.config = config
        self.meta_optimizer = meta_optimizer_class(
            learning_rate=config.meta_learning_rate,
            global_clipnorm=config.meta_gradient_clip_norm,
            gradient_accumulation_steps=(
                config.meta_gradient_accumulation if config.meta_gradient_accumulation > 1 else None
            ),
        )
        self.meta_optimizer.build(rule.trainable_variables)
        self.skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
        n = problem.num_coordinates
        # What the unroll steps: the rule itself, its coordinate blocks as parallel chains, or
        # a rule set bound to the problem's parameters (whose rules are checked in ``bind``).
        check_blockable(rule, f"--coordinate_blocks={config.coordinate_shards}", config.coordinate_shards > 1)
        self.unroll_rule: CellRule = rule_sets.for_problem(rule, problem, config.coordinate_shards)
        self.unroll_signature = signature = [
            tf.TensorSpec([n], tf.float32),
            tf.TensorSpec([n, self.unroll_rule.state_size], tf.float32),
            problem.stacked_batch_spec(config.unroll_length),
            tf.TensorSpec([config.unroll_length], tf.float32),
            tf.TensorSpec([problem.state_size], tf.float32),
        ]
        self.train_unroll = tf.function(
            self._train_unroll, input_signature=signature, jit_compile=config.jit_compile
        )

    def meta_gradients(
        self,
        params: tf.Tensor,
        state: tf.Tensor,
        batches: Batch,
        step_weights: tf.Tensor,
        optimizee_state: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor], tf.Tensor, tf.Tensor, tf.Tensor]:
        """One unroll and its meta-gradient, without the meta-update:
        ``(meta_loss, step_losses, meta_gradients, params, state, optimizee_state)``."""
        with tf.GradientTape() as tape:
            meta_loss, step_losses, params, state, optimizee_state = unroll_with_state(
                self.unroll_rule,
                self.problem,
                params,
                state,
                batches,
                self.config.unroll_length,
                self.config.second_derivatives,
                step_weights,
                self.config.objective,
                self.config.recompute_segment,
                optimizee_state,
            )
        # ZERO: a rule of a set that no parameter of this problem is assigned to stays as it is.
        meta_gradients = tape.gradient(
            meta_loss, self.rule.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return meta_loss, step_losses, meta_gradients, params, state, optimizee_state

    def _train_unroll(
        self,
        params: tf.Tensor,
        state: tf.Tensor,
        batches: Batch,
        step_weights: tf.Tensor,
        optimizee_state: tf.Tensor,
    ) -> dict:
        weights = self.rule.trainable_variables
        meta_loss, step_losses, meta_gradients, params, state, optimizee_state = self.meta_gradients(
            params, state, batches, step_weights, optimizee_state
        )
        finite = all_finite([meta_loss, *meta_gradients])

        def apply() -> tf.Tensor:
            self.meta_optimizer.apply_gradients(zip(meta_gradients, weights))
            return tf.constant(True)

        def skip() -> tf.Tensor:
            self.skipped_updates.assign_add(1)
            return tf.constant(False)

        applied = tf.cond(finite, apply, skip)
        return {
            "meta_loss": meta_loss,
            "step_losses": step_losses,
            "meta_gradient_norm": tf.linalg.global_norm(meta_gradients),
            "applied": applied,
            "params": params,
            "state": state,
            "optimizee_state": optimizee_state,
        }

    def run_batches(self, seed: int) -> Iterator[Batch]:
        """Per-unroll stacked batches for optimizee ``seed`` (a tf.data pipeline)."""
        dataset = self.problem.batches(seed, "train")
        dataset = dataset.batch(self.config.unroll_length, drop_remainder=True).prefetch(2)
        return iter(dataset.take(self.config.unrolls_per_run))

    def unrolls(self, seed: int) -> Iterator[UnrollResult]:
        """Meta-trains over optimizee run ``seed``, yielding each unroll's ``UnrollResult``.

        Optimizee parameters, optimizee state (e.g. BatchNorm statistics) and rule states
        carry over between unrolls as constants.
        """
        params = self.problem.flatten(self.problem.initial_params(seed))
        optimizee_state = self.problem.initial_state(seed)
        state = self.unroll_rule.init_state(self.problem.num_coordinates)
        weights = self.config.step_weights()
        length = self.config.unroll_length
        for index, batches in enumerate(self.run_batches(seed)):
            unroll_weights = weights[index * length + 1 : (index + 1) * length + 1]
            result = UnrollResult(
                **self.train_unroll(params, state, batches, tf.constant(unroll_weights), optimizee_state)
            )
            params, state, optimizee_state = result.params, result.state, result.optimizee_state
            yield result
