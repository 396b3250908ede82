"""Evaluates a learned optimizer against tuned baselines on every task of a suite.

Example (the held-out suite, offline digits):
  l2l-evaluate-suite --suite=heldout --optimizer=saved_optimizers/mnist_lstm \
      --data_source=idx --data_dir=../shared/data/mnist-10k \
      --baseline_results=experiments/general/heldout_baselines/results.json

Per task (``l2l_tf.problems.tasks``; --suite takes a list, a task, or several joined by
commas): SGD, NAG, RMSprop and Adam have their learning rates tuned on --tuning_seeds runs
(disjoint from the --num_runs evaluation runs), then run on the evaluation runs with Adam at
its default learning rate (adam_default); the rule runs on the same runs. Prints ONE table
(rule mean final loss, best tuned baseline and its mean, Adam-default mean, ratio, diverged
runs) and the counts against the targets; writes results.json and results.md to
--output_dir (after every task, so an interrupted run keeps what it finished).

--baseline_results reuses the baselines of an earlier results.json made with the same
settings per task (checked), so a new rule costs only its own runs (tasks it lacks have their
baselines run: passing a run's own results.json and --output_dir resumes it); --rule_results likewise
reuses a rule's runs from earlier (e.g. partial, per-task) runs of it, so that one table can
be assembled from runs made in pieces. --stability_factor=K
also runs the rule alone for K times each horizon and counts diverged runs.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from l2l_tf import seeds, suite
from l2l_tf.cli import common
from l2l_tf.problems.data import DataUnavailableError
from l2l_tf.problems.tasks import Task, tasks_named
from l2l_tf.suite_report import compare, format_suite_table, summarize

common.define_data_flags()
common.define_evaluation_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("suite", "heldout", "Task list (training, validation, heldout), task name, or several joined by commas.")
flags.DEFINE_string("name", "rule", "Label of the learned optimizer in the table.")
flags.DEFINE_integer("num_runs", 10, "Evaluation runs per task (seeds 0..N-1).", lower_bound=1)
flags.DEFINE_integer("num_steps", 0, "Optimizee steps per run; 0: each task's own horizon.", lower_bound=0)
flags.DEFINE_integer("stability_factor", 0, "If > 0: also run the rule alone for this many horizons per run"
                     " and count diverged runs.", lower_bound=0)
flags.DEFINE_string("output_dir", None, "Folder for results.json and results.md (default: runs/evaluate_suite/SUITE-TIME).")
flags.DEFINE_string("baseline_results", None, "Reuse the baselines of an earlier results.json of this program run"
                    " with the same settings per task, instead of re-running them.")
flags.DEFINE_list("rule_results", [], "Reuse the rule's runs per task from earlier results.json files of this program"
                  " (same --optimizer, settings and --stability_factor); tasks found in none are run.")
FLAGS = flags.FLAGS

LEGEND = ("'<=': rule at or below the best tuned baseline; '<A': below adam@1e-3; diverged: evaluation runs"
          " [then stability runs]; a run diverges if a loss is non-finite or its mean over the last tenth of"
          " its steps exceeds its step-0 loss")


def resolve_tasks() -> list[Task]:
    try:
        return list(tasks_named(FLAGS.suite))
    except ValueError as error:
        common.usage_error(f"--suite={FLAGS.suite}: {error}")
        raise  # unreachable


def build_problems(tasks: list[Task]) -> list:
    try:
        return [task.build(FLAGS.data_source, FLAGS.data_dir) for task in tasks]
    except (DataUnavailableError, FileNotFoundError, ValueError) as error:
        common.usage_error(f"--data_source={FLAGS.data_source} --data_dir={FLAGS.data_dir}: {error}"
                           " (offline: --data_source=idx --data_dir=../shared/data/mnist-10k)")
        raise  # unreachable


# What the rule's runs share with reused baselines; the baselines' own tuning settings come from the file.
REUSE_KEYS = ("problem", "num_steps", "evaluation_seeds")


def read_results(path: str, flag: str) -> tuple[dict, dict[str, suite.TaskRecord]]:
    """The header settings and task records of a results.json of this program."""
    try:
        with open(path) as f:
            payload = json.load(f)
        records = {name: suite.TaskRecord.from_json(name, values) for name, values in payload["tasks"].items()}
        return dict(payload["settings"]), records
    except (OSError, ValueError, KeyError, TypeError) as error:
        common.usage_error(f"--{flag}={path}: not a results.json of l2l-evaluate-suite ({error})")
        raise  # unreachable


def mismatch(have: dict, wanted: dict) -> str | None:
    """The first of ``REUSE_KEYS`` in which stored task settings differ from this run's."""
    return next((key for key in REUSE_KEYS if have.get(key) != wanted[key]), None)


def reused_records(tasks: list[Task], settings: list[dict]) -> dict[str, suite.TaskRecord]:
    """The baseline records of --baseline_results, checked against ``settings``; tasks it lacks
    have their baselines run (so an interrupted run resumes with its own output as input)."""
    path = FLAGS.baseline_results
    records = read_results(path, "baseline_results")[1]
    missing = [task.name for task in tasks if task.name not in records]
    if missing:
        print(f"--baseline_results={path} has no baselines for {missing}: running them", flush=True)
    for task, wanted in zip(tasks, settings):
        if task.name not in records:
            continue
        key = mismatch(records[task.name].settings, wanted)
        if key:
            common.usage_error(f"--baseline_results={path}: task {task.name} was run with another {key}"
                               f" ({records[task.name].settings.get(key)}); rerun its baselines or pass the same flags")
    return records


