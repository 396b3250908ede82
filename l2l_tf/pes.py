"""Persistent evolution strategies (PES; Vicol, Metz and Sohl-Dickstein, ICML 2021).

An estimator (``l2l_tf.estimators``) of the gradient of the *whole run's* meta-loss from
forward passes alone. Each truncation draws ``es_pairs`` antithetic perturbations
``+eps_i, -eps_i`` (``eps ~ N(0, es_std^2 I)``) of the rule's weights and unrolls one
optimizee per perturbation, every particle from the state its own perturbed rule left at
the end of the previous truncation (the particles persist over the run, on the same
batches). With ``xi_i`` the sum of particle ``+i``'s perturbations so far in the run, the
estimate is

    g = 1 / (2 P es_std^2) * sum_i (L(theta + eps_i) - L(theta - eps_i)) * xi_i,

unbiased for the gradient of the meta-loss summed over the run's truncations, where
truncated BPTT drops every dependence across truncations (its short-horizon bias), and
exact second derivatives come for free (no backward pass, no ``tf.gradients`` of
gradients). The price is variance, which shrinks as ``1 / es_pairs``, and ``2 es_pairs + 1``
forward unrolls per truncation (the extra one: the unperturbed run that progress lines,
divergence resets and validation-free reports read).

The perturbed weights are written into a scratch copy of the rule (never the trained
rule), one particle after the other, inside the compiled truncation. Single device only.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from l2l_tf import rule_sets
from l2l_tf.estimators import Estimate, RunCarry, initial_run, run_spec
from l2l_tf.meta_config import MetaConfig
from l2l_tf.problems.base import Batch, Problem
from l2l_tf.rules import CellRule, CoordinatewiseLSTM
from l2l_tf.unroll import unroll_with_state


class PESCarry(NamedTuple):
    """PES's state within a run: the unperturbed ``run``; the ``particles`` (a ``RunCarry``
    with a leading axis of ``2 * es_pairs``: pair ``i``'s ``+`` particle at ``2i``, its ``-``
    one at ``2i + 1``); ``xi``, per variable ``[es_pairs, *shape]``, the sums of the ``+``
    perturbations so far; ``key``, the noise seed ``[2]``; ``count``, truncations done."""

    run: RunCarry
    particles: RunCarry
    xi: list[tf.Tensor]
    key: tf.Tensor
    count: tf.Tensor


def _stacked_spec(spec: tf.TensorSpec, count: int) -> tf.TensorSpec:
    return tf.TensorSpec([count, *spec.shape], spec.dtype)


class PersistentES:
    """The PES ``GradientEstimator`` of ``rule``'s weights on ``problem`` (see the module
    docstring); ``config.es_pairs`` and ``config.es_std`` set the pairs and the noise scale."""

    def __init__(self, rule: CoordinatewiseLSTM, problem: Problem, config: MetaConfig):
        self.rule, self.problem, self.config = rule, problem, config
        self.variables = rule.trainable_variables
        self.pairs, self.std = config.es_pairs, config.es_std
        self.scratch = type(rule)(rule.config)  # holds theta +- eps while a particle runs
        if len(self.scratch.trainable_variables) != len(self.variables):
            raise ValueError(f"PES needs a rule that {type(rule).__name__}(rule.config) rebuilds with the same weights")
        self.unroll_rule = rule_sets.for_problem(rule, problem)
        self.scratch_unroll = rule_sets.for_problem(self.scratch, problem)

    def carry_spec(self) -> PESCarry:
        run = run_spec(self.problem, self.unroll_rule.state_size)
        return PESCarry(
            run, RunCarry(*[_stacked_spec(s, 2 * self.pairs) for s in run]),
            [tf.TensorSpec([self.pairs, *v.shape], tf.float32) for v in self.variables],
            tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int64),
        )

    def initial_carry(self, seed: int, noise_seed: int | None = None) -> PESCarry:
        """Run ``seed``'s carry: every particle starts where the run does; the noise is
        seeded by ``noise_seed`` (default ``seed``)."""
        run = initial_run(self.unroll_rule, self.problem, seed)
        particles = RunCarry(*[tf.stack([t] * (2 * self.pairs)) for t in run])
        xi = [tf.zeros([self.pairs, *v.shape]) for v in self.variables]
        key = tf.constant([seed if noise_seed is None else noise_seed, 0x9E5], tf.int64)
        return PESCarry(run, particles, xi, key, tf.constant(0, tf.int64))

    def run_of(self, carry: PESCarry) -> RunCarry:
        return carry.run

    def _unroll(self, rule: CellRule, carry: RunCarry, batches: Batch, step_weights: tf.Tensor,
                progress: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor, RunCarry]:
        config = self.config
        meta_loss, step_losses, params, state, optimizee_state = unroll_with_state(
            rule, self.problem, carry.params, carry.state, batches, config.unroll_length, False, step_weights,
            config.objective, 0, carry.optimizee_state, progress,
        )
        return meta_loss, step_losses, RunCarry(params, state, optimizee_state)

    def _noise(self, key: tf.Tensor, count: tf.Tensor, pair: int) -> list[tf.Tensor]:
        seed = tf.random.experimental.stateless_fold_in(tf.cast(key, tf.int64), count * self.pairs + pair)
        return [
            self.std * tf.random.stateless_normal(v.shape, tf.random.experimental.stateless_fold_in(seed, index))
            for index, v in enumerate(self.variables)
        ]

    def estimate(self, carry: PESCarry, batches: Batch, step_weights: tf.Tensor,
                 progress: tf.Tensor | None = None) -> Estimate:
        meta_loss, step_losses, run = self._unroll(self.unroll_rule, carry.run, batches, step_weights, progress)
        theta = [tf.identity(v) for v in self.variables]
        gradients = [tf.zeros_like(t) for t in theta]
        particles, xi = [], []
        for pair in range(self.pairs):
            eps = self._noise(carry.key, carry.count, pair)
            xi_pair = [x[pair] + e for x, e in zip(carry.xi, eps)]
            losses = []
            for sign, index in ((1.0, 2 * pair), (-1.0, 2 * pair + 1)):
                for scratch, t, e in zip(self.scratch.trainable_variables, theta, eps):
                    scratch.assign(t + sign * e)
                start = RunCarry(*[c[index] for c in carry.particles])
                loss, _, end = self._unroll(self.scratch_unroll, start, batches, step_weights, progress)
                losses.append(loss)
                particles.append(end)
            difference = (losses[0] - losses[1]) / (2.0 * self.pairs * self.std**2)
            gradients = [g + difference * x for g, x in zip(gradients, xi_pair)]
            xi.append(xi_pair)
        stacked = RunCarry(*[tf.stack(parts) for parts in zip(*particles)])
        xi = [tf.stack(parts) for parts in zip(*xi)]
        return Estimate(meta_loss, step_losses, gradients, PESCarry(run, stacked, xi, carry.key, carry.count + 1))
