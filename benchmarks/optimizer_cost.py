"""What a learned optimizer costs a Keras user, against Adam, in one process.

  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 0 \
      python -m benchmarks.optimizer_cost [--output=benchmarks/optimizer_cost.json]

On a 784-128-64-10 ReLU MLP (109,386 parameters), batch 128, random MNIST-shaped data:

- ``step_ms``: the median time of one ``train_on_batch`` step for Adam, the shipped general
  rule (``--general``, a per-parameter MLP rule, ``rules_mlp``) and the paper's LSTM rule
  (``--lstm``, a shipped rule file), each with the model compiled as Keras
  does by default on this machine (``jit_compile="auto"``: no XLA on a CPU-only machine) and
  with ``jit_compile=True``. The optimizers take turns (one block of ``--steps`` steps each,
  ``--repeats`` times), so a change in the machine's load hits all of them alike;
  ``ratio_vs_adam`` divides by Adam's median under the same setting.
- ``state_bytes_per_parameter``: the bytes of the optimizer's variables (Adam's moments, the
  rules' per-parameter states; the iteration counter and learning rate included) divided by
  the model's parameters. The rules' own weights are not per-parameter and are listed apart.
- the load average before and after and the CPUs this process may use: other processes
  on the cores move every figure.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import keras
import numpy as np
from absl import app, flags

from benchmarks.common import write_json
from l2l_tf.optimizer import LearnedOptimizer

flags.DEFINE_string("output", "benchmarks/optimizer_cost.json", "Where to write the JSON results.")
flags.DEFINE_string("lstm", "saved_optimizers/mnist_lstm", "The LSTM rule file to time.")
flags.DEFINE_string("general", "saved_optimizers/general", "The per-parameter MLP rule file to time.")
flags.DEFINE_integer("repeats", 15, "Timed blocks per optimizer and setting (medians over them).", lower_bound=1)
flags.DEFINE_integer("steps", 10, "train_on_batch steps per timed block.", lower_bound=1)
flags.DEFINE_list("jit_compile", ["auto", "true"], "model.compile jit_compile settings to time.")
flags.DEFINE_list("optimizers", ["adam", "mlp_rule", "mlp_rule_no_xla", "lstm_rule", "lstm_rule_xla"],
                  "Optimizers to time (adam is the baseline and must be first).")
FLAGS = flags.FLAGS

BATCH = 128


def make_optimizer(name: str) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam()
    if name == "mlp_rule":
        return LearnedOptimizer.load(FLAGS.general)
    if name == "mlp_rule_no_xla":
        return LearnedOptimizer.load(FLAGS.general, jit_compile_rule=False)
    if name == "lstm_rule_xla":
        return LearnedOptimizer.load(FLAGS.lstm, jit_compile_rule=True)
    return LearnedOptimizer.load(FLAGS.lstm)


def make_model(optimizer: keras.optimizers.Optimizer, jit_compile: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile="auto" if jit_compile == "auto" else jit_compile == "true")
    return model


def state_bytes(optimizer: keras.optimizers.Optimizer) -> int:
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in optimizer.variables))


def time_block(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Seconds per ``train_on_batch`` step over one block of ``--steps`` steps."""
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))
    return (time.perf_counter() - start) / FLAGS.steps


def main(argv: list[str]) -> None:
    del argv
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    names = FLAGS.optimizers
    models, results = {}, {"rows": []}
    for setting in FLAGS.jit_compile:
        for name in names:
            model = make_model(make_optimizer(name), setting)
            for _ in range(3):  # build, trace and compile before timing
                model.train_on_batch(x, y)
            models[(name, setting)] = model
    samples: dict = {key: [] for key in models}
    for _ in range(FLAGS.repeats):
        for key, model in models.items():
            samples[key].append(time_block(model, x, y))
    for (name, setting), model in models.items():
        median = statistics.median(samples[(name, setting)])
        adam = statistics.median(samples[("adam", setting)])
        optimizer = model.optimizer
        parameters = int(sum(np.prod(v.shape) for v in model.trainable_variables))
        rule = getattr(optimizer, "rule", None)
        results["rows"].append({
            "optimizer": name, "jit_compile": setting, "step_ms": 1000 * median,
            "step_ms_quartiles": [1000 * q for q in statistics.quantiles(samples[(name, setting)], n=4)],
            "ratio_vs_adam": median / adam, "parameters": parameters,
            "state_bytes_per_parameter": state_bytes(optimizer) / parameters,
            "rule_weights": None if rule is None else int(sum(np.prod(w.shape) for w in rule.get_weights())),
        })
    results.update({
        "model": "784-128-64-10 ReLU MLP", "batch": BATCH, "timed": "train_on_batch",
        "repeats": FLAGS.repeats, "steps_per_block": FLAGS.steps, "lstm_rule": FLAGS.lstm, "general_rule": FLAGS.general,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)), "machine_cpus": os.cpu_count(),
        "intra_op_threads_env": os.environ.get("TF_NUM_INTRAOP_THREADS"), "processor": platform.processor(),
        "keras": keras.__version__,
    })
    for row in results["rows"]:
        print(f"{row['optimizer']:10s} jit={row['jit_compile']:5s} {row['step_ms']:7.2f} ms/step"
              f"  x{row['ratio_vs_adam']:.2f} Adam  {row['state_bytes_per_parameter']:.1f} B/param")
    print(f"load average before {load_before}, after {results['load_average_after']}")
    write_json(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
