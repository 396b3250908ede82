"""Fits a small model with and without ``MirroredStrategy`` on two logical CPUs.

Run as a script in a fresh process (the logical devices must be configured before
TensorFlow initialises), by ``tests/test_distributed_optimizer.py``::

    python tests/distributed_fit.py OUT.npz --optimizer=learned --rule=RULE_DIR

Writes to ``OUT.npz``: the single-device model weights and optimizer variables after
``model.fit`` (``single/...``), and the same for each replica of the mirrored run
(``replica0/...``, ``replica1/...``), both trained on the same global batches.

With ``--multi_worker`` (one process per worker, ``TF_CONFIG`` set) it trains with a
custom loop (``strategy.run`` + ``apply_gradients``) under ``MultiWorkerMirroredStrategy``
and, in the same process, without a strategy, and writes ``worker/...`` and ``single/...``
to ``OUT/worker_<task index>.npz`` (``OUT`` a folder).
(Keras 3.x ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` with any optimizer:
its symbolic build reduces a ``PerReplica`` batch eagerly.)
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf

if "TF_CONFIG" not in os.environ:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )

import keras
import numpy as np

from l2l_tf.optimizer import LearnedOptimizer

GLOBAL_BATCH = 32
STEPS = 8


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=GLOBAL_BATCH * STEPS)
    return x, y


def _optimizer(kind: str, rule: str) -> keras.optimizers.Optimizer:
    if kind == "adam":
        return keras.optimizers.Adam(0.01)
    return LearnedOptimizer.load(rule)


def _fit(kind: str, rule: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12,)), keras.layers.Dense(16, activation="sigmoid"), keras.layers.Dense(4),
    ])
    model.compile(optimizer=_optimizer(kind, rule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # A dataset of global batches: Keras' numpy path fails under MultiWorkerMirroredStrategy.
    dataset = tf.data.Dataset.from_tensor_slices(_data()).batch(GLOBAL_BATCH)
    model.fit(dataset, epochs=1, verbose=0)
    return model


def _model(kind: str, rule: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12,)), keras.layers.Dense(16, activation="sigmoid"), keras.layers.Dense(4),
    ])
    model.optimizer = _optimizer(kind, rule)
    model.optimizer.build(model.trainable_variables)
    return model


def _train_custom_loop(kind: str, rule: str, strategy: tf.distribute.Strategy) -> keras.Model:
    """Trains with ``strategy.run`` and ``apply_gradients`` on the global batches."""
    with strategy.scope():
        model = _model(kind, rule)
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    dataset = tf.data.Dataset.from_tensor_slices(_data()).batch(GLOBAL_BATCH)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(per_example(y, model(x))) / GLOBAL_BATCH
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    step = tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))
    for x, y in strategy.experimental_distribute_dataset(dataset):
        step(x, y)
    return model


def _values(variable, replica: int | None) -> np.ndarray:
    value = variable.value if isinstance(variable, keras.Variable) else variable
    if replica is not None and hasattr(value, "values"):
        value = value.values[replica]
    return np.asarray(value)


def _collect(model: keras.Model, prefix: str, replica: int | None, out: dict) -> None:
    for i, weight in enumerate(model.trainable_variables):
        out[f"{prefix}/weight{i}"] = _values(weight, replica)
    for i, variable in enumerate(model.optimizer.variables):
        out[f"{prefix}/optimizer{i}"] = _values(variable, replica)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--optimizer", choices=("learned", "adam"), default="learned")
    parser.add_argument("--rule", default="")
    parser.add_argument("--multi_worker", action="store_true")
    args = parser.parse_args()
    out: dict[str, np.ndarray] = {}
    if args.multi_worker:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _collect(_train_custom_loop(args.optimizer, args.rule, strategy), "worker", 0, out)
        single = _train_custom_loop(args.optimizer, args.rule, tf.distribute.get_strategy())
        _collect(single, "single", None, out)
        np.savez(os.path.join(args.out, f"worker_{strategy.cluster_resolver.task_id}.npz"), **out)
        return
    _collect(_fit(args.optimizer, args.rule), "single", None, out)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _fit(args.optimizer, args.rule)
    for replica in range(strategy.num_replicas_in_sync):
        _collect(model, f"replica{replica}", replica, out)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
