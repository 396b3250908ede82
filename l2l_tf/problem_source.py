"""The problems meta-training draws its runs from, and one meta-trainer per problem.

``ProblemSource`` is a sequence of ``Problem``s (a task distribution; one problem is the
paper's setting) and the draw of the problem of each epoch: a seeded RNG keyed by the
training seed and the epoch alone, so a resumed run draws what an uninterrupted one would
have. ``TrainerPool`` builds the meta-trainer of a problem when it is first drawn (one
compiled unroll per distinct problem) and shares one meta-optimizer and one skipped-update
counter between them, so the checkpoint holds the same objects whatever was drawn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.distributed_meta import (
    DistributedMetaTrainer,
    PreReducedAdam,
    refuse_unsupported,
)
from l2l_tf.estimators import GradientEstimator
from l2l_tf.meta import MetaConfig, MetaTrainer, make_meta_optimizer
from l2l_tf.problems.base import Problem
from l2l_tf.rules import CoordinatewiseLSTM

_DRAW_SALT = 0x5EED_7A5C  # keeps the problem draw apart from other streams of the same seed
EstimatorFactory = Callable[[CoordinatewiseLSTM, Problem, MetaConfig], GradientEstimator]


class ProblemSource:
    """``problems`` (one ``Problem`` or a non-empty sequence of them) and the seeded draw of
    the problem of each epoch."""

    def __init__(self, problems: Problem | Sequence[Problem], seed: int = 0):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        if not self.problems:
            raise ValueError("meta-training needs at least one problem; got an empty list")
        strangers = [type(p).__name__ for p in self.problems if not isinstance(p, Problem)]
        if strangers:
            raise TypeError(f"meta-training takes l2l_tf Problems, got {strangers}; wrap models in KerasProblem")
        self.seed = seed

    def __len__(self) -> int:
        return len(self.problems)

    def index(self, epoch: int) -> int:
        """The index of the problem that epoch ``epoch`` trains on (0 with one problem; no RNG
        is drawn then, so single-problem runs are what they always were)."""
        if len(self.problems) == 1:
            return 0
        return int(np.random.default_rng([_DRAW_SALT, self.seed, epoch]).integers(len(self.problems)))


class TrainerPool:
    """One meta-trainer per distinct problem of ``source``, built when first drawn.

    Every trainer applies ``meta_optimizer`` (built for ``rule.trainable_variables``; an
    estimator must estimate gradients for those variables or a subset of them) and counts
    non-finite updates in ``skipped_updates``. With a ``strategy`` the trainers are
    ``DistributedMetaTrainer``s and both are created in its scope.
    """

    def __init__(self, rule: CoordinatewiseLSTM, source: ProblemSource, config: MetaConfig,
                 strategy: tf.distribute.Strategy | None = None, estimator_factory: EstimatorFactory | None = None):
        if strategy is not None and config.gradient_estimator == "pes" and estimator_factory is None:
            raise ValueError("the pes gradient estimator runs on one device; meta-train without a strategy")
        if strategy is not None:
            refuse_unsupported(config)
        self.rule, self.source, self.config, self.strategy = rule, source, config, strategy
        self.estimator_factory = estimator_factory
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            optimizer_class = PreReducedAdam if strategy is not None else keras.optimizers.Adam
            self.meta_optimizer = make_meta_optimizer(config, rule.trainable_variables, optimizer_class)
            self.skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
        self._trainers: dict[int, MetaTrainer | DistributedMetaTrainer] = {}

    def trainer(self, epoch: int) -> MetaTrainer | DistributedMetaTrainer:
        """The meta-trainer of the problem drawn for ``epoch``."""
        problem = self.source.problems[self.source.index(epoch)]
        key = id(problem)
        if key not in self._trainers:
            self._trainers[key] = self._build(problem)
        return self._trainers[key]

    def _build(self, problem: Problem) -> MetaTrainer | DistributedMetaTrainer:
        estimator = self.estimator_factory(self.rule, problem, self.config) if self.estimator_factory else None
        shared = {"meta_optimizer": self.meta_optimizer, "skipped_updates": self.skipped_updates}
        if self.strategy is None:
            return MetaTrainer(self.rule, problem, self.config, estimator=estimator, **shared)
        return DistributedMetaTrainer(self.rule, problem, self.config, self.strategy, estimator=estimator, **shared)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent in each phase of distributed meta-training, over all trainers."""
        total: dict[str, float] = {}
        for trainer in self._trainers.values():
            for phase, seconds in getattr(trainer, "timings", {}).items():
                total[phase] = total.get(phase, 0.0) + seconds
        return total
