"""Is the general rule's update the right size for the suite's 200-step horizon? Chosen on the
validation tasks only (never the held-out ones).

The rule was meta-trained for the mean log loss over runs of 100 to 1,000 steps; the held-out suite
scores the final loss at step 200. This runs the rule with its update multiplied by each scale
(what ``LearnedOptimizer(learning_rate=...)`` does) on the 6 validation tasks, 10 validation runs
each (seeds 900000+), and scores each scale by the mean over tasks of log(mean final loss): lower is
better, and a difference between two scales is the mean log ratio of their final losses.

    PYTHONPATH=. python experiments/general/update_scale.py --optimizer=experiments/general/wide_run250_rule \
        --data_dir=../shared/data/mnist-10k > experiments/general/update_scale.txt
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from absl import app, flags

from l2l_tf import export, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems.tasks import task_list

flags.DEFINE_string("optimizer", None, "The rule folder.")
flags.DEFINE_string("data_dir", None, "IDX digits folder.")
flags.DEFINE_list("scales", ["0.5", "1", "2", "4"], "Update multipliers to compare.")
flags.DEFINE_integer("num_steps", 200, "Steps per run (the held-out suite's horizon).")
flags.DEFINE_integer("num_runs", 10, "Validation runs per task.")
flags.mark_flags_as_required(["optimizer", "data_dir"])
FLAGS = flags.FLAGS


class ScaledRuleRunner(RuleRunner):
    """``RuleRunner`` with every update multiplied by ``scale``."""

    def __init__(self, scale: float, *args, **kwargs):
        self.scale = scale
        super().__init__(*args, **kwargs)

    def _advance(self, params: tf.Tensor, gradients: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        new_params, state = super()._advance(params, gradients, state)
        return params + self.scale * (new_params - params), state


def main(argv: list[str]) -> None:
    del argv
    rule = export.load_any(FLAGS.optimizer)
    problems = task_list("validation", "idx", FLAGS.data_dir)
    runs = seeds.validation_seeds(FLAGS.num_runs)
    scores: dict[str, dict[str, float]] = {}
    for scale in FLAGS.scales:
        per_task = {}
        for problem in problems:
            runner = ScaledRuleRunner(float(scale), rule, problem, FLAGS.num_steps, jit_compile=False)
            finals = [runner.run(seed)[0][-1] for seed in runs]
            per_task[problem.name] = float(np.mean(finals))
            print(f"scale {scale}: {problem.name} mean final loss {per_task[problem.name]:.5g}", flush=True)
        score = float(np.mean([np.log(v) if np.isfinite(v) and v > 0 else np.inf for v in per_task.values()]))
        scores[scale] = {"score": score, **per_task}
        print(f"scale {scale}: score (mean log final loss) {score:.4f}", flush=True)
    print(json.dumps({"optimizer": FLAGS.optimizer, "num_steps": FLAGS.num_steps, "runs": runs, "scores": scores}))


if __name__ == "__main__":
    app.run(main)
