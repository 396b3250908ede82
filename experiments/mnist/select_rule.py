"""Chooses the shipped MNIST rule among candidates on *validation* runs, never evaluation runs.

Criterion: mean loss at step 100 (the evaluation's criterion) over 30 validation runs
(seeds 900000+, see l2l_tf/seeds.py; ``--runs`` for more); the loss at step 200 of the
same runs is printed too. Usage, from the repo root:
  python experiments/mnist/select_rule.py [--runs=30] experiments/mnist/run experiments/mnist/run_linear_lr2e-4
"""

import argparse

import numpy as np

from l2l_tf import checkpoints, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems import make_problem

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=30, help="validation runs per candidate")
parser.add_argument("candidates", nargs="+", help="meta_train --save_path folders")
args = parser.parse_args()
problem = make_problem("mnist", "idx", "../shared/data/mnist-10k")
scores = {}
for path in args.candidates:
    runner = RuleRunner(checkpoints.load_rule(path), problem, 200)
    curves = np.stack([runner.run(seed)[0] for seed in seeds.validation_seeds(args.runs)])
    scores[path] = float(np.mean(curves[:, 100]))
    print(f"{path}: mean validation loss at step 100 over {args.runs} runs = {scores[path]:.4f}"
          f" (std {np.std(curves[:, 100]):.4f}); at step 200 = {np.mean(curves[:, 200]):.4f}")
print(f"selected: {min(scores, key=scores.get)}")
