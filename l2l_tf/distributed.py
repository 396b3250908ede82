"""``tf.distribute`` plumbing for meta-training on several devices and workers.

- ``make_strategy``: no strategy, ``MirroredStrategy`` (the devices of one machine) or
  ``MultiWorkerMirroredStrategy`` (machines named by the ``TF_CONFIG`` environment variable).
- ``is_chief``: the one worker that writes checkpoints, summaries, ``best/`` and exports.
- ``broadcast_from_chief``: every worker takes the chief's values of some variables (after
  the chief restored a checkpoint: the others need no access to its files).
- ``per_replica``: a value computed for each local replica from its global replica id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


class DistributionError(ValueError):
    """The requested distribution cannot be set up (e.g. no ``TF_CONFIG``)."""


def make_strategy(distribution: str) -> tf.distribute.Strategy | None:
    """The strategy named by ``distribution`` (``None`` for ``"none"``).

    Must run before TensorFlow executes anything else (``MultiWorkerMirroredStrategy``
    configures the runtime's collectives).
    """
    if distribution == "none":
        return None
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise DistributionError(
                "multi_worker distribution needs the TF_CONFIG environment variable naming the"
                ' cluster and this worker, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]},'
                ' "task": {"type": "worker", "index": 0}} (README)'
            )
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise DistributionError(f"TF_CONFIG is not valid JSON ({error}); fix the environment variable") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise DistributionError(f"unknown distribution {distribution!r}; choose from {DISTRIBUTIONS}")


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster (the
    chief: task ``chief``, or ``worker`` 0 when the cluster names no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def worker_count(strategy: tf.distribute.Strategy | None) -> int:
    """The number of workers (``chief`` and ``worker`` tasks) in the cluster; 1 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs))


def per_replica(strategy: tf.distribute.Strategy, fn: Callable[[int], Any]) -> Any:
    """``fn(global replica id)`` for each of this worker's replicas, as a distributed value."""
    return strategy.experimental_distribute_values_from_function(
        lambda context: fn(int(context.replica_id_in_sync_group))
    )


def local_replica_ids(strategy: tf.distribute.Strategy) -> list[int]:
    """The global ids of this worker's replicas."""
    ids = per_replica(strategy, lambda replica: tf.constant(replica))
    return [int(value) for value in strategy.experimental_local_results(ids)]


def broadcast_from_chief(strategy: tf.distribute.Strategy, variables: Sequence[tf.Variable]) -> None:
    """Sets ``variables`` on every worker to their values on replica 0 (the chief's).

    An all-reduce in which every other replica contributes zeros. Values travel as
    float64, exact for float32 values and integers below 2**53.
    """

    def replica_fn() -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        chief = tf.equal(context.replica_id_in_sync_group, 0)
        values = [tf.cast(tf.convert_to_tensor(v), tf.float64) for v in variables]
        kept = [tf.where(chief, value, tf.zeros_like(value)) for value in values]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, kept)

    reduced = tf.function(lambda: strategy.run(replica_fn))()
    for variable, value in zip(variables, strategy.experimental_local_results(reduced)[0]):
        variable.assign(tf.cast(value, variable.dtype))
