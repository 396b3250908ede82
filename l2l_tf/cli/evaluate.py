"""Evaluates a learned optimizer against tuned SGD, NAG, RMSprop and Adam.

Example:
  l2l-evaluate --problem=quadratic --optimizer=saved_optimizers/quadratic_lstm \
      --num_steps=100 --num_seeds=100 --output_dir=runs/quadratic_eval

Each baseline's learning rate is grid-searched on --tuning_seeds runs, disjoint from the
--num_seeds evaluation runs (seeds 0..N-1; see l2l_tf.seeds). Prints a table of the
loss at the last step (mean, std, median over runs), and writes the summaries, settings and
tuning scores (results.json), the per-step curves (curves.npz, one array per optimizer; read
them with l2l_tf.evaluation.read_curves), the table (results.md) and a log-scale plot
(curves.png) to --output_dir (default runs/evaluate/PROBLEM-TIME under the working folder).

Without --optimizer only the baselines run; --baseline_results=RESULTS.json then reuses
them (tuned learning rates, curves, metrics) for a learned rule evaluated later with the
same problem, steps, seeds and learning-rate grid (checked), so that expensive baselines
run once; --rule_results likewise reuses a rule-only run (--baselines= empty), so that the
rule and the baselines can run in parallel and be compared afterwards. --tuning_curves=DIR
tunes the baselines at a shorter horizon from the stored tuning runs of a longer one
(tuning_curves.npz; the first N steps of those runs are N-step runs, see l2l_tf.tuning) and
runs only the evaluation runs (it stores no copy of those tuning runs).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import flags

from l2l_tf import baselines, rule_sets, seeds
from l2l_tf.cli import common
from l2l_tf.evaluation import (
    BaselineRunner,
    RuleRunner,
    check_disjoint,
    evaluate_baseline,
    evaluate_rule,
    format_comparison,
    format_table,
    paired_comparison,
    plot_curves,
    read_results,
    write_curves,
)
from l2l_tf.tuning import (
    pick_learning_rate,
    read_tuning_curves,
    tune,
    write_tuning_curves,
)

common.define_problem_flags()
common.define_evaluation_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("name", "lstm", "Label of the learned optimizer in tables and plots.")
flags.DEFINE_integer("num_steps", 100, "Optimizee steps per run.", lower_bound=1)
flags.DEFINE_integer("num_seeds", 20, "Evaluation runs (seeds 0..N-1).", lower_bound=1)
flags.DEFINE_integer(
    "total_steps", 0,
    "For a rule that reads its run's progress (meta_train --progress_input): the run length it is told,"
    " t / total_steps clipped to 1 (0: --num_steps). E.g. 200 with --num_steps=1000: a 200-step rule"
    " run on past its end.", lower_bound=0,
)
flags.DEFINE_string(
    "output_dir", None,
    "Folder for results.json, curves.npz, results.md and curves.png (default: runs/evaluate/PROBLEM-TIME).",
)
flags.DEFINE_string(
    "baseline_results", None,
    "Reuse the baselines (tuned learning rates, curves, metrics) of an earlier evaluate run's results.json"
    " made with the same problem, --num_steps, seeds and --learning_rates, instead of re-running them.",
)
flags.DEFINE_string(
    "rule_results", None,
    "Likewise for the learned rule: reuse its runs (named --name) from an earlier evaluate run of it"
    " (e.g. with --baselines= empty) with the same settings.",
)
flags.DEFINE_string(
    "tuning_curves", None,
    "--output_dir of an earlier evaluate run of the same problem, tuning seeds and --learning_rates with at"
    " least --num_steps steps: tune the baselines on the first --num_steps steps of its stored tuning runs.",
)
FLAGS = flags.FLAGS


def default_output_dir(problem_name: str) -> str:
    """``runs/evaluate/PROBLEM-YYYYmmdd-HHMMSS`` under the working folder (a new one each run)."""
    return os.path.join("runs", "evaluate", f"{problem_name}-{time.strftime('%Y%m%d-%H%M%S')}")


def check_same_settings(path: str, flag: str, stored: dict, settings: dict, keys: tuple[str, ...]) -> None:
    """Usage error unless the earlier run at ``path`` had this run's ``keys`` settings."""
    for key in keys:
        if stored.get(key) != json.loads(json.dumps(settings[key])):
            common.usage_error(f"--{flag}={path} was run with another {key} ({stored.get(key)}); rerun it or pass the same flags")


