"""l2l_tf benchmarks: meta-training throughput, frozen-rule throughput, Keras overhead.

  python -m benchmarks.run [--quick] [--output=benchmarks/results.json]

Every ratio is against a reference measured in the same process and run (Adam for
Keras steps; a large float32 matmul for FLOP rates), so it holds on a noisy machine.
Times are medians over repeats after a warm-up; compile time is reported apart.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags

from benchmarks.common import (
    available_memory_gib,
    block,
    first_unroll,
    matmul_flop_rate,
    median_time,
    mnist_problem,
    peak_rss_mib,
    rule_matmul_flops,
    write_json,
)

flags.DEFINE_boolean("quick", False, "Fewer repeats and sizes (a smoke run, about two minutes).")
flags.DEFINE_string("output", "benchmarks/results.json", "Where to write the JSON results.")
flags.DEFINE_string("mnist_dir", None, "IDX folder of MNIST for the MNIST benchmarks (default: random data of MNIST's shape).")
flags.DEFINE_list("sections", ["meta", "rule", "keras", "precision", "memory"], "Which benchmarks to run.")
flags.DEFINE_integer("coordinate_shards", 1, "Internal (section meta_threads): the configuration to measure.", lower_bound=1)
FLAGS = flags.FLAGS
SHIPPED_MNIST_RULE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_optimizers", "mnist_lstm")

def bench_meta_training(quick: bool, jit_values: tuple[bool, ...] = (True, False), shards: int = 1) -> list[dict]:
    """Optimizee steps/s inside meta-training (forward, gradient, rule, meta-backward, update)."""
    from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
    from l2l_tf.problems.quadratic import Quadratic
    from l2l_tf.rules import CoordinatewiseLSTM

    rows = []
    for name, make in (("quadratic 128x10", Quadratic), ("mnist mlp 784-20-10", lambda: mnist_problem(FLAGS.mnist_dir))):
        for jit in jit_values:
            problem = make()
            trainer = MetaTrainer(CoordinatewiseLSTM(), problem, MetaConfig(schedule=MetaSchedule(jit_compile=jit, coordinate_shards=shards)))
            n = problem.num_coordinates
            train_unroll = first_unroll(trainer)
            start = time.perf_counter()
            block(train_unroll())
            compile_s = time.perf_counter() - start
            per_unroll = median_time(train_unroll, 3 if quick else 7, inner=2 if quick else 5)
            rows.append({
                "problem": name, "xla": jit, "coordinate_shards": shards, "coordinates": n,
                "optimizee_steps_per_s": trainer.config.unroll_length / per_unroll,
                "seconds_per_unroll": per_unroll, "compile_s": compile_s, "peak_rss_mib": peak_rss_mib(),
            })
            print(f"  meta {name:<22} xla={jit!s:<5} shards={shards} {rows[-1]['optimizee_steps_per_s']:8.1f} steps/s"
                  f"  (compile {compile_s:.1f}s)", flush=True)
    return rows


def bench_meta_sharding(quick: bool) -> list[dict]:
    """Meta-training without XLA, TensorFlow's default threads vs ``coordinate_shards`` =
    cores with one intra-op thread (``l2l_tf.sharding``). Thread pools are fixed per
    process, so each configuration runs in its own process, alternating, several rounds;
    medians per configuration and problem."""
    cores = os.cpu_count() or 1
    runs: dict[tuple[str, int], list[float]] = {}
    rounds = 1 if quick else 5
    for _ in range(rounds):
        for shards in (1, cores):
            for row in run_section_in_subprocess("meta_threads", f"--coordinate_shards={shards}")["meta_training"]:
                runs.setdefault((row["problem"], shards), []).append(row["optimizee_steps_per_s"])
    rows = []
    for (problem, shards), rates in runs.items():
        rows.append({"problem": problem, "coordinate_shards": shards, "threads": "1 intra-op" if shards > 1 else "default",
                     "rounds": rounds, "optimizee_steps_per_s": statistics.median(rates), "per_round": rates})
    for row in rows:
        if row["coordinate_shards"] > 1:
            default = next(r for r in rows if r["problem"] == row["problem"] and r["coordinate_shards"] == 1)
            row["speedup_vs_default_threads"] = row["optimizee_steps_per_s"] / default["optimizee_steps_per_s"]
            print(f"  meta {row['problem']:<22} shards={row['coordinate_shards']} {row['optimizee_steps_per_s']:8.1f} steps/s"
                  f"  vs default threads {default['optimizee_steps_per_s']:.1f} (median of {rounds} alternating runs)",
                  flush=True)
    return rows


def run_section_in_subprocess(section: str, *extra_flags: str) -> dict:
    """``benchmarks.run --sections=SECTION`` in a fresh process; its JSON results."""
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, f"{section}.json")
        command = [sys.executable, "-m", "benchmarks.run", f"--sections={section}", f"--output={output}",
                   f"--quick={FLAGS.quick}", *extra_flags] + ([f"--mnist_dir={FLAGS.mnist_dir}"] if FLAGS.mnist_dir else [])
        subprocess.run(command, check=True)
        with open(output) as f:
            return json.load(f)


def bench_unroll_memory(quick: bool) -> list[dict]:
    """Peak tensor memory of one MNIST meta-training unroll (TensorFlow's allocator
    statistics, measured on a warm call), storing every activation and recomputing segments
    of 10 steps (``MetaConfig.recompute_segment``)."""
    import tensorflow as tf

    from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
    from l2l_tf.rules import CoordinatewiseLSTM

    problem = mnist_problem(FLAGS.mnist_dir)
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    rows = []
    for length in (20, 100) if quick else (20, 100, 200):
        for segment in (0, 10):
            config = MetaConfig(num_steps=length, unroll_length=length, schedule=MetaSchedule(recompute_segment=segment))
            trainer = MetaTrainer(CoordinatewiseLSTM(), problem, config)
            train_unroll = first_unroll(trainer)
            block(train_unroll())  # compile + warm-up
            before = tf.config.experimental.get_memory_info(device)["current"]
            tf.config.experimental.reset_memory_stats(device)
            start = time.perf_counter()
            block(train_unroll())
            seconds = time.perf_counter() - start
            peak = tf.config.experimental.get_memory_info(device)["peak"] - before
            rows.append({
                "unroll_length": length, "recompute_segment": segment,
                "coordinates": problem.num_coordinates, "peak_unroll_mib": peak / 2**20,
                "optimizee_steps_per_s": length / seconds,
            })
            print(f"  unroll {length:>3} recompute_segment={segment:<3} peak {rows[-1]['peak_unroll_mib']:8.0f} MiB"
                  f"  {rows[-1]['optimizee_steps_per_s']:6.1f} steps/s (one call)", flush=True)
    return rows


def rule_matmuls_alone(rule, n: int) -> Callable[[], Any]:
    """The rule step's matmuls at ``n`` coordinates and nothing else (no gate math, no
    concat): what TensorFlow's matmul kernel allows for the rule's skinny shapes, an
    upper bound on the whole step's FLOP rate."""
    import tensorflow as tf

    inputs = [tf.random.normal([n, kernel.shape[0]]) for kernel in rule.kernels]
    hidden = tf.random.normal([n, rule.output_kernel.shape[0]])

    @tf.function
    def matmuls():  # the products are returned, as the step returns its state
        products = [tf.matmul(x, kernel) for x, kernel in zip(inputs, rule.kernels)]
        return [*products, tf.matmul(hidden, rule.output_kernel)]

    return matmuls


