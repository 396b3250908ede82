"""Prints the benchmark figures README.md quotes, from the JSON the benchmarks wrote.

    python -m benchmarks.doc_numbers

Every line printed appears verbatim in README.md (``tests/test_docs.py`` checks it),
so the docs cannot drift from the measurements: re-run the benchmarks, then this, and
paste what changed.

- cost of a LearnedOptimizer step against Adam: ``benchmarks/results_keras.json``
  (``python -m benchmarks.run --sections=keras --output=benchmarks/results_keras.json``);
- memory of one meta-training unroll with and without ``--recompute_segment``:
  ``benchmarks/results.json`` (``--sections=memory``);
- optimizer state per parameter of each shipped rule: its metadata (``state_size``);
- the ``learning_rate`` sweep: ``experiments/learning_rate_scale/results.json``;
- the shipped general rule against Adam on a 109k-parameter ReLU MLP: ``benchmarks/optimizer_cost.json``
  (``python -m benchmarks.optimizer_cost``); the general rule on the held-out suite:
  ``experiments/general/progress_wide_run250/results.json`` (``train.evaluate_suite``), beside Adam at
  fixed untuned rates (``experiments/general/fixed_adam.json``), and its 10,000-step stability runs
  (``experiments/general/heldout_general_r250_all/results.json``, assembled from the three parts).
"""

from __future__ import annotations

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_NAMES = {
    "mnist mlp": "MNIST MLP 784-20-10, sigmoid",
    "conv net": "conv net (2 x conv 5x5 16 ch, max-pool, FC 32, 10)",
    "wide mlp": "wide MLP 784-256-256-10, ReLU",
}


