"""Prints the stability table (markdown) of ``train.evaluate`` output folders given as
results.json paths: per rule, runs, steps, diverged runs (``l2l_tf.stability``), mean loss
at step 0, at the meta-training horizon (the rule's exported metadata) and at the last step."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.getcwd())
from l2l_tf.catalog import METADATA_FILE
from l2l_tf.evaluation import read_curves
from l2l_tf.stability import diverged_runs


def main(paths: list[str]) -> None:
    print("| rule | problem | runs | steps | diverged runs | mean loss step 0 | at the horizon | at the last step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in paths:
        with open(path) as f:
            settings = json.load(f)["settings"]
        metadata = os.path.join(settings["optimizer"], METADATA_FILE)
        horizon = None  # a rule that is not an exported folder: its horizon is not recorded
        if os.path.isfile(metadata):
            with open(metadata) as f:
                horizon = int(json.load(f)["training"]["num_steps"])
        for name, curves in read_curves(os.path.dirname(path)).items():
            steps = curves.shape[1] - 1
            at_horizon = f"{np.mean(curves[:, horizon]):.4g}" if horizon is not None and horizon <= steps else "-"
            print(f"| {name} | {settings['problem']['name']} | {curves.shape[0]} | {steps} | {int(diverged_runs(curves).sum())}"
                  f" | {np.mean(curves[:, 0]):.4g} | {at_horizon} | {np.mean(curves[:, -1]):.4g} |")


if __name__ == "__main__":
    main(sys.argv[1:])
