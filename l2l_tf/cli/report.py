"""Writes report.md (+ plots) into a shipped optimizer folder from train.evaluate outputs.

Example:
  l2l-report --optimizer=saved_optimizers/quadratic_lstm \
      --evaluation="quadratic, 100 steps=experiments/quadratic/eval100"
"""

from __future__ import annotations

import os
import shutil

from absl import flags

from l2l_tf import catalog, export, rule_families
from l2l_tf.cli import common
from l2l_tf.json_files import JsonFileError, read_json

flags.DEFINE_string("optimizer", None, "Exported rule folder to write report.md into.")
common.define_deprecated_alias("optimizer_dir", "optimizer")
flags.DEFINE_multi_string("evaluation", [], "TITLE=DIR (repeatable); DIR written by train.evaluate or train.evaluate_suite --output_dir.")
flags.DEFINE_multi_string(
    "image", [], "TITLE=PNG (repeatable): a picture (e.g. a train.neural_art_grid grid) copied into the folder and shown.")
flags.DEFINE_string("notes", None, "A markdown file appended after the header (summary, caveats).")
flags.mark_flag_as_required("optimizer")
FLAGS = flags.FLAGS


def section(title: str, directory: str, image_name: str) -> tuple[str, bool]:
    """The report section of a train.evaluate or train.evaluate_suite --output_dir, and
    whether it shows ``image_name`` (the curves.png of a train.evaluate folder; a suite has none)."""
    try:
        results = read_json(os.path.join(directory, "results.json"), "evaluation results", max_bytes=64 << 20)
        with open(os.path.join(directory, "results.md")) as f:
            table = f.read(1 << 20).strip()
        command = results["settings"]["command"]
        tuned = ", ".join(f"{k} {v['best_learning_rate']:g}" for k, v in results.get("tuning", {}).items())
    except (JsonFileError, OSError, KeyError, TypeError, AttributeError) as error:
        common.usage_error(f"--evaluation {directory!r}: not a train.evaluate(_suite) --output_dir ({error})")
    has_image = os.path.isfile(os.path.join(directory, "curves.png"))
    facts = (f"Tuned learning rates: {tuned}. " if tuned else "") + (
        "" if command in table else f"Command: `{command}`")  # a suite's table has the command
    return (
        f"## {title}\n\n{table}\n\n"
        + (f"{facts.strip()}\n" if facts else "")
        + (f"\n![{title}]({image_name})\n" if has_image else "")
    ), has_image


def _adapted_step(rule: dict) -> str:
    """The mlp rule's adapted per-tensor step factor, if it has one."""
    if not rule.get("step_adaptation_rate"):
        return ""
    return (f", times a per-tensor step factor within e^+-{rule['max_adapted_log_scale']:g} adapted at rate"
            f" {rule['step_adaptation_rate']:g} to the agreement of successive steps")


def _describe_rule(rule: dict) -> str:
    if rule.get("type") == rule_families.RULE_TYPES["mlp"]:
        return (f"a per-parameter MLP rule ({rule['num_hidden_layers']}x{rule['hidden_size']} units) scaling Adam's"
                f" direction by a learned factor within e^+-{rule['max_log_scale']:g} of a {rule['base_step']:g} step,"
                f" plus a learned correction of at most {rule['correction_scale'] * rule['base_step']:g}"
                f" (gradient averages at {rule['momentum_decays']})" + _adapted_step(rule))
    if rule.get("type", "coordinatewise_lstm") != "coordinatewise_lstm":
        return f"a {rule['type']} rule"
    momentum = f", momentum features {rule['momentum_decays']}" if rule.get("momentum_decays") else ""
    gac = f", {rule['gac_cells']} global averaging cells per layer" if rule.get("gac_cells") else ""
    progress = ", reading its run's progress t / T" if rule.get("progress_input") else ""
    return (f"a {rule['num_layers']}x{rule['hidden_size']} coordinatewise LSTM rule ({rule['preprocessing']}"
            f" preprocessing p={rule['preprocessing_p']:g}, output scale {rule['output_scale']:g}{momentum}{gac}"
            f"{progress})")


def progress_argument(metadata: dict) -> str:
    """``LearnedOptimizer.load``'s ``total_steps=`` argument in the report's snippet, for a rule
    that reads its run's progress; empty otherwise."""
    reads_progress = any(rule.get("progress_input") for rule in catalog.rule_configs(metadata))
    return ", total_steps=EPOCHS * STEPS_PER_EPOCH" if reads_progress else ""


def describe_rules(metadata: dict) -> str:
    """One sentence on the folder's rule, or on each of its rules (format 2) and their assignment."""
    if "rules" not in metadata:
        sentence = _describe_rule(metadata["rule"])
        return sentence[0].upper() + sentence[1:]
    parts = "; ".join(f"`{name}`: {_describe_rule(rule)}" for name, rule in metadata["rules"].items())
    return f"{len(metadata['rules'])} rules assigned to variables by `{metadata.get('assignment')}` ({parts})"


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    common.warn_deprecated_flags()
    try:
        metadata = export.read_metadata(FLAGS.optimizer)
    except export.RuleLoadError as error:
        common.usage_error(str(error))
    training = metadata.get("training", {})
    lines = [
        f"# {os.path.basename(os.path.normpath(FLAGS.optimizer))}\n",
        (f"{describe_rules(metadata)} ({metadata['num_meta_parameters']} weights),"
        f" meta-trained on `{metadata['problem'].get('name')}` by `{training.get('command', '?')}`;"
        f" best validation loss {training.get('validation_loss', float('nan')):.4g} at epoch {training.get('epoch')}.\n"),
        ("```python\nfrom l2l_tf import LearnedOptimizer\n"
        f"optimizer = LearnedOptimizer.load(\"{FLAGS.optimizer}\"{progress_argument(metadata)})\n```\n"),
    ]
    if FLAGS.notes:
        try:
            with open(FLAGS.notes) as f:
                lines.append(f.read().strip() + "\n")
        except OSError as error:
            common.usage_error(f"--notes={FLAGS.notes}: {error.strerror}")
    for i, item in enumerate(FLAGS.evaluation):
        if "=" not in item:
            common.usage_error(f"--evaluation values must be TITLE=DIR, got {item!r}")
        title, directory = item.rsplit("=", 1)
        image = f"eval_{i}.png"
        text, has_image = section(title.strip(), directory, image)
        if has_image:
            shutil.copyfile(os.path.join(directory, "curves.png"), os.path.join(FLAGS.optimizer, image))
        elif os.path.exists(os.path.join(FLAGS.optimizer, image)):  # an earlier report's picture at this place
            os.remove(os.path.join(FLAGS.optimizer, image))
        lines.append(text)
    for i, item in enumerate(FLAGS.image):
        if "=" not in item or not os.path.isfile(item.rsplit("=", 1)[1]):
            common.usage_error(f"--image values must be TITLE=PNG of an existing file, got {item!r}")
        title, path = item.rsplit("=", 1)
        image = f"image_{i}.png"
        shutil.copyfile(path, os.path.join(FLAGS.optimizer, image))
        lines.append(f"## {title.strip()}\n\n![{title.strip()}]({image})\n")
    with open(os.path.join(FLAGS.optimizer, "report.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {FLAGS.optimizer}/report.md")


def main() -> None:
    """The ``l2l-report`` console script (``python -m train.report`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