def _read(name: str) -> dict:
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def cost_table() -> list[str]:
    """Step time and optimizer bytes per parameter, LearnedOptimizer against Adam."""
    lines = [
        "| model | parameters | Adam ms/step | LearnedOptimizer ms/step | ratio | optimizer bytes/param (Adam / learned) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in _read("results_keras.json")["keras"]:
        lines.append(
            f"| {MODEL_NAMES.get(row['model'], row['model'])} | {row['trainable_parameters']:,}"
            f" | {row['seconds_per_step_adam'] * 1e3:.2f} | {row['seconds_per_step_learned'] * 1e3:.2f}"
            f" | {row['ratio_learned_over_adam']:.2f}x | {row['optimizer_bytes_per_parameter_adam']:.0f}"
            f" / {row['optimizer_bytes_per_parameter_learned']:.0f} |"
        )
    return lines


def memory_sentence() -> str:
    """Peak memory of 100- and 200-step MNIST unrolls, storing everything vs recomputing."""
    rows = {(r["unroll_length"], r["recompute_segment"]): r["peak_unroll_mib"] for r in _read("results.json")["unroll_memory"]}
    return (
        f"a 100-step MNIST unroll needs {rows[100, 10]:.0f} MiB instead of {rows[100, 0]:.0f} MiB,"
        f" a 200-step one {rows[200, 10]:.0f} instead of {rows[200, 0]:.0f}"
    )


def state_table() -> list[str]:
    """Each shipped rule: what it was meta-trained on, its horizon, what it is for, and its
    optimizer state per parameter (float32 and bfloat16 storage), from its metadata."""
    from l2l_tf import catalog

    lines = ["| name | meta-trained on | horizon (steps per run) | for | state floats/param | bytes/param: float32 / bfloat16 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for entry in catalog.list_optimizers():
        lines.append(f"| `{entry.name}` | {entry.trained_on} | {entry.runs} | {entry.purpose} | {entry.state_size}"
                     f" | {4 * entry.state_size} / {2 * entry.state_size if entry.bfloat16_state else 'float32 only'} |")
    return lines


def no_xla_sentence() -> str:
    """The wide MLP's step without XLA: one rule call against blocks of 16,384 coordinates."""
    row = next(r for r in _read("results_keras.json")["keras"] if "seconds_per_step_learned_no_xla" in r)
    return (f"{row['seconds_per_step_learned_no_xla'] * 1e3:.0f} ms per step without XLA,"
            f" {row['seconds_per_step_learned_no_xla_chunked'] * 1e3:.0f} ms with `coordinate_block_size=16384`")


def learning_rate_table() -> list[str]:
    """The learning_rate sweep (``experiments/learning_rate_scale``)."""
    with open(os.path.join(os.path.dirname(HERE), "experiments", "learning_rate_scale", "results.json")) as f:
        rows = json.load(f)["rows"]
    lines = ["| optimizer | activation | training loss, epoch 3 (189 steps) | epoch 10 (630 steps) | test accuracy |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['optimizer']} | {r['activation']} | {r['loss_epoch_3']:.4f} | {r['loss_epoch_10']:.4f}"
              f" | {r['test_accuracy']:.4f} |" for r in rows]
    return lines


GENERAL = os.path.join(os.path.dirname(HERE), "experiments", "general")
# The held-out suite of the shipped general rule (its run-250 rule): 200 steps and 2,000-step stability runs
# in one file; the 10,000-step stability runs, made in three parts and assembled by train.evaluate_suite
# (--rule_results) into one more.
GENERAL_SUITE = os.path.join(GENERAL, "progress_wide_run250", "results.json")
GENERAL_LONG_STABILITY = os.path.join(GENERAL, "heldout_general_r250_all", "results.json")
GENERAL_FIXED_ADAM = os.path.join(GENERAL, "fixed_adam.json")
COST_NAMES = {"adam": "Adam (1e-3)", "mlp_rule": "`general`", "lstm_rule": "`mnist_lstm` (the paper's LSTM)"}


def general_cost_table() -> list[str]:
    """Keras step time and optimizer state per parameter of the general rule, Adam and the
    paper's LSTM on the 784-128-64-10 ReLU MLP, ratios measured in the same process."""
    lines = ["| optimizer | Keras `jit_compile` | ms per step | x Adam | state bytes/param |",
             "| --- | --- | --- | --- | --- |"]
    for row in _read("optimizer_cost.json")["rows"]:
        if row["optimizer"] in COST_NAMES:
            lines.append(f"| {COST_NAMES[row['optimizer']]} | {row['jit_compile']} | {row['step_ms']:.1f}"
                         f" | {row['ratio_vs_adam']:.2f}x | {row['state_bytes_per_parameter']:.0f} |")
    return lines


def general_suite_table() -> list[str]:
    """The general rule on the held-out suite: mean final loss against the best tuned baseline (and
    in how many paired runs it is lower), Adam at fixed untuned rates, and diverged runs."""
    with open(GENERAL_SUITE) as f:
        results = json.load(f)
    with open(GENERAL_FIXED_ADAM) as f:
        fixed = json.load(f)["tasks"]
    longest = results["settings"]["stability_factor"] * max(t["settings"]["num_steps"] for t in results["tasks"].values())
    lines = [("| held-out task | `general` | best tuned baseline | general / best | runs lower than best"
              " | Adam 1e-3 | Adam 3e-3 | Adam 1e-2 | diverged: 10 runs, then"
              f" {longest:,}-step runs |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, task in results["tasks"].items():
        c = task["comparison"]
        rule = task["rule"]["final_losses"]
        best = task["baselines"][c["best_baseline"]]["final_losses"]
        lower = sum(r < b for r, b in zip(rule, best))
        lines.append(f"| {name} | {c['rule_mean']:.4g} | {c['best_baseline']}@{c['best_learning_rate']:g}:"
                     f" {c['best_mean']:.4g} | {c['ratio_to_best']:.3f} | {lower}/{len(rule)}"
                     f" | {c['adam_default_mean']:.4g} | {fixed[name]['0.003']['mean']:.4g}"
                     f" | {fixed[name]['0.01']['mean']:.4g} | {c['rule_diverged_runs']} / {c['stability_diverged_runs']} |")
    s = results["summary"]
    below = {rate: sum(results["tasks"][n]["comparison"]["rule_mean"] < fixed[n][rate]["mean"] for n in results["tasks"])
             for rate in ("0.003", "0.01")}
    lines += ["", (f"At or below the best tuned baseline on {s['at_or_below_best']} of {s['tasks']} tasks; below Adam"
                   f" at 1e-3 (its default) on {s['below_adam_default']}, at 3e-3 on {below['0.003']}, at 1e-2 on"
                   f" {below['0.01']}; {s['diverged_runs']} runs diverged.")]
    return lines


def general_long_stability_sentence() -> str:
    """The general rule alone over 50x the suite's horizon on the held-out tasks."""
    with open(GENERAL_LONG_STABILITY) as f:
        results = json.load(f)
    tasks = {name: task for name, task in results["tasks"].items() if task.get("stability")}
    lengths = {task["settings"]["num_steps"] * results["settings"]["stability_factor"] for task in tasks.values()}
    runs = sum(len(task["stability"]["final_losses"]) for task in tasks.values())
    diverged = sum(task["stability"]["diverged_runs"] for task in tasks.values())
    return (f"Alone for {'/'.join(f'{n:,}' for n in sorted(lengths))} steps: {len(tasks)} of the {len(results['tasks'])}"
            f" held-out tasks, {diverged} of {runs} runs diverged")


def main() -> None:
    print("\n".join(cost_table()))
    print()
    print(no_xla_sentence())
    print()
    print(memory_sentence())
    print()
    print("\n".join(state_table()))
    print()
    print("\n".join(learning_rate_table()))
    print()
    print("\n".join(general_cost_table()))
    print()
    print("\n".join(general_suite_table()))
    print()
    print(general_long_stability_sentence())


if __name__ == "__main__":
    main()
