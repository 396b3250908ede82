"""Does knowing the run's length help? A diagnostic on validation runs only (seeds 900000+).

Issue 15's two misses (10 classes at step 100, 2 classes at step 200) are at the ends of runs of
different lengths. Before building a rule that is told its horizon (NOTES.md, fourteenth session),
this measures what the simplest horizon-aware change buys: the shipped rule's update multiplied by a
schedule ``s(t / T)`` that decays over the run, against tuned NAG given the same schedules (its
learning rate multiplied by ``s``). Scores: mean loss at the final step over the validation runs.

    PYTHONPATH=. python experiments/conv/schedule_check.py --data_dir=../shared/data/mnist-10k \
        > experiments/conv/schedule_check.txt

The protocol (tasks, horizons, schedules, runs, NAG's rates) was fixed before any run. The committed
log (``schedule_check_conv100.txt``) is of a shortened run (``--cases=mnist_conv:100
--nag_rates=0.05,0.1``), stopped early; NOTES.md says why.
"""

from __future__ import annotations

import json
import math

import numpy as np
import tensorflow as tf
from absl import app, flags

from l2l_tf import export, seeds
from l2l_tf.evaluation import BaselineRunner, RuleRunner, trajectory
from l2l_tf.layout import rule_step
from l2l_tf.problems import make_problem

flags.DEFINE_string("optimizer", "saved_optimizers/conv_lstm", "The rule folder.")
flags.DEFINE_string("data_dir", None, "IDX digits folder.")
flags.DEFINE_integer("num_runs", 16, "Validation runs per task and horizon.")
flags.DEFINE_list("nag_rates", ["0.05", "0.1", "0.2"], "NAG's peak learning rates (0.05: its tuned constant rate).")
flags.DEFINE_list("cases", ["mnist_conv:100", "mnist_conv:200", "mnist_conv2:200"],
                  "task:horizon pairs: the two misses and the 10-class horizon that is met.")
flags.DEFINE_list("schedules", ["constant", "linear", "cosine", "late_linear"], "Schedules to compare.")
flags.DEFINE_string("output", "experiments/conv/schedule_check.json", "Where the JSON goes.")
flags.mark_flags_as_required(["data_dir"])
FLAGS = flags.FLAGS

def schedule(name: str, progress: tf.Tensor) -> tf.Tensor:
    """The update multiplier at ``progress = t / T`` in [0, 1)."""
    if name == "constant":
        return tf.ones_like(progress)
    if name == "linear":
        return 1.0 - progress
    if name == "cosine":
        return 0.5 * (1.0 + tf.cos(math.pi * progress))
    if name == "late_linear":  # constant for the first half, then linear to zero
        return tf.minimum(1.0, 2.0 * (1.0 - progress))
    raise ValueError(name)


class ScheduledRuleRunner(RuleRunner):
    """``RuleRunner`` whose update at step ``t`` is multiplied by ``schedule(t / T)``."""

    def __init__(self, schedule_name: str, *args, **kwargs):
        self.schedule_name = schedule_name
        super().__init__(*args, **kwargs)

    def _advance(self, params, gradients, state):
        t, rule_state = state
        update, rule_state = rule_step(self.rule, gradients, rule_state, self.layout, params)
        scale = schedule(self.schedule_name, t / self.num_steps)
        return params + scale * update, (t + 1.0, rule_state)

    def _run(self, params, optimizee_state, batches):
        state = (tf.constant(0.0), self.rule.init_state(self.problem.num_coordinates))
        return trajectory(self.problem, self.num_steps, params, batches, state, self._advance, optimizee_state)


class ScheduledBaselineRunner(BaselineRunner):
    """``BaselineRunner`` whose learning rate at step ``t`` is its peak rate times ``schedule(t / T)``."""

    def __init__(self, schedule_name: str, *args, **kwargs):
        self.schedule_name = schedule_name
        self.peak = tf.Variable(0.0, trainable=False)
        super().__init__(*args, **kwargs)

    def _advance(self, params, gradients, t):
        self.optimizer.learning_rate.assign(self.peak * schedule(self.schedule_name, t / self.num_steps))
        params, _ = super()._advance(params, gradients, tf.zeros([0]))
        return params, t + 1.0

    def _run(self, params, optimizee_state, batches):
        return trajectory(self.problem, self.num_steps, params, batches, tf.constant(0.0), self._advance,
                          optimizee_state)

    def run_with_state(self, seed, learning_rate, start=None):
        self.peak.assign(learning_rate)
        return super().run_with_state(seed, learning_rate, start)


def main(argv: list[str]) -> None:
    del argv
    rule = export.load_any(FLAGS.optimizer)
    runs = seeds.validation_seeds(FLAGS.num_runs)
    results = []
    for case in FLAGS.cases:
        task, horizon = case.split(":")[0], int(case.split(":")[1])
        problem = make_problem(task, "idx", FLAGS.data_dir)
        for name in FLAGS.schedules:
            runner = ScheduledRuleRunner(name, rule, problem, horizon, jit_compile=False)
            finals = [float(runner.run(seed)[0][-1]) for seed in runs]
            results.append({"task": task, "steps": horizon, "optimizer": "rule", "schedule": name,
                            "mean_final_loss": float(np.mean(finals)), "finals": finals})
            print(f"{task} T={horizon} rule {name}: {np.mean(finals):.5g}", flush=True)
            baseline = ScheduledBaselineRunner(name, "nag", problem, horizon, jit_compile=False)
            for rate in FLAGS.nag_rates:
                finals = [float(baseline.run(seed, float(rate))[0][-1]) for seed in runs]
                results.append({"task": task, "steps": horizon, "optimizer": f"nag@{rate}", "schedule": name,
                                "mean_final_loss": float(np.mean(finals)), "finals": finals})
                print(f"{task} T={horizon} nag@{rate} {name}: {np.mean(finals):.5g}", flush=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"optimizer": FLAGS.optimizer, "validation_runs": runs, "results": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
