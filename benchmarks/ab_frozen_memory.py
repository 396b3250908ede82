"""A/B benchmark: the frozen step's memory traffic. Cache-sized coordinate chunks, the
allocator, and the thread layout, against the plain exported step.

  python -m benchmarks.ab_frozen_memory [--coordinates=100000,1000000] [--output=benchmarks/ab_frozen_memory.json]

At N >= 1e5 every ``[N, 20..80]`` tensor of the step leaves the cache, and each elementwise
op becomes one pass through main memory. This measures what keeping the passes in cache
buys. The loaded rule's step (``export.load``: since issue 13 rebuilt in Python from the
exported weights; earlier figures ran the SavedModel's signature) is called once per block of ``chunk`` coordinates
inside one ``tf.function``, so each block's tensors fit in the L2/L3 cache. Chunk 0 is the
plain single call. Each configuration runs in its own process, because thread pools and the
allocator are fixed per process:

  default        TensorFlow's default threads and CPU allocator
  bfc_allocator  ``TF_CPU_ALLOCATOR_USE_BFC=true``: freed buffers are reused, not handed
                 back to the OS and faulted in again
  one_intra      one intra-op thread, two inter-op threads: the chunks are independent
                 chains, so two of them run at a time

In each process, every chunk size is checked to give the plain step's values. The timings
are interleaved round-robin and reported as medians. The share is of that process's own
large-matmul rate, and for ``one_intra`` that rate is a single-core one.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from benchmarks.common import write_json

flags.DEFINE_list("coordinates", ["100000", "1000000"], "Sizes N of the frozen step.")
flags.DEFINE_list("chunks", ["0", "32768", "16384", "4096"], "Coordinates per call (0: one call).")
flags.DEFINE_integer("repeats", 7, "Timed calls per variant.")
flags.DEFINE_string("output", "benchmarks/ab_frozen_memory.json", "JSON output.")
flags.DEFINE_string("config", None, "Internal: measure this configuration in this process.")
flags.DEFINE_integer("intra_threads", 0, "Internal: intra-op threads (0: TensorFlow's default).")
FLAGS = flags.FLAGS

CONFIGS = {
    "default": ({}, []),
    "bfc_allocator": ({"TF_CPU_ALLOCATOR_USE_BFC": "true"}, []),
    "one_intra": ({}, ["--intra_threads=1"]),
}


def measure_config() -> dict:
    """Every N and chunk size in this process: ms per step, updates/s, share of the matmul rate."""
    import tensorflow as tf

    if FLAGS.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    from benchmarks.common import block, matmul_flop_rate, rule_matmul_flops
    from l2l_tf import export
    from l2l_tf.rules import CoordinatewiseLSTM
    from l2l_tf.sharding import block_sizes, step_in_blocks

    path = os.path.join(tempfile.mkdtemp(), "rule")
    export.export_rule(CoordinatewiseLSTM(), path)
    frozen = export.load(path)
    ceiling = matmul_flop_rate()
    rows = []
    for n in map(int, FLAGS.coordinates):
        gradients = tf.random.normal([n], stddev=1e-2)
        state = frozen.init_state(n) + tf.random.normal([n, frozen.state_size], stddev=0.1)
        steps = {}
        for chunk in map(int, FLAGS.chunks):
            sizes = block_sizes(n, chunk)
            steps[chunk] = tf.function(lambda g, s, sizes=sizes: step_in_blocks(frozen.step, g, s, sizes))
        reference = steps[int(FLAGS.chunks[0])](gradients, state)
        for chunk, step in steps.items():
            update, new_state = step(gradients, state)
            error = max(float(tf.reduce_max(tf.abs(update - reference[0]))),
                        float(tf.reduce_max(tf.abs(new_state - reference[1]))))
            if error > 1e-5:
                raise AssertionError(f"chunk {chunk} differs from the plain step by {error}")
        times = {chunk: [] for chunk in steps}
        for _ in range(FLAGS.repeats):  # round-robin
            for chunk, step in steps.items():
                start = time.perf_counter()
                block(step(gradients, state))
                times[chunk].append(time.perf_counter() - start)
        one_call = statistics.median(times[int(FLAGS.chunks[0])])
        for chunk, samples in times.items():
            seconds = statistics.median(samples)
            rows.append({
                "coordinates": n, "chunk": chunk, "ms_per_step": seconds * 1e3,
                "coordinate_updates_per_s": n / seconds,
                "fraction_of_matmul_rate": n / seconds * rule_matmul_flops() / ceiling,
                "speedup_vs_one_call": one_call / seconds,
            })
        del gradients, state
    return {"matmul_gflop_per_s": ceiling / 1e9, "rows": rows}


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.config:
        print(json.dumps(measure_config()))
        return
    results = {}
    for name, (env, extra) in CONFIGS.items():
        command = [sys.executable, "-m", "benchmarks.ab_frozen_memory", f"--config={name}",
                   f"--coordinates={','.join(FLAGS.coordinates)}", f"--chunks={','.join(FLAGS.chunks)}",
                   f"--repeats={FLAGS.repeats}", *extra]
        completed = subprocess.run(command, env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                   capture_output=True, text=True, check=True)
        results[name] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(f"{name}: matmul ceiling {results[name]['matmul_gflop_per_s']:.1f} GFLOP/s", flush=True)
        for row in results[name]["rows"]:
            print(f"  N={row['coordinates']:<8} chunk={row['chunk']:<6} {row['ms_per_step']:8.1f} ms"
                  f"  {row['coordinate_updates_per_s'] / 1e6:5.2f} M/s  {row['fraction_of_matmul_rate']:6.1%}"
                  f"  x{row['speedup_vs_one_call']:.2f} vs one call", flush=True)
    write_json(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
