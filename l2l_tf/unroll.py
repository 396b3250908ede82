"""One truncation of an optimizee run under a rule, differentiably: the optimizee loop that
meta-training differentiates (``unroll_with_state``), and the loss-and-gradient step it
shares with evaluation.

An optimizee run of ``num_steps`` is split into unrolls of ``unroll_length`` steps.
Optimizee parameters and rule states carry over between unrolls as plain tensors (no
gradient flows across the truncation); a fresh optimizee is drawn every ``num_steps``.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from l2l_tf.layout import TensorLayout, needs_layout, rule_step_cells
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rules import CellRule


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
    progress: tf.Tensor | None = None,
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
        update, cells = rule_step_cells(rule, gradients, cells, layout, params,
                                        None if progress is None else progress[t])
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
    progress: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs ``unroll_length`` optimizee steps under ``rule`` (differentiably).

    Returns ``(meta_loss, step_losses, params, state, optimizee_state)``: ``state`` is the
    rule's; ``optimizee_state`` the problem's (default ``initial_state(0)``), carried by the
    forward passes; ``step_losses[t]`` the mean loss at the parameters step ``t`` started
    from, on its batch; ``meta_loss`` is ``sum_{t=1..T} w_t g(mean f(theta_t))``
    (``step_weights`` ``[T]``, default all 1; ``objective`` g, default the identity), where
    ``f(theta_T)`` is evaluated on the last step's batch so every update gets meta-gradient.
    ``progress`` (``[T]``): each step's ``progress=`` for a rule that reads it
    (``layout.run_progress`` of the step's index in its run).

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
                second_derivatives, step_weights, objective, progress,
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