def reused_results(path: str, settings: dict, names: list[str], flag: str) -> tuple[dict, list]:
    """Tuning records and results of optimizers ``names`` from an earlier run with the same settings."""
    try:
        payload, results = read_results(path)
    except ValueError as error:
        common.usage_error(f"--{flag}={path}: {error}")
    keys = ("problem", "num_steps", "evaluation_seeds", "tuning_seeds", "learning_rate_grid")
    stored = payload.get("settings", {})
    check_same_settings(path, flag, stored, settings, keys)
    told = {"stored": stored.get("total_steps") or stored.get("num_steps"),
            "now": settings.get("total_steps") or settings["num_steps"]}
    if flag == "rule_results" and told["stored"] != told["now"]:  # what a progress-reading rule was told
        common.usage_error(f"--{flag}={path} was run with another total_steps ({told['stored']}); rerun it or pass"
                           " the same --total_steps")
    tuning = payload.get("tuning", {})
    missing = [name for name in names if name not in results or (name in baselines.BASELINES and name not in tuning)]
    if missing:
        common.usage_error(f"--{flag}={path} has no results for {missing}")
    print(f"{names} (their runs{' and tuning' if tuning else ''}) reused from {path}", flush=True)
    return {name: tuning[name] for name in names if name in tuning}, [results[name] for name in names]


def stored_tuning_curves(path: str, settings: dict, num_tuning_runs: int) -> dict[str, dict[float, np.ndarray]]:
    """The tuning curves of ``--tuning_curves=path``, checked against this run's settings."""
    if not FLAGS.baselines:
        common.usage_error("--tuning_curves tunes baselines, but --baselines is empty; drop one of them")
    try:
        payload, _ = read_results(os.path.join(path, "results.json"))
        curves = read_tuning_curves(path)
    except ValueError as error:
        common.usage_error(f"--tuning_curves={path}: {error}")
    stored = payload.get("settings", {})
    check_same_settings(path, "tuning_curves", stored, settings, ("problem", "tuning_seeds", "learning_rate_grid"))
    if stored.get("num_steps", 0) < FLAGS.num_steps:
        common.usage_error(f"--tuning_curves={path} has {stored.get('num_steps')}-step runs; --num_steps must not exceed that")
    grid = {float(lr) for lr in settings["learning_rate_grid"]}
    for name in FLAGS.baselines:
        runs = {lr: c.shape for lr, c in curves.get(name, {}).items()}
        if set(runs) != grid or any(shape[0] != num_tuning_runs or shape[1] <= FLAGS.num_steps for shape in runs.values()):
            common.usage_error(f"--tuning_curves={path} has no complete tuning runs of {name} for these settings; rerun it")
    print(f"{FLAGS.baselines} tuned on the first {FLAGS.num_steps} steps of the tuning runs in {path}", flush=True)
    return curves


def run_baselines(
    problem, eval_seeds: list[int], tuning: list[int], learning_rates: list[float], stored: dict | None
) -> tuple[dict, list, list]:
    """Tunes each of ``--baselines`` on ``tuning`` runs (or on ``stored`` tuning curves) and
    evaluates it on ``eval_seeds``: the tuning record, the ``TuningResult``s and the results."""
    tuned_all, results = [], []
    for name in FLAGS.baselines:
        runner = BaselineRunner(name, problem, FLAGS.num_steps, FLAGS.jit_compile)
        tuned = pick_learning_rate(name, stored[name], FLAGS.num_steps) if stored else tune(runner, tuning, learning_rates)
        tuned_all.append(tuned)
        print(f"tuned {name}: learning rate {tuned.best_learning_rate:g}", flush=True)
        results.append(evaluate_baseline(runner, eval_seeds, tuned.best_learning_rate))
    record = {t.name: {"best_learning_rate": t.best_learning_rate, "scores": t.scores} for t in tuned_all}
    if stored:
        record = {name: {**entry, "curves_from": FLAGS.tuning_curves} for name, entry in record.items()}
    return record, tuned_all, results


