"""Cost of the neural-art optimizee on one CPU core: a loss+gradient step, and a meta-training step.

  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 1 \
      python -m benchmarks.neural_art_cost [--output=benchmarks/neural_art_cost.json]

Measures, in one process (medians after warm-up, compile time apart):

- ``loss_gradient_ms``: one loss and gradient of the style-transfer problem (what each
  optimizer step of an evaluation costs besides the optimizer), at 64x64 and 128x128,
  with and without XLA;
- ``meta_step_ms``: one optimizee step of meta-training at 64x64 (a 32-step truncated-BPTT
  unroll of the 2x20 LSTM rule with momentum features, divided by 32), as ``train.meta_train``
  runs it (no XLA);
- the 1-minute load average before and after, since other processes on the cores move
  every figure.
"""

from __future__ import annotations

import json
import os
import sys
import time

import tensorflow as tf

from benchmarks.common import first_unroll, median_time
from l2l_tf import seeds
from l2l_tf.meta import MetaConfig, MetaTrainer, loss_and_gradient
from l2l_tf.problems.neural_art import NeuralArt, default_data_dir
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig


def loss_gradient_ms(problem: NeuralArt, jit_compile: bool, repeats: int) -> tuple[float, float]:
    """(median ms per loss+gradient, first-call seconds including compilation)."""
    seed = seeds.TUNING_START + 60_000
    params = problem.flatten(problem.initial_params(seed))
    batch = next(iter(problem.batches(seed)))
    step = tf.function(lambda p, b: loss_and_gradient(problem, p, b), jit_compile=jit_compile)
    start = time.perf_counter()
    step(params, batch)[1].numpy()
    first = time.perf_counter() - start
    return 1000 * median_time(lambda: step(params, batch), repeats), first


def meta_step_ms(problem: NeuralArt, repeats: int) -> tuple[float, float]:
    """(median ms per meta-training optimizee step, first unroll's seconds)."""
    config = MetaConfig(num_steps=128, unroll_length=32, meta_objective="log_loss")
    rule = CoordinatewiseLSTM(RuleConfig(momentum_decays=(0.5, 0.9, 0.99)))
    trainer = MetaTrainer(rule, problem, config)
    train_unroll = first_unroll(trainer, seeds.training_seed(123_456))
    start = time.perf_counter()
    train_unroll().meta_loss.numpy()
    first = time.perf_counter() - start
    per_unroll = median_time(lambda: train_unroll().meta_loss, repeats)
    return 1000 * per_unroll / config.unroll_length, first


def main() -> None:
    output = "benchmarks/neural_art_cost.json"
    for arg in sys.argv[1:]:
        if arg.startswith("--output="):
            output = arg.split("=", 1)[1]
    load_before = os.getloadavg()[0]
    results = {"threads": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}}
    for size in (64, 128):
        problem = NeuralArt(default_data_dir(), size)
        for jit in (False, True):
            median, first = loss_gradient_ms(problem, jit, repeats=15 if size == 64 else 7)
            results[f"loss_gradient_ms_{size}_{'xla' if jit else 'no_xla'}"] = round(median, 2)
            results[f"loss_gradient_first_call_s_{size}_{'xla' if jit else 'no_xla'}"] = round(first, 2)
            print(f"{size}x{size} loss+gradient, XLA {jit}: {median:.1f} ms (first call {first:.1f} s)", flush=True)
    median, first = meta_step_ms(NeuralArt(default_data_dir(), 64), repeats=3)
    results["meta_step_ms_64"] = round(median, 2)
    results["meta_first_unroll_s_64"] = round(first, 2)
    print(f"64x64 meta-training: {median:.1f} ms per optimizee step (first unroll {first:.1f} s)", flush=True)
    results["load_average_1min"] = [load_before, os.getloadavg()[0]]
    with open(output, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {output}: {json.dumps(results)}")


if __name__ == "__main__":
    main()
