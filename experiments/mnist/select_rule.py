"""Chooses a shipped rule among candidates on *validation* runs, never evaluation runs.

Criterion: mean loss at step 100 (the evaluation's criterion) over 30 validation runs
(seeds 900000+, see l2l_tf/seeds.py; ``--runs`` for more); the loss at step 200 of the
same runs is printed too (``--criterion=mean_100_200``: the mean of the two, the conv
experiment's criterion). ``--first_run=30 --runs=30`` scores validation runs 30-59 only, to extend a
30-run selection to 60 runs when two candidates are within the noise (the mean over 60 runs is
the mean of the two 30-run means). A rule that reads its run's progress (``--progress_input``) is
scored at step 100 on runs of 100 steps (it is told t / 100) and at step 200 on runs of 200 steps;
the same seeds give the same first 101 batches either way. Usage, from the repo root:
  python experiments/mnist/select_rule.py [--runs=30] experiments/mnist/run experiments/mnist/run_linear_lr2e-4
  python experiments/mnist/select_rule.py --problem=mnist_conv --criterion=mean_100_200 experiments/conv/run_single ...
"""

import argparse

import numpy as np

from l2l_tf import checkpoints, rule_sets, seeds
from l2l_tf.evaluation import RuleRunner
from l2l_tf.problems import make_problem

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=30, help="validation runs per candidate")
parser.add_argument("--first_run", type=int, default=0, help="index of the first validation run (seeds 900000 + it)")
parser.add_argument("--problem", default="mnist", help="problem name (l2l_tf.problems)")
parser.add_argument("--data_source", default="idx", choices=["idx", "tfds"],
                    help="idx: MNIST IDX files in --data_dir; tfds: TFDS (e.g. the cifar problems)")
parser.add_argument("--data_dir", default=None, help="idx: the IDX folder (default ../shared/data/mnist-10k); tfds: TFDS's data_dir")
parser.add_argument("--criterion", default="step_100", choices=["step_100", "mean_100_200"])
parser.add_argument("candidates", nargs="+", help="meta_train --save_path folders")
args = parser.parse_args()
data_dir = args.data_dir or ("../shared/data/mnist-10k" if args.data_source == "idx" else None)
problem = make_problem(args.problem, args.data_source, data_dir)
scores = {}
for path in args.candidates:
    rule = checkpoints.load_rule(path)
    runs = seeds.validation_seeds(args.first_run + args.runs)[args.first_run:]
    runner = RuleRunner(rule, problem, 200, jit_compile=args.problem == "mnist")
    curves = np.stack([runner.run(seed)[0] for seed in runs])
    if rule_sets.reads_progress(rule):  # step 100 as the end of a 100-step run (the 200-step runs' first 101 values replaced)
        short = RuleRunner(rule, problem, 100, jit_compile=args.problem == "mnist")
        curves[:, : 101] = np.stack([short.run(seed)[0] for seed in runs])
    at_100, at_200 = float(np.mean(curves[:, 100])), float(np.mean(curves[:, 200]))
    scores[path] = at_100 if args.criterion == "step_100" else (at_100 + at_200) / 2
    print(f"{path}: mean validation loss at step 100 over runs {args.first_run}-{args.first_run + args.runs - 1} = {at_100:.4f}"
          f" (std {np.std(curves[:, 100]):.4f}); at step 200 = {at_200:.4f}; criterion {args.criterion} = {scores[path]:.4f}",
          flush=True)
print(f"selected: {min(scores, key=scores.get)}")
