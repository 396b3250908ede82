"""Truncated-BPTT meta-training on every replica of a ``tf.distribute`` strategy.

A meta-batch of one optimizee run per replica: each replica unrolls its own run (its own
seed) and takes that unroll's meta-gradient; the meta-gradients are averaged over all
replicas with one all-reduce (which also gathers every replica's losses); then, if all of
it is finite, every replica applies the same Adam step to its copy of the rule, through
Keras' ``distribution.extended.update`` path. With R replicas and ``unroll_length ==
num_steps`` this is single-process meta-training with ``meta_gradient_accumulation=R``
over the same runs.

The three phases are separate compiled calls (``compute``, ``all_reduce``, ``apply``) so
that the decision to skip a non-finite update is taken on the all-reduced values, the
same on every worker, and so that ``timings`` can tell computation from communication.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l2l_tf import distributed
from l2l_tf.estimators import GradientEstimator
from l2l_tf.meta import MetaConfig, MetaTrainer, UnrollResult, all_finite
from l2l_tf.problems.base import Problem
from l2l_tf.rule_base import compiled_function
from l2l_tf.rules import CoordinatewiseLSTM


class PreReducedAdam(keras.optimizers.Adam):
    """Adam for meta-gradients that are already averaged over replicas.

    The meta-trainer all-reduces them itself (it must check them for finiteness on every
    replica alike before updating), so Keras' own gradient all-reduce is skipped; the
    variables are still updated through ``distribution.extended.update``.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> list:
        return list(grads_and_vars)


def refuse_unsupported(config: MetaConfig) -> None:
    """``ValueError`` for meta-training settings that need one device."""
    if config.min_num_steps:
        raise ValueError("min_num_steps (sampled horizons) is not supported with a distribution strategy yet:"
                         " the replicas' runs must have one length; set it to 0 or meta-train in one process")


class DistributedMetaTrainer:
    """``MetaTrainer`` over the replicas of ``strategy`` (rule created in its scope): the
    estimator's meta-gradients of every replica's run, averaged, then one meta-update."""

    def __init__(
        self, rule: CoordinatewiseLSTM, problem: Problem, config: MetaConfig, strategy: tf.distribute.Strategy,
        meta_optimizer: keras.optimizers.Optimizer | None = None, skipped_updates: tf.Variable | None = None,
        estimator: GradientEstimator | None = None,
    ):
        refuse_unsupported(config)
        unmirrored = [v.name for v in rule.trainable_variables if not strategy.extended.variable_created_in_scope(v)]
        if unmirrored:
            raise ValueError(f"create the rule inside strategy.scope(); {unmirrored} were created outside it")
        self.rule, self.problem, self.config, self.strategy = rule, problem, config, strategy
        with strategy.scope():
            self.trainer = MetaTrainer(
                rule, problem, config, PreReducedAdam, estimator, meta_optimizer, skipped_updates
            )
        self.estimator, self.variables = self.trainer.estimator, self.trainer.variables
        self.meta_optimizer = self.trainer.meta_optimizer
        self.skipped_updates = self.trainer.skipped_updates
        self.num_replicas = strategy.num_replicas_in_sync
        self.local_replicas = distributed.local_replica_ids(strategy)
        self.timings = {"compute": 0.0, "all_reduce": 0.0, "apply": 0.0}
        local_step = compiled_function(
            self.estimator.estimate, config.schedule.jit_compile, input_signature=self.trainer.unroll_signature
        )
        # A plain function around local_step: strategy.run would re-wrap a tf.function
        # (dropping its signature and XLA); the replicas call it as it is.
        self._compute = tf.function(lambda *args: strategy.run(lambda *a: local_step(*a), args=args))
        self._all_reduce = tf.function(lambda *args: strategy.run(self._replica_all_reduce, args=args))
        self._apply = tf.function(lambda grads: strategy.run(self._replica_apply, args=(grads,)))

    def _replica_all_reduce(self, meta_loss: tf.Tensor, step_losses: tf.Tensor, grads: list) -> tuple:
        """Every replica's losses (``[R]`` meta-losses, ``[R, T]`` step losses: each replica
        fills its own row, the others add zeros) and the mean meta-gradient, in one all-reduce."""
        context = tf.distribute.get_replica_context()
        mine = tf.equal(tf.range(self.num_replicas), context.replica_id_in_sync_group)
        meta_losses = tf.where(mine, meta_loss, 0.0)
        all_step_losses = tf.where(mine[:, None], step_losses[None, :], 0.0)
        # tf.identity places the inputs on the replica's device (the collective needs one).
        meta_losses, all_step_losses, *sums = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [meta_losses, all_step_losses, *[tf.identity(g) for g in grads]]
        )
        mean_grads = [g / self.num_replicas for g in sums]
        finite = all_finite([meta_losses, *mean_grads])
        return meta_losses, all_step_losses, mean_grads, finite, tf.linalg.global_norm(mean_grads)

    def _replica_apply(self, grads: list) -> None:
        self.meta_optimizer.apply_gradients(zip(grads, self.variables))

    def _timed(self, phase: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args)
        self.timings[phase] += time.perf_counter() - start
        return result

    def _local(self, value: Any) -> Any:
        """This worker's first replica's component of a distributed value."""
        return self.strategy.experimental_local_results(value)[0]

    def unrolls(self, seeds: Sequence[int]) -> Iterator[UnrollResult]:
        """Meta-trains over optimizee run ``seeds[r]`` on replica ``r``, yielding each unroll's
        result: ``meta_loss`` (mean over replicas), ``step_losses`` ``[R, T]``,
        ``meta_gradient_norm``, ``applied``, ``local_seeds`` (this worker's runs)."""
        if len(seeds) != self.num_replicas:
            raise ValueError(f"need one seed per replica ({self.num_replicas}), got {len(seeds)}")
        carry = distributed.per_replica(self.strategy, lambda r: self.estimator.initial_carry(seeds[r]))
        iterators = {r: self.trainer.run_batches(seeds[r]) for r in self.local_replicas}
        for index in range(self.config.unrolls_per_run):
            batches = distributed.per_replica(self.strategy, lambda r: next(iterators[r]))
            meta_loss, step_losses, grads, carry = self._timed(
                "compute", self._compute, carry, batches, self.trainer.unroll_weights(index),
                self.trainer.unroll_progress(index),
            )
            meta_losses, all_step_losses, mean_grads, finite, norm = self._timed(
                "all_reduce", self._all_reduce, meta_loss, step_losses, grads
            )
            applied = bool(self._local(finite))
            if applied:
                self._timed("apply", self._apply, mean_grads)
            else:
                self.skipped_updates.assign_add(1)
            yield UnrollResult(
                meta_loss=float(np.mean(self._local(meta_losses).numpy())),
                step_losses=self._local(all_step_losses),
                meta_gradient_norm=float(self._local(norm)),
                applied=applied,
                local_seeds=tuple(seeds[r] for r in self.local_replicas),
            )