# Peak memory of one frozen step per coordinate, an estimate: state in and out, gates and
# activations of both layers, float32.
FROZEN_STEP_BYTES_PER_COORDINATE = 1600


def bench_frozen_rule(quick: bool, ceiling: float) -> list[dict]:
    """Coordinate-updates/s of an exported rule's step as ``export.load`` gives it (rebuilt
    in Python from the file's weights since issue 13; figures recorded before that ran the
    SavedModel's signature), and its share of the matmul rate; next to it, the same share for the step's matmuls alone (the attainable bound)."""
    import tensorflow as tf

    from l2l_tf import export
    from l2l_tf.rules import CoordinatewiseLSTM

    path = os.path.join(tempfile.mkdtemp(), "rule")
    rule = CoordinatewiseLSTM()
    export.export_rule(rule, path)
    frozen = export.load(path)
    flops = rule_matmul_flops()
    rows = []
    sizes = [10_000, 100_000, 1_000_000] + ([] if quick else [10_000_000])
    for n in sizes:
        available = available_memory_gib()
        if available is not None and available < n * FROZEN_STEP_BYTES_PER_COORDINATE / 2**30:
            print(f"  rule N={n:<9} skipped: {available:.1f} GiB available, the step needs about"
                  f" {n * FROZEN_STEP_BYTES_PER_COORDINATE / 2**30:.0f} GiB", flush=True)
            rows.append({"coordinates": n, "skipped": f"{available:.1f} GiB of memory available"})
            continue
        gradients = tf.random.normal([n])
        state = frozen.init_state(n)
        block(frozen.step(gradients, state))
        seconds = median_time(lambda g=gradients, s=state: frozen.step(g, s), 3 if quick else 5, inner=1 if n >= 1e6 else 5)
        rate = n / seconds
        del gradients, state
        matmuls_share = None  # not measured at 1e7: the products alone need ~10 GB
        if n <= 1_000_000:
            matmuls = rule_matmuls_alone(rule, n)
            block(matmuls())
            matmuls_share = n / median_time(matmuls, 3 if quick else 5, inner=1 if n >= 1e6 else 5) * flops / ceiling
        rows.append({
            "coordinates": n, "coordinate_updates_per_s": rate, "matmul_gflop_per_s": rate * flops / 1e9,
            "fraction_of_matmul_rate": rate * flops / ceiling,
            "matmuls_alone_fraction_of_matmul_rate": matmuls_share,
            "bytes_per_s": rate * (2 * 80 + 2) * 4,  # state read+written, gradient in, update out
        })
        alone = "not measured" if matmuls_share is None else f"{matmuls_share:.1%}"
        print(f"  rule N={n:<9} {rate / 1e6:8.2f} M coord-updates/s  {rows[-1]['fraction_of_matmul_rate']:.1%} of matmul rate"
              f"  (its matmuls alone: {alone})", flush=True)
    return rows


