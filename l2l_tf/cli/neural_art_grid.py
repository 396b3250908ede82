"""Picture grid of a neural-art evaluation: content, style and each optimizer's image after N steps.

Example:
  python -m train.neural_art_grid --problem=neural_art --optimizer=saved_optimizers/neural_art_lstm \
      --evaluation=experiments/neural_art/eval_a/results.json --seeds=0,1,2,3 --output=grid.png

The baselines run at the learning rates tuned by that evaluation (its results.json); the
learned rule as exported. Seeds are evaluation seeds (held-out photos).
"""

from __future__ import annotations

import json
import os

from absl import flags

from l2l_tf import export, picture_grid
from l2l_tf.cli import common
from l2l_tf.problems.neural_art import NEURAL_ART_VARIANTS

common.define_problem_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("optimizer", None, "Exported rule (SavedModel folder) or meta_train --save_path.")
flags.DEFINE_string("name", "lstm", "Label of the learned optimizer.")
flags.DEFINE_string("evaluation", None, "results.json of a train.evaluate run of the same --problem (tuned learning rates).")
flags.DEFINE_list("seeds", ["0", "1", "2", "3"], "Evaluation seeds, one grid row each.")
flags.DEFINE_integer("num_steps", 128, "Optimization steps.", lower_bound=1)
flags.DEFINE_string("output", None, "PNG to write.")
flags.DEFINE_boolean("jit_compile", True, "Compile trajectories with XLA.")
flags.mark_flags_as_required(["optimizer", "evaluation", "output"])
FLAGS = flags.FLAGS


def tuned_learning_rates(path: str, problem_name: str) -> dict[str, float]:
    """Baseline name -> tuned learning rate from an evaluation's results.json."""
    try:
        with open(path) as f:
            results = json.load(f)
        evaluated = results["settings"]["problem"]["name"]
        rates = {name: float(record["best_learning_rate"]) for name, record in results["tuning"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        common.usage_error(f"--evaluation={path}: not a readable train.evaluate results.json ({error})")
    if evaluated != problem_name:
        common.usage_error(f"--evaluation={path} evaluated {evaluated!r}, not --problem={problem_name}")
    return rates


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    if FLAGS.problem not in NEURAL_ART_VARIANTS:
        common.usage_error(f"--problem must be a neural-art problem {sorted(NEURAL_ART_VARIANTS)}")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        common.usage_error(f"--seeds must be integers, got {FLAGS.seeds}")
    rates = tuned_learning_rates(FLAGS.evaluation, FLAGS.problem)
    try:
        rule = common.load_learned(FLAGS.optimizer)
    except (export.RuleLoadError, FileNotFoundError, ValueError) as error:
        common.usage_error(str(error))
    problem = common.build_problem()
    results = picture_grid.final_images(problem, rule, rates, seeds, FLAGS.num_steps, FLAGS.name, FLAGS.jit_compile)
    labels = {name: f"{name} lr={rate:g}" for name, rate in rates.items()}
    title = f"{problem.name}: {problem.size}x{problem.size}, style {problem.style_name}, after {FLAGS.num_steps} steps"
    picture_grid.plot_grid(problem, seeds, results, FLAGS.output, title, labels)
    for name, row in results.items():
        print(f"{name}: loss at step {FLAGS.num_steps} " + " ".join(f"{loss:.4g}" for _, loss in row), flush=True)
    print(f"wrote {os.path.abspath(FLAGS.output)}", flush=True)


def main() -> None:
    """The ``l2l-neural-art-grid`` console script (``python -m train.neural_art_grid`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