def parse_learning_rates() -> list[float]:
    learning_rates = common.parse_baselines_and_rates(FLAGS.baselines, FLAGS.learning_rates)
    if not FLAGS.optimizer and not FLAGS.baselines:
        common.usage_error("nothing to evaluate: pass --optimizer and/or --baselines")
    return learning_rates


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    learning_rates = parse_learning_rates()
    output_dir = FLAGS.output_dir or default_output_dir("custom" if FLAGS.problem_fn else FLAGS.problem)
    common.require_writable_dir(output_dir, "output_dir")
    rule = common.load_learned_or_exit(FLAGS.optimizer) if FLAGS.optimizer else None
    if FLAGS.total_steps and not (rule is not None and rule_sets.reads_progress(rule)):
        common.usage_error("--total_steps is for a rule that reads its run's progress (meta_train --progress_input);"
                           " this --optimizer does not: leave it out")
    problem = common.build_problem()
    eval_seeds = seeds.evaluation_seeds(FLAGS.num_seeds)
    tuning = seeds.tuning_seeds(FLAGS.tuning_seeds)
    check_disjoint(tuning, eval_seeds)
    start = time.time()
    settings = {
        "problem": problem.describe(),
        "optimizer": FLAGS.optimizer,
        "num_steps": FLAGS.num_steps,
        "evaluation_seeds": [eval_seeds[0], eval_seeds[-1]],
        "tuning_seeds": [tuning[0], tuning[-1]],
        "learning_rate_grid": learning_rates,
        "command": common.command_line(),
    }
    if FLAGS.total_steps:
        settings["total_steps"] = FLAGS.total_steps
    if FLAGS.tuning_curves and FLAGS.baseline_results:
        common.usage_error("--tuning_curves and --baseline_results both say where the baselines come from; pass one")
    stored = stored_tuning_curves(FLAGS.tuning_curves, settings, len(tuning)) if FLAGS.tuning_curves else None
    results = []
    if rule is not None and FLAGS.rule_results:
        results += reused_results(FLAGS.rule_results, settings, [FLAGS.name], "rule_results")[1]
    elif rule is not None:
        runner = RuleRunner(rule, problem, FLAGS.num_steps, FLAGS.jit_compile, FLAGS.total_steps or None)
        results.append(evaluate_rule(FLAGS.name, runner, eval_seeds))
    if FLAGS.baseline_results:
        tuning_record, baseline_results = reused_results(FLAGS.baseline_results, settings, FLAGS.baselines, "baseline_results")
        tuned_all = []
    else:
        tuning_record, tuned_all, baseline_results = run_baselines(problem, eval_seeds, tuning, learning_rates, stored)
    results += baseline_results
    table = format_table(results, FLAGS.num_steps)
    comparison = paired_comparison(results[0], results[1:]) if rule is not None else []
    if comparison:
        table += "\n\n" + format_comparison(results[0].name, comparison)
    header = (
        f"{problem.name}: loss at step {FLAGS.num_steps} over {FLAGS.num_seeds} evaluation runs"
        f" (x{problem.num_functions} functions each)"
        + (f"; baselines tuned on {FLAGS.tuning_seeds} other runs" if FLAGS.baselines else "")
    )
    print(header + "\n" + table, flush=True)
    settings["wall_seconds"] = time.time() - start
    extras = {"settings": settings, "tuning": tuning_record, "comparison": comparison}
    write_outputs(output_dir, results, extras, f"{header}\n\n```\n{table}\n```\n", f"{problem.name}, {FLAGS.num_seeds} runs")
    write_tuning_curves(output_dir, [] if stored else tuned_all)  # no copies of reused tuning runs


def write_outputs(output_dir: str, results: list, extras: dict, markdown: str, title: str) -> None:
    """results.json (+ curves.npz), results.md and curves.png in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    write_curves(results, os.path.join(output_dir, "results.json"), extras)
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(markdown)
    plot_curves(results, os.path.join(output_dir, "curves.png"), title)
    print(f"wrote {output_dir}/results.json, curves.npz, results.md, curves.png")


def main() -> None:
    """The ``l2l-evaluate`` console script (``python -m train.evaluate`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
