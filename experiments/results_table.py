"""Prints the README results table from the evaluate outputs under experiments/.

Usage (repo root, l2l_tf installed as README.md says): python experiments/results_table.py
"""

import json
import math
import os
import pathlib

import numpy as np

from l2l_tf.evaluation import read_curves

ROWS = [
    ("Quadratics 10-d, loss at step 100", "experiments/quadratic/eval100",
     "LSTM ~0.04 lowest; Adam/RMSprop ~0.05-0.06, NAG ~0.08, SGD ~0.2 (public-code scale)"),
    ("MNIST MLP 20 sigmoid, step 100", "experiments/mnist/eval_mnist_100", "LSTM ~0.25-0.3; Adam/RMSprop/NAG ~0.35-0.4; SGD ~0.5"),
    ("MNIST, 200 steps (rule meta-trained on 100, then also on 200-step runs)", "experiments/mnist/eval_mnist_200", "LSTM (trained on 100) stays lowest"),
    ("MNIST, 40 hidden units, step 100", "experiments/mnist/eval_mnist_40_100", "LSTM well ahead"),
    ("MNIST, 2 hidden layers, step 100", "experiments/mnist/eval_mnist_2layer_100", "LSTM well ahead"),
    ("MNIST, ReLU, step 100", "experiments/mnist/eval_mnist_relu_100", "LSTM fails"),
    # The extension beyond the paper: the same LSTM also fed running gradient averages.
    ("+ momentum features: MNIST, step 100", "experiments/mnist/eval_momentum_mnist_100", "(not in the paper)"),
    ("+ momentum features: MNIST, 200 steps", "experiments/mnist/eval_momentum_mnist_200", "(not in the paper)"),
    ("+ momentum features: 40 hidden units", "experiments/mnist/eval_momentum_mnist_40_100", "(not in the paper)"),
    ("+ momentum features: 2 hidden layers", "experiments/mnist/eval_momentum_mnist_2layer_100", "(not in the paper)"),
    ("+ momentum features: ReLU", "experiments/mnist/eval_momentum_mnist_relu_100", "(not in the paper)"),
    # Neural art (issue 16): rule with momentum features, meta-trained on 64x64 crops, one style.
    ("Neural art (a): held-out photos, 64x64, training style, step 128", "experiments/neural_art/eval_a",
     "LSTM below every baseline"),
    ("Neural art (c): held-out style, 64x64, step 128", "experiments/neural_art/eval_c", "LSTM below every baseline"),
    ("Neural art (b): 128x128, step 128", "experiments/neural_art/eval_b", "LSTM below every baseline"),
    # Conv nets (issue 15): the paper's CIFAR-10 net on the digits; separate conv/FC LSTMs (conv_lstm).
    ("Conv net, 10-class digits, step 100", "experiments/conv/eval_mnist_conv_100", "(CIFAR-10) LSTM lowest throughout"),
    ("Conv net, 10-class digits, step 200", "experiments/conv/eval_mnist_conv_200", "(CIFAR-10) LSTM lowest throughout"),
    ("Conv net, transfer to 5 classes, step 200", "experiments/conv/eval_mnist_conv5_200", "(CIFAR-5) LSTM lowest"),
    ("Conv net, transfer to 2 classes, step 200", "experiments/conv/eval_mnist_conv2_200", "(CIFAR-2) LSTM lowest"),
]
BASELINES = ("sgd", "nag", "rmsprop", "adam")


def table_lines() -> list[str]:
    """The table's markdown lines, one row per evaluation folder that exists."""
    lines = [
        ("| experiment | paper (approx.) | l2l_tf LSTM | best tuned baseline | LSTM / best | Adam (tuned) |"
         " mean loss over all steps: LSTM / best | runs |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for title, directory, paper in ROWS:
        path = os.path.join(directory, "results.json")
        if not os.path.isfile(path):
            continue
        results = json.loads(pathlib.Path(path).read_text())
        summary = {s["optimizer"]: s for s in results["summary"]}
        mean_over_steps = {name: float(np.mean(c, dtype=np.float64)) for name, c in read_curves(directory).items()}
        name = next(n for n in summary if n not in BASELINES)  # the learned rule (--name)
        learned = summary.pop(name)
        # A baseline whose tuned rate diverged on some evaluation runs has a non-finite mean: not "best".
        best = min((s for s in summary.values() if math.isfinite(s["final_loss_mean"])), key=lambda s: s["final_loss_mean"])
        adam = summary["adam"]

        def cell(s):
            text = f"{s['final_loss_mean']:.3g} ± {s['final_loss_std']:.2g}"
            if "test_accuracy_mean" in s:
                text += f" (test acc {s['test_accuracy_mean']:.3f})"
            return text

        lines.append(
            f"| {title} | {paper} | {cell(learned)} | {best['optimizer']} lr={best['learning_rate']:g}: {cell(best)}"
            f" | {learned['final_loss_mean'] / best['final_loss_mean']:.2f} | lr={adam['learning_rate']:g}: {cell(adam)}"
            f" | {mean_over_steps[name]:.3g} / {mean_over_steps[best['optimizer']]:.3g} | {learned['runs']} |"
        )
    return lines


def main() -> None:
    print("\n".join(table_lines()))


if __name__ == "__main__":
    main()
