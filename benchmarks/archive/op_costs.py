"""What the frozen rule's individual operations cost at N coordinates, one op at a time.

  python -m benchmarks.archive.op_costs [--coordinates=100000] [--output=benchmarks/archive/op_costs.json]

Explains the frozen-rule figures in RESULTS.md: each op streams ``[N, 20..80]`` float32
tensors through memory, so a copy, an add or a split of the ``[N, 80]`` state costs about
as much as the ``[N, 22] x [22, 80]`` matmul itself. Run it pinned to one core
(``taskset -c 0`` with ``TF_NUM_INTRAOP_THREADS=1``) for per-core figures.
"""

from __future__ import annotations

import json

from absl import app, flags

from benchmarks.common import block, median_time

flags.DEFINE_integer("coordinates", 100_000, "N, the number of coordinates.")
flags.DEFINE_string("output", "benchmarks/archive/op_costs.json", "JSON output.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from l2l_tf import preprocess

    n = FLAGS.coordinates
    x, kernel = tf.random.normal([n, 22]), tf.random.normal([22, 80])
    gates, bias, state = tf.random.normal([n, 80]), tf.random.normal([80]), tf.random.normal([n, 80])
    cell = tf.random.normal([n, 20])
    gradients = tf.random.normal([n]) * 1e-3
    ops = {
        "matmul [N,22] x [22,80]": lambda: tf.matmul(x, kernel),
        "matmul + bias": lambda: tf.matmul(x, kernel) + bias,
        "add bias [N,80]": lambda: gates + bias,
        "scale (copy) [N,80]": lambda: gates * 1.5,
        "sigmoid [N,80]": lambda: tf.sigmoid(gates),
        "sigmoid [N,20]": lambda: tf.sigmoid(cell),
        "multiply [N,20]": lambda: cell * cell,
        "split state [N,80] -> 4 x [N,20]": lambda: tf.split(state, 4, axis=1),
        "concat 4 x [N,20] -> [N,80]": lambda: tf.concat([cell] * 4, axis=1),
        "log/sign preprocessing [N]": lambda: preprocess.log_sign(gradients),
    }
    rows = []
    for name, op in ops.items():
        compiled = tf.function(op)
        block(compiled())
        ms = median_time(compiled, 15) * 1e3
        rows.append({"op": name, "ms": ms})
        print(f"{name:<36} {ms:7.2f} ms", flush=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"coordinates": n, "ops": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
