"""Tracing cost, memory and speed of the mlp rule's two compiled forms in meta-training.

  taskset -c 0 python -m benchmarks.mlp_rule_forms --mnist_dir=../shared/data/mnist-10k

``MLPRule`` writes its MLP as sums of column-times-weight terms when traced for XLA, or as
matmuls when traced for a plain graph (``rule_base.traced_for``; ``--nojit_compile`` meta-training,
the default, traces for a plain graph). For each form, in a fresh process (resident memory
is per process), this traces one truncated-BPTT
unroll (``MetaTrainer.train_unroll``, XLA off) on each of the first ``--num_tasks`` problems of
``tasks:training``, as meta-training over the task list does, and records per problem the
first call's seconds (tracing, plus one execution and, on the first problem, the
meta-optimizer's slots), warm optimizee steps/s (median of ``--repeats``), and the process's
resident memory after it. Writes JSON (``--output``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app, flags

from benchmarks.common import block, first_unroll, write_json

flags.DEFINE_string("mnist_dir", None, "IDX folder of the MNIST digits (else TFDS).")
flags.DEFINE_integer("num_tasks", 4, "How many of tasks:training's problems to trace.", lower_bound=1)
flags.DEFINE_integer("unroll_length", 20, "Steps per unroll.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Warm timings per problem.", lower_bound=1)
flags.DEFINE_enum("form", None, ["columnwise", "matmuls"], "Internal: time one form in this process.")
flags.DEFINE_string("output", "benchmarks/mlp_rule_forms.json", "Where to write the JSON results.")
FLAGS = flags.FLAGS


def resident_mib() -> float:
    """This process's current resident memory (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def time_form(columnwise: bool) -> list[dict]:
    """Per problem: tracing seconds, warm steps/s and resident MiB after, for one form."""
    from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
    from l2l_tf.problems.task_lists import task_list
    from l2l_tf.rule_base import compiled_function
    from l2l_tf.rules_mlp import MLPRule

    source = "idx" if FLAGS.mnist_dir else "tfds"
    length, rows = FLAGS.unroll_length, []
    config = MetaConfig(num_steps=length, unroll_length=length, schedule=MetaSchedule(jit_compile=False))
    for problem in task_list("training", source, FLAGS.mnist_dir)[: FLAGS.num_tasks]:
        trainer = MetaTrainer(MLPRule(), problem, config)
        trainer.train_unroll = compiled_function(  # the form under test, compiled without XLA either way
            trainer._train_unroll, False, xla_form=columnwise, input_signature=trainer.unroll_signature
        )
        call = first_unroll(trainer)
        start = time.perf_counter()
        block(call())
        trace_s = time.perf_counter() - start
        times = []
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            block(call())
            times.append((time.perf_counter() - start) / length)
        rows.append({"problem": problem.name, "coordinates": problem.num_coordinates, "first_call_s": trace_s,
                     "optimizee_steps_per_s": 1 / statistics.median(times), "resident_mib_after": resident_mib()})
        print(f"  {'columnwise' if columnwise else 'matmuls':<10} {problem.name:<24} first call {trace_s:6.1f}s"
              f"  {rows[-1]['optimizee_steps_per_s']:6.1f} steps/s  {rows[-1]['resident_mib_after']:7.0f} MiB",
              flush=True)
    return rows


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.form:
        print("ROWS " + json.dumps(time_form(FLAGS.form == "columnwise")), flush=True)
        return
    forms = {}
    for form in ("columnwise", "matmuls"):
        args = [sys.executable, "-m", "benchmarks.mlp_rule_forms", f"--form={form}",
                f"--num_tasks={FLAGS.num_tasks}", f"--unroll_length={FLAGS.unroll_length}",
                f"--repeats={FLAGS.repeats}"] + ([f"--mnist_dir={FLAGS.mnist_dir}"] if FLAGS.mnist_dir else [])
        lines = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()
        rows = [line for line in lines if line.startswith("ROWS ")]
        if not rows:
            raise RuntimeError(f"the {form} process printed no results")
        for line in lines:
            if line not in rows:
                print(line)
        forms[form] = json.loads(rows[0][len("ROWS "):])
    speedups = [m["optimizee_steps_per_s"] / c["optimizee_steps_per_s"]
                for c, m in zip(forms["columnwise"], forms["matmuls"])]
    ratios = {
        "first_call_s": statistics.mean(c["first_call_s"] / m["first_call_s"]
                                        for c, m in zip(forms["columnwise"], forms["matmuls"])),
        "optimizee_steps_per_s": statistics.mean(speedups),
        "optimizee_steps_per_s_range": [min(speedups), max(speedups)],
        "resident_mib_after_all": forms["columnwise"][-1]["resident_mib_after"]
        / forms["matmuls"][-1]["resident_mib_after"],
    }
    print(f"matmuls vs columnwise (XLA off): first calls {ratios['first_call_s']:.1f}x faster,"
          f" {ratios['optimizee_steps_per_s']:.2f}x the warm steps/s ({min(speedups):.2f}-{max(speedups):.2f}x),"
          f" {ratios['resident_mib_after_all']:.1f}x less resident memory after {FLAGS.num_tasks} problems", flush=True)
    write_json(FLAGS.output, {
        "unroll_length": FLAGS.unroll_length, "repeats": FLAGS.repeats, "num_tasks": FLAGS.num_tasks,
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "machine": platform.processor() or platform.machine(),
        "forms": forms, "matmuls_over_columnwise": ratios,
    })


if __name__ == "__main__":
    app.run(main)
