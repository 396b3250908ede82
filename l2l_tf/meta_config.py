"""``MetaConfig``: the hyper-parameters of truncated-BPTT meta-training (``l2l_tf.meta``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

META_LOSS_WEIGHTINGS = ("uniform", "linear", "last_quarter")
# What each step contributes to the meta-loss: the optimizee loss (the paper) or its log,
# which weighs relative progress equally at every step instead of letting the large early
# losses dominate the meta-gradient (a remedy for the short-horizon bias of truncated BPTT).
META_OBJECTIVES = ("loss", "log_loss")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """Hyper-parameters of truncated-BPTT meta-training."""

    num_steps: int = 100
    unroll_length: int = 20
    meta_learning_rate: float = 1e-3
    second_derivatives: bool = False
    meta_gradient_clip_norm: float | None = None
    jit_compile: bool = False  # measured faster on CPU (benchmarks/); XLA stays available
    meta_loss_weighting: str = "uniform"
    meta_objective: str = "loss"
    # > 0: recompute the activations of segments of this many steps in the backward pass
    # (tf.recompute_grad) instead of storing them, so long unrolls are not capped by
    # memory; 0: store everything (fastest).
    recompute_segment: int = 0
    # Average the meta-gradients of this many consecutive unrolls per meta-update (Keras'
    # gradient_accumulation_steps). With unroll_length == num_steps: a meta-batch of runs,
    # for a less noisy meta-gradient.
    meta_gradient_accumulation: int = 1
    # > 1: run the rule on this many contiguous blocks of coordinates as independent chains
    # (``l2l_tf.sharding``), for CPU meta-training with one intra-op thread and this many
    # inter-op threads (``sharding.configure_cpu_threads``); same values, another schedule.
    coordinate_shards: int = 1

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

        if self.recompute_segment < 0 or (
            self.recompute_segment and self.unroll_length % self.recompute_segment
        ):
            raise ValueError(
                f"recompute_segment ({self.recompute_segment}) must be 0 (off) or divide"
                f" unroll_length ({self.unroll_length})"
            )
        if self.meta_gradient_accumulation < 1:
            raise ValueError(
                f"meta_gradient_accumulation must be >= 1, got {self.meta_gradient_accumulation}"
            )
        if self.coordinate_shards < 1:
            raise ValueError(f"coordinate_shards must be >= 1, got {self.coordinate_shards}")
        if self.meta_objective not in META_OBJECTIVES:
            raise ValueError(
                f"unknown meta_objective {self.meta_objective!r}; choose from {META_OBJECTIVES}"
            )

    def objective(self, mean_loss: tf.Tensor) -> tf.Tensor:
        """One step's term of the meta-loss, from the optimizee's mean loss at that step."""
        if self.meta_objective == "log_loss":
            return tf.math.log(mean_loss)
        return mean_loss

    def step_weights(self) -> np.ndarray:
        """Weights ``w_t`` of the optimizee loss at step ``t = 0..num_steps`` in the meta-loss.

        ``uniform`` (the paper): ``w_t = 1``. ``linear``: ``w_t = 2t / num_steps`` (mean 1),
        which puts the weight on late steps. ``last_quarter``: equal weights on the steps
        ``t > 3 num_steps / 4`` and none before (mean 1): the final loss, averaged over a
        quarter of the run's minibatches so that it is not one minibatch's noise.
        """
        t = np.arange(self.num_steps + 1, dtype=np.float32)
        if self.meta_loss_weighting == "linear":
            return 2.0 * t / self.num_steps
        if self.meta_loss_weighting == "last_quarter":
            late = (4 * t > 3 * self.num_steps).astype(np.float32)
            return late * len(t) / late.sum()
        return np.ones_like(t)

    @property
    def unrolls_per_run(self) -> int:
        return self.num_steps // self.unroll_length
