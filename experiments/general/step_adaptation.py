"""Does a per-tensor adapted step factor help the general rule find a task's step size? Chosen on
the validation tasks only (never the held-out ones).

The general rule loses most to tuned baselines on held-out tasks whose tuned learning rate is large
(``update_scale.txt``: no single global scale fixes it). ``MLPRuleConfig.step_adaptation_rate`` gives
each tensor a log step factor moved every step by the rate times the cosine between its gradient and
its previous Adam direction (a normalised hypergradient, Baydin et al., 2018), clipped to
``+-max_adapted_log_scale``. This runs the shipped rule's weights with each rate (0: the rule as
shipped) on the 6 validation tasks, 10 validation runs each (seeds 900000+), 200 steps.

The criterion, fixed before the first run: a rate's score is the mean over tasks of
``log(mean final loss at that rate / mean final loss at rate 0)``, each task's log ratio clipped to
[-1, 1] so that no single near-zero-loss task decides (the 2-class conv task did in
``update_scale.txt``). A rate is adopted only if its score is below 0 and it ends lower than rate 0
on at least 4 of the 6 tasks; of such rates, the lowest score.

    PYTHONPATH=. python experiments/general/step_adaptation.py --optimizer=experiments/general/wide_run250_rule \
        --data_dir=../shared/data/mnist-10k > experiments/general/step_adaptation.txt
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from absl import app, flags

from l2l_tf import checkpoints, rules_mlp, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems.tasks import task_list
from l2l_tf.rules_mlp import MLPRule

flags.DEFINE_string("optimizer", None, "The rule folder (an mlp-family rule checkpoint).")
flags.DEFINE_string("data_dir", None, "IDX digits folder.")
flags.DEFINE_list("rates", ["0", "0.01", "0.03", "0.1"], "step_adaptation_rate values to compare (0 first).")
flags.DEFINE_float("max_adapted_log_scale", 2.3, "The adapted factor's bound (log).")
flags.DEFINE_integer("num_steps", 200, "Steps per run (the held-out suite's horizon).")
flags.DEFINE_integer("num_runs", 10, "Validation runs per task.")
flags.mark_flags_as_required(["optimizer", "data_dir"])
FLAGS = flags.FLAGS


def with_rate(rule: MLPRule, rate: float) -> MLPRule:
    """``rule``'s weights under a config with ``step_adaptation_rate=rate``."""
    config = dataclasses.replace(rule.config, step_adaptation_rate=rate,
                                 max_adapted_log_scale=FLAGS.max_adapted_log_scale)
    adapted = MLPRule(config)
    rules_mlp.warm_start(adapted, rule)
    return adapted


def main(argv: list[str]) -> None:
    del argv
    shipped = checkpoints.load_rule(FLAGS.optimizer)
    problems = task_list("validation", "idx", FLAGS.data_dir)
    runs = seeds.validation_seeds(FLAGS.num_runs)
    finals: dict[str, dict[str, float]] = {}
    for rate in FLAGS.rates:
        rule = with_rate(shipped, float(rate))
        finals[rate] = {}
        for problem in problems:
            runner = RuleRunner(rule, problem, FLAGS.num_steps, jit_compile=False)
            finals[rate][problem.name] = float(np.mean([runner.run(seed)[0][-1] for seed in runs]))
            print(f"rate {rate}: {problem.name} mean final loss {finals[rate][problem.name]:.5g}", flush=True)
    reference = finals[FLAGS.rates[0]]
    scores = {}
    for rate, per_task in finals.items():
        ratios = {name: np.clip(np.log(per_task[name] / reference[name]), -1.0, 1.0) for name in per_task}
        better = sum(per_task[name] < reference[name] for name in per_task)
        scores[rate] = {"score": float(np.mean(list(ratios.values()))), "tasks_better": int(better), **per_task}
        print(f"rate {rate}: score {scores[rate]['score']:.4f}, lower than rate {FLAGS.rates[0]} on {better}"
              f"/{len(per_task)} tasks", flush=True)
    adopted = [r for r, s in scores.items() if s["score"] < 0 and s["tasks_better"] >= 4]
    choice = min(adopted, key=lambda r: scores[r]["score"]) if adopted else None
    print(f"adopted rate: {choice}")
    print(json.dumps({"optimizer": FLAGS.optimizer, "num_steps": FLAGS.num_steps, "runs": runs,
                      "max_adapted_log_scale": FLAGS.max_adapted_log_scale, "scores": scores, "adopted": choice}))


if __name__ == "__main__":
    app.run(main)