def reused_rule_runs(tasks: list[Task], settings: list[dict]) -> dict[str, tuple[suite.TaskRecord, str]]:
    """Per task, the first of --rule_results with this rule's runs on it under the same settings and
    --stability_factor (tasks found in none run as usual)."""
    if FLAGS.rule_results and not FLAGS.optimizer:
        common.usage_error("--rule_results reuses a rule's runs: pass that rule as --optimizer too")
    found: dict[str, tuple[suite.TaskRecord, str]] = {}
    for path in FLAGS.rule_results:
        header, records = read_results(path, "rule_results")
        if header.get("optimizer") != FLAGS.optimizer:
            common.usage_error(f"--rule_results={path} holds runs of --optimizer={header.get('optimizer')},"
                               f" not {FLAGS.optimizer}")
        for task, wanted in zip(tasks, settings):
            record = records.get(task.name)
            if (task.name not in found and record is not None and record.rule is not None
                    and mismatch(record.settings, wanted) is None
                    and header.get("stability_factor") == FLAGS.stability_factor):
                found[task.name] = (record, path)
    return found


def evaluate_task(task: Task, problem, settings: dict, reused: suite.TaskRecord | None, rule,
                  rule_runs: tuple[suite.TaskRecord, str] | None) -> suite.TaskRecord:
    """One task's record: baselines (run or reused), the rule and its stability runs (run or reused)."""
    if reused is not None:
        baselines, tuning, settings = reused.baselines, reused.tuning, reused.settings
        print(f"  {task.name}: baselines reused from {FLAGS.baseline_results}", flush=True)
    else:
        baselines, tuning = suite.run_baselines(problem, settings, FLAGS.jit_compile)
    record = suite.TaskRecord(task.name, settings, baselines, tuning)
    if rule_runs is not None:
        record.rule, record.stability = rule_runs[0].rule, rule_runs[0].stability
        print(f"  {task.name}: {FLAGS.name}'s runs reused from {rule_runs[1]}", flush=True)
    elif rule is not None:
        steps, runs = settings["num_steps"], settings["evaluation_seeds"]
        record.rule = suite.run_rule(FLAGS.name, rule, problem, steps, runs, FLAGS.jit_compile)
        if FLAGS.stability_factor:
            record.stability = suite.run_stability(FLAGS.name, rule, problem, steps, FLAGS.stability_factor, runs,
                                                   FLAGS.jit_compile)
    return record


def write(output_dir: str, records: list[suite.TaskRecord], header: dict, table: str | None) -> None:
    payload = {
        "settings": header,
        "tasks": {record.task: {**record.to_json(), "comparison": compare(record)} for record in records},
        "summary": summarize(records),
    }
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(payload, f, indent=1)
    if table is not None:
        with open(os.path.join(output_dir, "results.md"), "w") as f:
            f.write(f"`{header['command']}`\n\n```\n{table}\n```\n\n{LEGEND}.\n")


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    learning_rates = common.parse_baselines_and_rates(FLAGS.baselines, FLAGS.learning_rates)
    if not FLAGS.baselines:
        common.usage_error("--baselines must name at least one baseline to tune (adam_default is added to them)")
    tasks = resolve_tasks()
    output_dir = FLAGS.output_dir or os.path.join("runs", "evaluate_suite", f"{FLAGS.suite.replace(',', '+')}-{time.strftime('%Y%m%d-%H%M%S')}")
    common.require_writable_dir(output_dir, "output_dir")
    rule = common.load_learned_or_exit(FLAGS.optimizer) if FLAGS.optimizer else None
    problems = build_problems(tasks)
    evaluation, tuning = seeds.evaluation_seeds(FLAGS.num_runs), seeds.tuning_seeds(FLAGS.tuning_seeds)
    settings = [suite.task_settings(problem, FLAGS.num_steps or task.steps, evaluation, tuning, learning_rates,
                                    FLAGS.baselines) for task, problem in zip(tasks, problems)]
    reused = reused_records(tasks, settings) if FLAGS.baseline_results else {}
    rule_runs = reused_rule_runs(tasks, settings)
    header = {"suite": FLAGS.suite, "optimizer": FLAGS.optimizer, "name": FLAGS.name, "num_runs": FLAGS.num_runs,
              "stability_factor": FLAGS.stability_factor, "data_source": FLAGS.data_source,
              "baseline_results": FLAGS.baseline_results, "rule_results": FLAGS.rule_results,
              "command": common.command_line()}
    records, start = [], time.time()
    for index, (task, problem, task_settings) in enumerate(zip(tasks, problems, settings)):
        print(f"task {index + 1}/{len(tasks)}: {task.name} ({problem.num_coordinates} parameters,"
              f" {task_settings['num_steps']} steps)", flush=True)
        records.append(evaluate_task(task, problem, task_settings, reused.get(task.name), rule, rule_runs.get(task.name)))
        write(output_dir, records, {**header, "wall_seconds": time.time() - start}, None)
    stability = f" ({FLAGS.stability_factor}x-horizon stability runs included)" if FLAGS.stability_factor else ""
    table = format_suite_table(records, FLAGS.name if rule is not None else None, stability)
    tuning_runs = len(records[0].settings["tuning_seeds"])
    print(f"\nsuite {FLAGS.suite}: mean final loss over {FLAGS.num_runs} runs per task; baselines tuned on"
          f" {tuning_runs} other runs per learning rate\n{table}\n{LEGEND}", flush=True)
    write(output_dir, records, {**header, "wall_seconds": time.time() - start}, table)
    print(f"wrote {output_dir}/results.json, results.md")


def main() -> None:
    """The ``l2l-evaluate-suite`` console script (``python -m train.evaluate_suite`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
