"""Meta-training under ``MirroredStrategy`` on two logical CPU devices (one process).

Run as a script in a fresh process by ``tests/test_distributed_meta.py`` (the logical
devices must be configured before TensorFlow initialises)::

    python tests/distributed_meta_mirrored.py WORK_DIR

Prints one JSON line: the largest difference between the mirrored run's rule and that of
single-device meta-training with ``meta_gradient_accumulation=2`` on the same runs, the
largest difference between the two replicas' copies, and the summary of a mirrored run in
which one replica's optimizee has a NaN loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import numpy as np

from l2l_tf import seeds
from l2l_tf.meta import MetaConfig
from l2l_tf.problems.quadratic import Quadratic
from l2l_tf.rules import CoordinatewiseLSTM
from l2l_tf.training import TrainingOptions, meta_train


class PoisonedQuadratic(Quadratic):
    """Run ``seeds.training_seed(3)`` (replica 1 of epoch 1) has NaN targets."""

    def sample_function(self, seed):
        w, y = super().sample_function(seed)
        return w, (y * math.nan if seed == seeds.training_seed(3) else y)


def train(work_dir: str, name: str, problem, epochs: int, strategy=None, accumulation: int = 1):
    config = MetaConfig(num_steps=20, unroll_length=20, meta_learning_rate=0.01,
                        meta_gradient_accumulation=accumulation)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        rule = CoordinatewiseLSTM(seed=1)
    summary = meta_train(rule, problem, config, TrainingOptions(num_epochs=epochs, validation_every=100, validation_runs=1),
                         os.path.join(work_dir, name), log=lambda line: None, strategy=strategy)
    return rule, summary


def copies(variable) -> list[np.ndarray]:
    return [np.asarray(v) for v in getattr(variable, "values", [variable])]


def main() -> None:
    work_dir = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    problem = Quadratic(dims=5, batch_size=8)
    mirrored, _ = train(work_dir, "mirrored", problem, 3, strategy)
    single, _ = train(work_dir, "single", problem, 6, accumulation=2)
    poisoned, summary = train(work_dir, "poisoned", PoisonedQuadratic(dims=5, batch_size=8), 3, strategy)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "max_difference_to_single": max(
            float(np.abs(copies(m)[0] - s.numpy()).max())
            for m, s in zip(mirrored.trainable_variables, single.trainable_variables)
        ),
        "max_difference_between_replicas": max(
            float(np.abs(copies(v)[0] - copies(v)[1]).max()) for v in mirrored.trainable_variables
        ),
        "poisoned_summary": summary.to_dict(),
        "poisoned_weights_finite": all(np.all(np.isfinite(c)) for v in poisoned.trainable_variables for c in copies(v)),
        "poisoned_replicas_identical": all(
            np.array_equal(copies(v)[0], copies(v)[1]) for v in poisoned.trainable_variables
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
