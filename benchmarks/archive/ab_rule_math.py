"""A/B benchmark: other ways to compute the rule, against the current one, in one process.

  python -m benchmarks.archive.ab_rule_math [--coordinates=15910] [--output=benchmarks/archive/ab_rule_math.json]

Meta-training (forward + backward over a 20-step unroll, ms per step):
  current     per-layer cells [N, H], one [x, h] @ W matmul per layer (``step_cells``)
  transposed  features-major cells [H, N]: gate splits are contiguous row blocks
  bfloat16    the same math with cells, kernels and gates in bfloat16
  xla_cell    the gate math after each layer's matmul (sigmoid, tanh, products) compiled
              by XLA as one fused kernel, matmuls left to TensorFlow
  per_gate    one matmul per gate against a column block of the fused kernel: four
              [N, 20] products instead of one [N, 80] product and its split
  one_sigmoid all four gates through one sigmoid: tanh(z) = 2 sigmoid(2z) - 1, with the
              cell-input columns of kernel and bias scaled by 2 (fewer, larger ops)
Frozen step (forward only, the exported signature's math, ms per call at --frozen_coordinates):
  current, the same under XLA (``jit_compile=True``), and TensorFlow's fused LSTM kernel
  (``BlockLSTMV2``, one op per layer).
Timings are interleaved round-robin and reported as medians, so the ratios hold on a
busy machine. Every variant is checked to compute the current rule's values.
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("coordinates", 15910, "N for the meta-training variants (15,910 = the MNIST MLP).")
flags.DEFINE_integer("frozen_coordinates", 100_000, "N for the frozen-step variants.")
flags.DEFINE_integer("repeats", 7, "Timed calls per variant.")
flags.DEFINE_string("output", "benchmarks/archive/ab_rule_math.json", "JSON output.")
FLAGS = flags.FLAGS
STEPS = 20


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from l2l_tf import preprocess
    from l2l_tf.rules import CoordinatewiseLSTM

    rule = CoordinatewiseLSTM(seed=0)
    config, hidden = rule.config, rule.config.hidden_size

    def features(g, dtype=tf.float32):
        return tf.cast(preprocess.preprocess(g, config.preprocessing, config.preprocessing_p), dtype)

    def transposed_step(g, cells):
        x, new = tf.transpose(features(g)), []
        for layer, (kernel, bias) in enumerate(zip(rule.kernels, rule.biases)):
            h, c = cells[2 * layer], cells[2 * layer + 1]
            gates = tf.matmul(kernel, tf.concat([x, h], 0), transpose_a=True) + bias[:, None]
            i, f, gg, o = tf.split(gates, 4, axis=0)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(gg)
            h = tf.sigmoid(o) * tf.tanh(c)
            new, x = new + [h, c], h
        update = tf.matmul(rule.output_kernel, x, transpose_a=True)[0] + rule.output_bias
        return update * config.output_scale, new

    def bfloat16_step(g, cells):
        x, new = features(g, tf.bfloat16), []
        for layer, (kernel, bias) in enumerate(zip(rule.kernels, rule.biases)):
            h, c = cells[2 * layer], cells[2 * layer + 1]
            gates = tf.matmul(tf.concat([x, h], 1), tf.cast(kernel, tf.bfloat16)) + tf.cast(bias, tf.bfloat16)
            i, f, gg, o = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(gg)
            h = tf.sigmoid(o) * tf.tanh(c)
            new, x = new + [h, c], h
        update = tf.squeeze(tf.matmul(tf.cast(x, tf.float32), rule.output_kernel) + rule.output_bias, 1)
        return update * config.output_scale, new

    def with_cell(cell):
        """The rule's step with each layer's ``(x, h, c, kernel, bias) -> (h, c)`` replaced by ``cell``."""
        def step(g, cells):
            x, new = features(g), []
            for layer, (kernel, bias) in enumerate(zip(rule.kernels, rule.biases)):
                h, c = cell(x, cells[2 * layer], cells[2 * layer + 1], kernel, bias)
                new, x = new + [h, c], h
            update = tf.squeeze(tf.matmul(x, rule.output_kernel) + rule.output_bias, 1)
            return update * config.output_scale, new
        return step

    gate_scale = tf.constant([1.0] * 2 * hidden + [2.0] * hidden + [1.0] * hidden)

    def one_sigmoid_cell(x, h, c, kernel, bias):
        gates = tf.sigmoid(tf.nn.bias_add(tf.matmul(tf.concat([x, h], 1), kernel * gate_scale), bias * gate_scale))
        i, f, gg, o = tf.split(gates, 4, axis=1)
        c = f * c + i * (2.0 * gg - 1.0)
        return o * tf.tanh(c), c

    def lstm_gate_math(i, f, gg, o, c):
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(gg)
        return tf.sigmoid(o) * tf.tanh(c), c

    def per_gate_cell(x, h, c, kernel, bias):
        inputs = tf.concat([x, h], 1)
        gates = (tf.nn.bias_add(tf.matmul(inputs, kernel[:, k * hidden:(k + 1) * hidden]), bias[k * hidden:(k + 1) * hidden])
                 for k in range(4))
        return lstm_gate_math(*gates, c)

    xla_gate_math = tf.function(lambda gates, c: lstm_gate_math(*tf.split(gates, 4, axis=1), c), jit_compile=True)

    def xla_cell(x, h, c, kernel, bias):
        return xla_gate_math(tf.matmul(tf.concat([x, h], 1), kernel) + bias, c)

    one_sigmoid_step, per_gate_step, xla_cell_step = map(with_cell, (one_sigmoid_cell, per_gate_cell, xla_cell))

    def fused_kernel_step(g, state):
        cells, x, new = rule.split_state(state), features(g), []
        zeros = tf.zeros([hidden])
        for layer, (kernel, bias) in enumerate(zip(rule.kernels, rule.biases)):
            out = tf.raw_ops.BlockLSTMV2(  # gate order i, f, g(c), o: the rule's own
                seq_len_max=tf.constant(1, tf.int64), x=x[None], cs_prev=cells[2 * layer + 1],
                h_prev=cells[2 * layer], w=kernel, wci=zeros, wcf=zeros, wco=zeros, b=bias,
            )
            h, c = out.h[0], out.cs[0]
            new, x = new + [h, c], h
        update = tf.squeeze(tf.matmul(x, rule.output_kernel) + rule.output_bias, 1)
        return update * config.output_scale, rule.join_state(new)

    def on_joined_state(step_cells):
        """A cells-in, cells-out step as the exported signature's ``[N, S]`` state step."""
        def step(g, state):
            update, cells = step_cells(g, rule.split_state(state))
            return update, rule.join_state(cells)
        return step

    def unroll_gradient(step, shape, dtype):
        @tf.function
        def run(g):
            with tf.GradientTape() as tape:
                cells, total = [tf.zeros(shape, dtype)] * (2 * config.num_layers), 0.0
                for t in range(STEPS):
                    update, cells = step(g[t], cells)
                    total += tf.reduce_sum(update * update) + 0.01 * tf.reduce_sum(tf.cast(cells[-1], tf.float32))
            return total, tape.gradient(total, rule.trainable_variables)
        return run

    n, m = FLAGS.coordinates, FLAGS.frozen_coordinates
    g_unroll = tf.random.stateless_normal([STEPS, n], seed=[0, 1]) * 0.01
    g_frozen = tf.random.stateless_normal([m], seed=[0, 2]) * 0.01
    s_frozen = tf.random.stateless_normal([m, rule.state_size], seed=[0, 3]) * 0.1
    groups = {
        "meta_training_unroll": (g_unroll, STEPS, {
            "current": unroll_gradient(rule.step_cells, [n, hidden], tf.float32),
            "transposed": unroll_gradient(transposed_step, [hidden, n], tf.float32),
            "bfloat16": unroll_gradient(bfloat16_step, [n, hidden], tf.bfloat16),
            "one_sigmoid": unroll_gradient(one_sigmoid_step, [n, hidden], tf.float32),
            "per_gate": unroll_gradient(per_gate_step, [n, hidden], tf.float32),
            "xla_cell": unroll_gradient(xla_cell_step, [n, hidden], tf.float32),
        }),
        "frozen_step": ((g_frozen, s_frozen), 1, {
            "current": tf.function(rule.step),
            "xla": tf.function(rule.step, jit_compile=True),
            "fused_kernel": tf.function(fused_kernel_step),
            "one_sigmoid": tf.function(on_joined_state(one_sigmoid_step)),
            "per_gate": tf.function(on_joined_state(per_gate_step)),
            "xla_cell": tf.function(on_joined_state(xla_cell_step)),
        }),
    }
    results = {"coordinates": n, "frozen_coordinates": m, "unroll": STEPS}
    for group, (args, per_call, variants) in groups.items():
        args = args if isinstance(args, tuple) else (args,)
        reference = variants["current"](*args)
        rows, times = [], {name: [] for name in variants}
        for name, fn in variants.items():
            out = fn(*args)
            error = max(float(tf.reduce_max(tf.abs(tf.cast(a, tf.float32) - b)) / (tf.reduce_max(tf.abs(b)) + 1e-12))
                        for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(reference)))
            rows.append({"variant": name, "max_relative_difference": error})
        for _ in range(FLAGS.repeats):
            for name, fn in variants.items():
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
                times[name].append(time.perf_counter() - start)
        base = float(np.median(times["current"]))
        for row in rows:
            median = float(np.median(times[row["variant"]]))
            row.update({"ms_per_step": median / per_call * 1e3, "speedup_vs_current": base / median})
            print(f"{group:<22} {row['variant']:<13} {row['ms_per_step']:8.2f} ms/step"
                  f"  x{row['speedup_vs_current']:.2f}  max rel. diff {row['max_relative_difference']:.1e}", flush=True)
        results[group] = rows
    with open(FLAGS.output, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    app.run(main)
