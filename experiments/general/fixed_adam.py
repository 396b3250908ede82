"""The "no time to tune" baselines a user would actually try: Adam at fixed, untuned learning rates
(3e-3 and 1e-2; 1e-3 again, which must match the suite's adam@1e-3), on the held-out suite's tasks and evaluation runs (seeds
0-9, 200 steps: the same runs as experiments/general/heldout_baselines), without XLA. Writes
``experiments/general/fixed_adam.json``: per task and rate, every run's final loss, the mean and the
diverged runs.

    PYTHONPATH=. python experiments/general/fixed_adam.py --data_dir=../shared/data/mnist-10k
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from l2l_tf import seeds
from l2l_tf.evaluation import BaselineRunner, evaluate_baseline
from l2l_tf.problems.tasks import task_list
from l2l_tf.suite import Row

flags.DEFINE_string("data_dir", None, "IDX digits folder.")
flags.DEFINE_list("learning_rates", ["0.001", "0.003", "0.01"], "Fixed Adam learning rates (0.001: the suite's adam@1e-3 again, a check).")
flags.DEFINE_integer("num_steps", 200, "Steps per run (the held-out suite's horizon).")
flags.DEFINE_integer("num_runs", 10, "Evaluation runs per task (seeds 0..N-1).")
flags.DEFINE_string("output", os.path.join(os.path.dirname(__file__), "fixed_adam.json"), "Output JSON.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    runs = seeds.evaluation_seeds(FLAGS.num_runs)
    results: dict[str, dict[str, dict]] = {}
    for problem in task_list("heldout", "idx", FLAGS.data_dir):
        runner = BaselineRunner("adam", problem, FLAGS.num_steps, jit_compile=False)
        results[problem.name] = {}
        for rate in FLAGS.learning_rates:
            row = Row.from_result(evaluate_baseline(runner, runs, float(rate)))
            results[problem.name][rate] = {"final_losses": row.final_losses, "mean": float(np.mean(row.final_losses)),
                                           "diverged_runs": row.diverged_runs}
            print(f"{problem.name}: adam@{rate} mean final loss {results[problem.name][rate]['mean']:.4g},"
                  f" diverged {row.diverged_runs}", flush=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"command": "PYTHONPATH=. python experiments/general/fixed_adam.py --data_dir=../shared/data/mnist-10k",
                   "num_steps": FLAGS.num_steps, "runs": runs, "tasks": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