def bench_keras(quick: bool) -> list[dict]:
    """Seconds per fit step with LearnedOptimizer / with Adam, same model and data (XLA-compiled
    steps), the models timed in alternation; for the wide MLP also the learned optimizer in a
    step without XLA, making one rule call or calls on blocks of 16,384 coordinates."""
    import keras
    import numpy as np

    from l2l_tf import export
    from l2l_tf.optimizer import LearnedOptimizer
    from l2l_tf.rules import CoordinatewiseLSTM

    path = os.path.join(tempfile.mkdtemp(), "rule")
    export.export_rule(CoordinatewiseLSTM(), path)
    rng = np.random.default_rng(0)

    def mlp():
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(20, activation="sigmoid"), keras.layers.Dense(10)])

    def convnet():
        return keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 5, activation="relu"), keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 5, activation="relu"), keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10),
        ])

    def wide_mlp():  # ~270k parameters
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                 keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])

    # label: (optimizer, XLA-compiled step)
    optimizers = {"adam": (lambda: keras.optimizers.Adam(1e-3), True), "learned": (lambda: LearnedOptimizer.load(path), True)}
    rows = []
    steps = 20 if quick else 50
    for name, build, shape in (("mnist mlp", mlp, (784,)), ("conv net", convnet, (28, 28, 1)), ("wide mlp", wide_mlp, (784,))):
        x = rng.random((128 * steps, *shape), dtype=np.float32)
        y = rng.integers(0, 10, 128 * steps)
        timings, models = {}, {}
        candidates = dict(optimizers)
        if name == "wide mlp":  # coordinate_block_size without XLA, before/after in the same process
            candidates["learned_no_xla"] = (lambda: LearnedOptimizer.load(path), False)
            candidates["learned_no_xla_chunked"] = (lambda: LearnedOptimizer.load(path, coordinate_block_size=16384), False)
        for label, (make_opt, jit_compile) in candidates.items():
            keras.utils.set_random_seed(0)
            model = models[label] = build()
            model.compile(optimizer=make_opt(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=jit_compile)
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)  # compile + warm-up
            params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
            opt_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.optimizer.variables) - 8
            timings[label + "_bytes_per_param"] = opt_bytes / params
        # Alternate the models' timings, so a change in the host's load hits all of them.
        # The wide MLP is timed per train_on_batch step: with a step this long, whole fit
        # epochs ran at either ~130 or ~257 ms/step at random (a one-off check), which the
        # single-batch steps do not show.
        per_batch = name == "wide mlp"
        samples = {label: [] for label in models}
        for _ in range((3 if quick else 7) * (5 if per_batch else 1)):
            for label, model in models.items():
                if per_batch:
                    samples[label].append(median_time(lambda m=model, x=x, y=y: m.train_on_batch(x[:128], y[:128]), 1))
                else:
                    epoch = median_time(lambda m=model, x=x, y=y: m.fit(x, y, batch_size=128, epochs=1, verbose=0), 1)
                    samples[label].append(epoch / steps)
        for label, seconds in samples.items():
            timings[label] = statistics.median(seconds)
        rows.append({
            "model": name, "trainable_parameters": params, "timed": "train_on_batch" if per_batch else "fit epochs",
            "seconds_per_step_adam": timings["adam"], "seconds_per_step_learned": timings["learned"],
            "ratio_learned_over_adam": timings["learned"] / timings["adam"],
            "optimizer_bytes_per_parameter_adam": timings["adam_bytes_per_param"],
            "optimizer_bytes_per_parameter_learned": timings["learned_bytes_per_param"],
        })
        no_xla = ""
        if "learned_no_xla" in timings:
            rows[-1]["seconds_per_step_learned_no_xla"] = timings["learned_no_xla"]
            rows[-1]["seconds_per_step_learned_no_xla_chunked"] = timings["learned_no_xla_chunked"]
            no_xla = (f"  (without XLA: {timings['learned_no_xla'] * 1e3:.0f} ms/step, coordinate_block_size=16384"
                      f" {timings['learned_no_xla_chunked'] * 1e3:.0f} ms/step)")
        print(f"  keras {name:<10} learned/adam step time {rows[-1]['ratio_learned_over_adam']:.2f}x{no_xla}", flush=True)
    return rows


