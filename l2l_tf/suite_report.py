"""The suite's one table and its summary counts against the general rule's targets.

Targets (issue 17): the rule's mean final loss at or below the best tuned baseline's on at
least 80% of the tasks, below Adam's at its default learning rate on every task, and no
diverged run (in the evaluation runs and, if run, the stability runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from l2l_tf.suite import ADAM_DEFAULT, TaskRecord

TARGET_SHARE_AT_OR_BELOW_BEST = 0.8


def compare(record: TaskRecord) -> dict[str, Any]:
    """One task's comparison: best tuned baseline, Adam-default, the rule's ratio to the best."""
    tuned = {name: row for name, row in record.baselines.items() if name != ADAM_DEFAULT}
    best = min(tuned.values(), key=lambda row: row.mean)
    adam_default = record.baselines[ADAM_DEFAULT].mean
    out: dict[str, Any] = {
        "best_baseline": best.name, "best_learning_rate": best.learning_rate, "best_mean": best.mean,
        "adam_default_mean": adam_default,
        "baseline_diverged_runs": {name: row.diverged_runs for name, row in record.baselines.items()},
    }
    if record.rule is not None:
        rule = record.rule.mean
        out.update({
            "rule_mean": rule, "ratio_to_best": rule / best.mean if best.mean > 0 else math.nan,
            "at_or_below_best": rule <= best.mean, "below_adam_default": rule < adam_default,
            "rule_diverged_runs": record.rule.diverged_runs,
        })
    if record.stability is not None:
        out["stability_diverged_runs"] = record.stability.diverged_runs
    return out


def summarize(records: Sequence[TaskRecord]) -> dict[str, Any]:
    """Counts over the tasks against the targets (only meaningful with a rule)."""
    rows = [compare(record) for record in records]
    if not rows or "rule_mean" not in rows[0]:
        return {"tasks": len(rows)}
    at_or_below = sum(row["at_or_below_best"] for row in rows)
    below_adam = sum(row["below_adam_default"] for row in rows)
    diverged = sum(row["rule_diverged_runs"] + row.get("stability_diverged_runs", 0) for row in rows)
    return {
        "tasks": len(rows), "at_or_below_best": at_or_below, "below_adam_default": below_adam,
        "diverged_runs": diverged,
        "targets_met": at_or_below >= TARGET_SHARE_AT_OR_BELOW_BEST * len(rows) and below_adam == len(rows)
        and diverged == 0,
    }


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "inf"


def _task_line(record: TaskRecord, row: dict[str, Any], width: int) -> str:
    best = f"{row['best_baseline']}@{row['best_learning_rate']:g}"
    line = f"{record.task:<{width}}{record.settings['num_steps']:>6}"
    if "rule_mean" in row:
        marks = ("<=" if row["at_or_below_best"] else " >") + (" <A" if row["below_adam_default"] else " >A")
        line += f"{_number(row['rule_mean']):>11}"
    line += f"  {best:<16}{_number(row['best_mean']):>10}{_number(row['adam_default_mean']):>11}"
    if "rule_mean" in row:
        diverged = f"{row['rule_diverged_runs']}/{len(record.rule.final_losses)}"
        if "stability_diverged_runs" in row:
            diverged += f" {row['stability_diverged_runs']}/{len(record.stability.final_losses)}"
        line += f"{_number(row['ratio_to_best']):>8} {marks:<6}{diverged:>10}"
    return line


def format_suite_table(records: Sequence[TaskRecord], rule_name: str | None, stability_steps: str = "") -> str:
    """The suite's table, one line per task, then the summary against the targets."""
    width = max(len("task"), *(len(r.task) for r in records)) + 2
    has_rule = records[0].rule is not None
    header = f"{'task':<{width}}{'steps':>6}" + (f"{rule_name[:10]:>11}" if has_rule else "")
    header += f"  {'best tuned':<16}{'its mean':>10}{'adam@1e-3':>11}"
    if has_rule:
        header += f"{'ratio':>8} {'':<6}{'diverged':>10}"
    lines = [header, "-" * len(header)]
    lines += [_task_line(record, compare(record), width) for record in records]
    summary = summarize(records)
    if has_rule:
        share = summary["at_or_below_best"] / summary["tasks"]
        lines += [
            "",
            (f"{rule_name} at or below the best tuned baseline on {summary['at_or_below_best']}/{summary['tasks']}"
             f" tasks ({share:.0%}; target >= {TARGET_SHARE_AT_OR_BELOW_BEST:.0%})"),
            (f"{rule_name} below Adam at its default learning rate on {summary['below_adam_default']}/{summary['tasks']}"
             " tasks (target: all)"),
            f"diverged runs: {summary['diverged_runs']}{stability_steps} (target: 0)",
            f"targets met: {'yes' if summary['targets_met'] else 'no'}",
        ]
    return "\n".join(lines)
