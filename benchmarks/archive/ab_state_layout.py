"""A/B benchmark: the rule's forward+backward over a 20-step unroll, per step, for the
state carried as one [N, 80] tensor (the first version) vs per-layer cells (current),
with XLA on and off, all timed in one process.

  python -m benchmarks.archive.ab_state_layout [--coordinates=15910] [--output=benchmarks/archive/ab_state_layout.json]
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("coordinates", 15910, "N (15,910 = the MNIST MLP).")
flags.DEFINE_string("output", "benchmarks/archive/ab_state_layout.json", "JSON output.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from l2l_tf.rules import CoordinatewiseLSTM

    rule, n, steps = CoordinatewiseLSTM(), FLAGS.coordinates, 20

    def make(layout: str, jit: bool):
        @tf.function(jit_compile=jit)
        def run(g):
            with tf.GradientTape() as tape:
                total = 0.0
                if layout == "concatenated":  # slice + concat the [N, 80] state every step
                    state = rule.init_state(n)
                    for t in range(steps):
                        update, state = rule.step(g + 0.01 * t, state)
                        total += tf.reduce_sum(update * update)
                else:
                    cells = rule.split_state(rule.init_state(n))
                    for t in range(steps):
                        update, cells = rule.step_cells(g + 0.01 * t, cells)
                        total += tf.reduce_sum(update * update)
            return tape.gradient(total, rule.trainable_variables)
        return run

    g = tf.random.normal([n])
    results = []
    for layout in ("concatenated", "cells"):
        for jit in (True, False):
            fn = make(layout, jit)
            fn(g)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                [np.asarray(v) for v in fn(g)]
                times.append(time.perf_counter() - start)
            ms = float(np.median(times)) / steps * 1e3
            results.append({"state_layout": layout, "xla": jit, "ms_per_step": ms})
            print(f"{layout:<13} xla={jit!s:<5} {ms:6.2f} ms/step", flush=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"coordinates": n, "unroll": steps, "results": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