def bench_state_precision(quick: bool) -> list[dict]:
    """The shipped MNIST rule training the MNIST MLP with its state stored in float32 and
    in bfloat16: training loss per epoch, test accuracy, step time, optimizer bytes/param."""
    import keras
    import numpy as np

    from l2l_tf.optimizer import LearnedOptimizer
    from l2l_tf.problems.data import Split, load_split
    from l2l_tf.problems.mnist import mlp

    if FLAGS.mnist_dir:
        train, test = (load_split(s, "idx", FLAGS.mnist_dir) for s in ("train", "test"))
    else:
        rng = np.random.default_rng(0)
        train, test = (Split(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32))
                       for n in (4096, 1024))
    epochs, rows = 2 if quick else 5, []
    for state_dtype in ("float32", "bfloat16"):
        keras.utils.set_random_seed(0)
        model = mlp([20], "sigmoid")
        optimizer = LearnedOptimizer.load(SHIPPED_MNIST_RULE, state_dtype=state_dtype)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=True)
        start = time.perf_counter()
        history = model.fit(train.images, train.labels, batch_size=128, epochs=epochs, verbose=0, shuffle=False)
        steps = epochs * -(-len(train.labels) // 128)
        params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        state_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in optimizer._rule_states)
        rows.append({
            "state_dtype": state_dtype, "epochs": epochs, "training_loss_per_epoch": history.history["loss"],
            "test_accuracy": float(model.evaluate(test.images, test.labels, verbose=0)[1]),
            "seconds_per_step_incl_compile": (time.perf_counter() - start) / steps,
            "state_bytes_per_parameter": state_bytes / params,
        })
        print(f"  state {state_dtype:<8} final loss {rows[-1]['training_loss_per_epoch'][-1]:.4f}"
              f"  test acc {rows[-1]['test_accuracy']:.4f}  {rows[-1]['state_bytes_per_parameter']:.0f} B/param", flush=True)
    return rows


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    if FLAGS.sections == ["meta_threads"]:  # one configuration of bench_meta_sharding, in its own process
        if FLAGS.coordinate_shards > 1:
            from l2l_tf.sharding import configure_cpu_threads

            configure_cpu_threads(FLAGS.coordinate_shards)
        rows = bench_meta_training(FLAGS.quick, jit_values=(False,), shards=FLAGS.coordinate_shards)
        with open(FLAGS.output, "w") as f:
            json.dump({"meta_training": rows}, f)
        return
    ceiling = matmul_flop_rate()
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")], "tensorflow": tf.__version__},
        "quick": FLAGS.quick, "matmul_gflop_per_s": ceiling / 1e9,
    }
    print(f"matmul ceiling: {ceiling / 1e9:.1f} GFLOP/s", flush=True)
    if FLAGS.sections == ["memory"]:
        results["unroll_memory"] = bench_unroll_memory(FLAGS.quick)
    elif "memory" in FLAGS.sections:  # first, in a fresh process: the other sections leave this one large
        results["unroll_memory"] = run_section_in_subprocess("memory")["unroll_memory"]
    if "meta" in FLAGS.sections:
        results["meta_training"] = bench_meta_training(FLAGS.quick)
        if not tf.config.list_physical_devices("GPU"):
            results["meta_training_sharded"] = bench_meta_sharding(FLAGS.quick)
    if "rule" in FLAGS.sections:
        results["frozen_rule"] = bench_frozen_rule(FLAGS.quick, ceiling)
    if "keras" in FLAGS.sections:
        results["keras"] = bench_keras(FLAGS.quick)
    if "precision" in FLAGS.sections:
        results["state_precision"] = bench_state_precision(FLAGS.quick)

    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    write_json(FLAGS.output, results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    app.run(main)
