"""Meta-training throughput of the paper's conv net (``mnist_conv``) and the rule's share.

  taskset -c 0 python -m benchmarks.conv_meta --mnist_dir=../shared/data/mnist-10k

Times one compiled truncated-BPTT unroll (``MetaTrainer.train_unroll``: forward, gradient,
rule, meta-backward, Adam step) of the conv net at batch 128, for each configuration:
the coordinatewise LSTM (with and without momentum features, XLA off and on) and, as the
reference for the rule's share, the *same* unroll with the rule replaced by a one-weight
SGD rule (``theta += -lr * g``). The rule's share of a step is
``1 - time(SGD stand-in) / time(LSTM)``. Also the validation trajectory (``RuleRunner``,
no meta-gradient). Medians of alternating repeats; writes JSON (``--output``).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import tensorflow as tf
from absl import app, flags

from benchmarks.common import block, first_unroll, write_json
from l2l_tf import seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.meta import MetaConfig, MetaSchedule, MetaTrainer
from l2l_tf.problems import make_problem
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig

flags.DEFINE_string("mnist_dir", None, "IDX folder of the MNIST digits.")
flags.DEFINE_string("problem", "mnist_conv", "Conv problem to time.")
flags.DEFINE_integer("unroll_length", 20, "Steps per timed unroll.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Alternating rounds of timings.", lower_bound=1)
flags.DEFINE_string("output", "benchmarks/conv_meta.json", "Where to write the JSON results.")
FLAGS = flags.FLAGS


class SgdStandIn(tf.Module):
    """A rule with the LSTM's interface that only does ``-lr * g``: the cost of everything
    in a meta-training step except the learned rule."""

    state_size = 1

    def __init__(self):
        super().__init__()
        self.learning_rate = tf.Variable(0.01, name="learning_rate")

    def init_state(self, num_coordinates):
        return tf.zeros([num_coordinates, 1])

    def split_state(self, state):
        return [state]

    def join_state(self, cells):
        return cells[0]

    def step_cells(self, gradients, cells):
        return -self.learning_rate * gradients, cells

    def step(self, gradients, state):
        return -self.learning_rate * gradients, state


def timed(fn, steps: int) -> tuple[float, float]:
    """Seconds of the first (compiling) call; seconds per step of one warm call."""
    start = time.perf_counter()
    block(fn())
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    block(fn())
    return compile_s, (time.perf_counter() - start) / steps


def main(argv: list[str]) -> None:
    del argv
    problem = make_problem(FLAGS.problem, "idx", FLAGS.mnist_dir)
    length = FLAGS.unroll_length
    configs = {
        "lstm": (lambda: CoordinatewiseLSTM(), False),
        "lstm_momentum": (lambda: CoordinatewiseLSTM(RuleConfig(momentum_decays=(0.5, 0.9, 0.99))), False),
        "sgd_stand_in": (SgdStandIn, False),
        "lstm_xla": (lambda: CoordinatewiseLSTM(), True),
    }
    calls, compile_s, per_step = {}, {}, {}
    for name, (make_rule, jit) in configs.items():
        config = MetaConfig(num_steps=length, unroll_length=length, schedule=MetaSchedule(jit_compile=jit))
        calls[name] = first_unroll(MetaTrainer(make_rule(), problem, config))
        compile_s[name], first = timed(calls[name], length)
        per_step[name] = [first]
        print(f"  {name:<14} compile {compile_s[name]:.1f}s  {1 / first:.2f} steps/s", flush=True)
    for _ in range(FLAGS.repeats - 1):  # alternate, so load changes hit every configuration
        for name, call in calls.items():
            start = time.perf_counter()
            block(call())
            per_step[name].append((time.perf_counter() - start) / length)
    validation = RuleRunner(CoordinatewiseLSTM(), problem, 100, jit_compile=False)
    validation.run(seeds.validation_seeds(1)[0])
    start = time.perf_counter()
    validation.run(seeds.validation_seeds(1)[0])
    validation_s = time.perf_counter() - start
    medians = {name: statistics.median(times) for name, times in per_step.items()}
    rows = [
        {"rule": name, "xla": configs[name][1], "optimizee_steps_per_s": 1 / medians[name],
         "seconds_per_step": medians[name], "compile_s": compile_s[name],
         "per_repeat_steps_per_s": [1 / t for t in per_step[name]]}
        for name in configs
    ]
    results = {
        "problem": FLAGS.problem, "coordinates": problem.num_coordinates, "optimizee_state": problem.state_size,
        "batch_size": problem.batch_size, "unroll_length": length, "repeats": FLAGS.repeats,
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "machine": platform.processor() or platform.machine(),
        "meta_training": rows,
        "rule_share_of_step": 1 - medians["sgd_stand_in"] / medians["lstm"],
        "rule_share_of_step_momentum": 1 - medians["sgd_stand_in"] / medians["lstm_momentum"],
        "validation_run_100_steps_s": validation_s,
    }
    for row in rows:
        print(f"{row['rule']:<14} xla={row['xla']!s:<5} {row['optimizee_steps_per_s']:6.2f} optimizee steps/s", flush=True)
    print(f"rule share of a meta-training step: {results['rule_share_of_step']:.0%}"
          f" (with momentum features {results['rule_share_of_step_momentum']:.0%});"
          f" one 100-step validation run {validation_s:.1f}s", flush=True)
    write_json(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
