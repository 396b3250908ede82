"""``MetaConfig``: the hyper-parameters of meta-training (``l2l_tf.meta``).

Its own fields say *what is computed* (horizon, truncation, meta-objective, meta-optimizer,
gradient estimator); its ``schedule``, a ``MetaSchedule``, says *how it is scheduled* (XLA,
recomputation, coordinate blocks), which changes speed and memory, not values, and so may
change when a run resumes (as ``l2l_tf.run_config.Schedule`` does).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

META_LOSS_WEIGHTINGS = ("uniform", "linear", "last_quarter")
# What each step contributes to the meta-loss: the optimizee loss (the paper) or its log,
# which weighs relative progress equally at every step instead of letting the large early
# losses dominate the meta-gradient (a remedy for the short-horizon bias of truncated BPTT).
META_OBJECTIVES = ("loss", "log_loss")
# log_loss counts a loss below this as this: a solved task's cross-entropy can be exactly 0 in
# float32 (every logit margin past ~17), and log(0) = -inf would poison the meta-gradient and
# make validation score the best rule as non-finite (found on a 2-class digit task at 800+ steps).
LOG_LOSS_FLOOR = 1e-10
# How meta-gradients are made (``l2l_tf.estimators``): truncated BPTT (the paper), or
# persistent evolution strategies (``l2l_tf.pes``: unbiased over a whole run, forward passes only).
GRADIENT_ESTIMATORS = ("tbptt", "pes")


@dataclasses.dataclass(frozen=True)
class MetaSchedule:
    """How meta-training is scheduled: the values computed do not depend on it."""

    jit_compile: bool = False  # measured faster on CPU (benchmarks/); XLA stays available
    # > 0: recompute the activations of segments of this many steps in the backward pass
    # (tf.recompute_grad) instead of storing them, so long unrolls are not capped by
    # memory; 0: store everything (fastest). Must divide MetaConfig.unroll_length.
    recompute_segment: int = 0
    # > 1: run the rule on this many contiguous blocks of coordinates as independent chains
    # (``l2l_tf.sharding``), for CPU meta-training with one intra-op thread and this many
    # inter-op threads (``sharding.configure_cpu_threads``); same values, another schedule.
    coordinate_shards: int = 1

    def __post_init__(self) -> None:
        if self.recompute_segment < 0:
            raise ValueError(f"recompute_segment must be >= 0 (0: off), got {self.recompute_segment}")
        if self.coordinate_shards < 1:
            raise ValueError(f"coordinate_shards must be >= 1, got {self.coordinate_shards}")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """What meta-training computes (see the module docstring); ``schedule`` how."""

    num_steps: int = 100
    unroll_length: int = 20
    meta_learning_rate: float = 1e-3
    second_derivatives: bool = False
    meta_gradient_clip_norm: float | None = None
    meta_loss_weighting: str = "uniform"
    meta_objective: str = "loss"
    # Average the meta-gradients of this many consecutive unrolls per meta-update (Keras'
    # gradient_accumulation_steps). With unroll_length == num_steps: a meta-batch of runs,
    # for a less noisy meta-gradient.
    meta_gradient_accumulation: int = 1
    gradient_estimator: str = "tbptt"
    es_pairs: int = 4  # pes: antithetic pairs of perturbations per truncation
    es_std: float = 0.01  # pes: standard deviation of the perturbations of the rule's weights
    # > 0: sampled horizons. Each run's length is drawn log-uniformly from [min_num_steps,
    # num_steps] (a multiple of unroll_length, fixed by the run's seed, so a resumed run draws
    # the same), so that one rule meets short and long runs; 0: every run has num_steps.
    # Validation (and so the best rule) still scores runs of num_steps, the longest horizon.
    min_num_steps: int = 0
    schedule: MetaSchedule = MetaSchedule()

    def __post_init__(self) -> None:
        if self.unroll_length < 1 or self.num_steps < self.unroll_length:
            raise ValueError(
                f"need 1 <= unroll_length <= num_steps, got unroll_length={self.unroll_length},"
                f" num_steps={self.num_steps}"
            )
        if self.num_steps % self.unroll_length:
            raise ValueError(
                f"num_steps ({self.num_steps}) must be a multiple of unroll_length"
                f" ({self.unroll_length})"
            )
        if not self.meta_learning_rate > 0:
            raise ValueError(f"meta_learning_rate must be > 0, got {self.meta_learning_rate}")
        if self.meta_gradient_clip_norm is not None and not self.meta_gradient_clip_norm > 0:
            raise ValueError("meta_gradient_clip_norm must be > 0 (or None for no clipping)")
        if self.meta_loss_weighting not in META_LOSS_WEIGHTINGS:
            raise ValueError(
                f"unknown meta_loss_weighting {self.meta_loss_weighting!r}; choose from {META_LOSS_WEIGHTINGS}"
            )

        if self.min_num_steps and not (
            self.unroll_length <= self.min_num_steps <= self.num_steps and self.min_num_steps % self.unroll_length == 0
        ):
            raise ValueError(
                f"min_num_steps ({self.min_num_steps}) must be 0 (every run has num_steps) or a multiple of"
                f" unroll_length ({self.unroll_length}) no larger than num_steps ({self.num_steps})"
            )
        segment = self.schedule.recompute_segment
        if segment and self.unroll_length % segment:
            raise ValueError(f"recompute_segment ({segment}) must be 0 (off) or divide unroll_length ({self.unroll_length})")
        if self.meta_gradient_accumulation < 1:
            raise ValueError(
                f"meta_gradient_accumulation must be >= 1, got {self.meta_gradient_accumulation}"
            )
        if self.gradient_estimator not in GRADIENT_ESTIMATORS:
            raise ValueError(f"unknown gradient_estimator {self.gradient_estimator!r}; choose from {GRADIENT_ESTIMATORS}")
        if self.es_pairs < 1 or not self.es_std > 0:
            raise ValueError(f"need es_pairs >= 1 and es_std > 0, got {self.es_pairs} and {self.es_std}")
        if self.meta_objective not in META_OBJECTIVES:
            raise ValueError(
                f"unknown meta_objective {self.meta_objective!r}; choose from {META_OBJECTIVES}"
            )

    def objective(self, mean_loss: tf.Tensor) -> tf.Tensor:
        """One step's term of the meta-loss, from the optimizee's mean loss at that step."""
        if self.meta_objective == "log_loss":
            return tf.math.log(tf.maximum(mean_loss, LOG_LOSS_FLOOR))
        return mean_loss

    def run_num_steps(self, seed: int) -> int:
        """The number of steps of optimizee run ``seed``: ``num_steps``, or with sampled
        horizons (``min_num_steps`` > 0) a log-uniform draw fixed by the seed."""
        if not self.min_num_steps:
            return self.num_steps
        low, high = self.min_num_steps // self.unroll_length, self.num_steps // self.unroll_length
        draw = np.random.default_rng([int(seed), 0x5EED]).uniform(np.log(low), np.log(high + 1))
        return int(min(high, max(low, np.floor(np.exp(draw))))) * self.unroll_length

    def step_weights(self, num_steps: int | None = None) -> np.ndarray:
        """Weights ``w_t`` of the optimizee loss at step ``t = 0..num_steps`` in the meta-loss
        (``num_steps``: the run's own, default ``self.num_steps``).

        ``uniform`` (the paper): ``w_t = 1``. ``linear``: ``w_t = 2t / num_steps`` (mean 1),
        which puts the weight on late steps. ``last_quarter``: equal weights on the steps
        ``t > 3 num_steps / 4`` and none before (mean 1): the final loss, averaged over a
        quarter of the run's minibatches so that it is not one minibatch's noise.
        """
        num_steps = self.num_steps if num_steps is None else num_steps
        t = np.arange(num_steps + 1, dtype=np.float32)
        if self.meta_loss_weighting == "linear":
            return 2.0 * t / num_steps
        if self.meta_loss_weighting == "last_quarter":
            late = (4 * t > 3 * num_steps).astype(np.float32)
            return late * len(t) / late.sum()
        return np.ones_like(t)

    @property
    def unrolls_per_run(self) -> int:
        """Unrolls of a ``num_steps`` run: every run's, or the longest with sampled horizons."""
        return self.num_steps // self.unroll_length
