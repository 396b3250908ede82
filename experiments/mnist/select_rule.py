"""Chooses the shipped MNIST rule among candidates on *validation* runs, never evaluation runs.

Criterion: mean loss at step 100 (the evaluation's criterion) over 30 validation runs
(seeds 900000+, see l2l_tf/seeds.py). Usage, from the repo root:
  python experiments/mnist/select_rule.py experiments/mnist/run experiments/mnist/run_linear_lr2e-4
"""

import sys

import numpy as np

from l2l_tf import checkpoints, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems import make_problem

problem = make_problem("mnist", "idx", "../shared/data/mnist-10k")
scores = {}
for path in sys.argv[1:]:
    runner = RuleRunner(checkpoints.load_rule(path), problem, 100)
    finals = [runner.run(seed)[0][-1] for seed in seeds.validation_seeds(30)]
    scores[path] = float(np.mean(finals))
    print(f"{path}: mean validation loss at step 100 over 30 runs = {scores[path]:.4f} (std {np.std(finals):.4f})")
print(f"selected: {min(scores, key=scores.get)}")
