"""The conv experiment's figure and variant comparison, from train.evaluate outputs.

  python experiments/conv/compare.py --out=experiments/conv

1. ``figure6.png``: the paper's Figure 6 layout, one panel per task (10-, 5- and 2-class digits),
   mean loss (log scale) over the 30 evaluation runs vs step, 200 steps, for the shipped rule
   (``eval_TASK_200``) and the four tuned baselines.
2. ``variants.md`` / ``variants.json``: the rule variants (one LSTM, separate conv/FC LSTMs,
   LSTM+GAC; the rule-only evaluations named in ``VARIANTS``) against the single LSTM, paired over
   the same 30 evaluation runs, at steps 100 and 200 (the loss at step 100 of a 200-step run is
   the final loss of a 100-step run: same start, same batches, a rule that does not know the horizon).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from l2l_tf.evaluation import OptimizerResult, paired_comparison, read_curves

TASKS = (("mnist_conv", "10 classes (digits 0-9)"), ("mnist_conv5", "5 classes (0-4)"), ("mnist_conv2", "2 classes (0, 1)"))
# rule-only train.evaluate outputs on mnist_conv, 200 steps: the shipped single LSTM and the variants
VARIANTS = {name: f"variant_{name}_200" for name in ("single", "conv_fc", "gac")}


def figure6(out: str) -> str | None:
    """``figure6.png`` from the shipped rule's combined evaluations; None until all three exist."""
    if not all(os.path.isdir(os.path.join(out, f"eval_{task}_200")) for task, _ in TASKS):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(13, 3.8))
    for ax, (task, title) in zip(axes, TASKS):
        curves = read_curves(os.path.join(out, f"eval_{task}_200"))
        for name, values in curves.items():
            ax.plot(np.mean(values, axis=0), label=name, lw=2.0 if name == "conv_lstm" else 1.2)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].set_ylabel("mean loss over the evaluation runs")
    axes[-1].legend()
    fig.tight_layout()
    path = os.path.join(out, "figure6.png")
    fig.savefig(path, dpi=110)
    return path


def variants(out: str) -> tuple[str, list[dict]]:
    """The markdown table and JSON rows of every evaluated variant against the single LSTM."""
    results = {}
    for name, folder in VARIANTS.items():
        directory = os.path.join(out, folder)
        if os.path.isdir(directory):
            results[name] = next(iter(read_curves(directory).values()))
        else:
            print(f"{name}: not evaluated yet ({directory} missing); left out")
    if "single" not in results:
        raise SystemExit(f"the single LSTM's evaluation {VARIANTS['single']} is missing; run it first")
    rows, lines = [], ["| variant | step | mean loss | vs single: ratio | difference ± s.e. | runs lower |", "| --- | --- | --- | --- | --- | --- |"]
    for step in (100, 200):
        cut = {name: OptimizerResult(name, curves[:, : step + 1], []) for name, curves in results.items()}
        for name, result in cut.items():
            mean = float(np.mean(result.curves[:, -1]))
            if name == "single":
                lines.append(f"| single | {step} | {mean:.4g} | - | - | - |")
                rows.append({"variant": name, "step": step, "mean_loss": mean})
                continue
            comparison = paired_comparison(result, [cut["single"]])[0]
            rows.append({"variant": name, "step": step, "mean_loss": mean, **comparison})
            lines.append(
                f"| {name} | {step} | {mean:.4g} | {comparison['ratio_of_means']:.3f} | {comparison['mean_difference']:+.4f}"
                f" ± {comparison['difference_standard_error']:.4f} | {comparison['share_of_runs_lower']:.0%} |"
            )
    return "\n".join(lines) + "\n", rows


def main() -> None:
    """Writes the figure (when its inputs exist) and the variant table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/conv")
    args = parser.parse_args()
    figure = figure6(args.out)
    print(f"wrote {figure}" if figure else "figure6.png: waiting for eval_TASK_200 of all three tasks")
    table, rows = variants(args.out)
    with open(os.path.join(args.out, "variants.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(table)


if __name__ == "__main__":
    main()
