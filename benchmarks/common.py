"""Timing and problem helpers shared by the benchmark programs."""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


# Multiply-add FLOPs of one 2x20 LSTM rule step per coordinate (matmuls only; the
# elementwise gate math adds roughly 10% more and is not counted).
def rule_matmul_flops(inputs: int = 2, hidden: int = 20, layers: int = 2) -> int:
    flops, fan_in = 0, inputs
    for _ in range(layers):
        flops += 2 * (fan_in + hidden) * 4 * hidden
        fan_in = hidden
    return flops + 2 * hidden


def median_time(fn: Callable[[], Any], repeats: int, inner: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timings of ``inner`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            result = fn()
        block(result)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def block(result: Any) -> None:
    import tensorflow as tf

    for leaf in tf.nest.flatten(result):
        if hasattr(leaf, "numpy"):
            leaf.numpy()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def available_memory_gib() -> float | None:
    """The kernel's estimate of memory available to new allocations (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
    except OSError:
        return None
    return int(fields["MemAvailable"].split()[0]) / 2**20


def matmul_flop_rate(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul: the machine's practical ceiling in this process."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda: tf.matmul(a, b))
    block(matmul())
    return 2.0 * size**3 / median_time(matmul, repeats, inner=3)


def mnist_problem(mnist_dir: str | None, variant: str = "mnist"):
    """The MNIST MLP problem on the IDX files in ``mnist_dir``, or on random data of MNIST's shape."""
    import numpy as np

    from l2l_tf.problems.data import Split
    from l2l_tf.problems.keras_problem import KerasProblem
    from l2l_tf.problems.mnist import MLP_VARIANTS, mlp, mnist_mlp_problem

    if mnist_dir:
        return mnist_mlp_problem(variant, "idx", mnist_dir)
    rng = np.random.default_rng(0)
    split = Split(rng.random((4096, 784), dtype=np.float32), rng.integers(0, 10, 4096).astype(np.int32))
    hidden, activation = MLP_VARIANTS[variant]
    return KerasProblem(lambda: mlp(hidden, activation), split, init_stddev=0.01, name=variant)


def first_unroll(trainer, seed: int | None = None) -> Callable[[], Any]:
    """A call of ``trainer.train_unroll`` on the first unroll of training run ``seed``
    (default run 0's), with all step weights 1."""
    import tensorflow as tf

    from l2l_tf import seeds

    seed = seeds.training_seed(0) if seed is None else seed
    carry = trainer.estimator.initial_carry(seed)
    batches = next(trainer.run_batches(seed))
    weights = tf.ones([trainer.config.unroll_length])
    progress = trainer.unroll_progress(0)  # read only by rules with progress_input
    return lambda: trainer.train_unroll(carry, batches, weights, progress)


def write_json(path: str, results: Any) -> None:
    """Writes a benchmark's ``results`` to ``path`` (indented JSON)."""
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
