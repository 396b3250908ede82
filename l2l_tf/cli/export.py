"""Exports a meta-trained rule as a SavedModel (the l2l_tf rule contract, see l2l_tf.export).

Example:
  l2l-export --optimizer=runs/quadratic --export_dir=runs/quadratic_rule \
      [--evaluation_json=runs/quadratic_eval/results.json]

--optimizer takes a meta_train --save_path (its best rule is used) or a rule folder
(--checkpoint is its deprecated alias).
"""

from __future__ import annotations

import os

from absl import flags

from l2l_tf import export
from l2l_tf.cli import common
from l2l_tf.json_files import JsonFileError, read_json

flags.DEFINE_string("optimizer", None, "The rule to export: a meta_train --save_path (its best rule), or a rule folder.")
common.define_deprecated_alias("checkpoint", "optimizer")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel: a new or empty folder, or an earlier export (replaced atomically).")
flags.DEFINE_string("evaluation_json", None, "Optional results.json of train.evaluate to embed as the evaluation summary.")
flags.mark_flags_as_required(["optimizer", "export_dir"])
FLAGS = flags.FLAGS


def read_evaluation(path: str) -> dict:
    """The summary and settings of a train.evaluate ``results.json``; a usage error if unreadable."""
    if not os.path.isfile(path):
        common.usage_error(f"--evaluation_json={path}: no such file")
    try:
        results = read_json(path, "evaluation results", max_bytes=64 << 20)
    except JsonFileError as error:
        common.usage_error(f"--evaluation_json: {error}; pass the results.json that train.evaluate wrote")
    if not isinstance(results, dict):
        common.usage_error(f"--evaluation_json={path}: not a train.evaluate results.json (no JSON object)")
    return {k: results[k] for k in ("summary", "settings") if k in results}


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    common.warn_deprecated_flags()
    common.require_export_target(FLAGS.export_dir, (FLAGS.optimizer,))
    evaluation = read_evaluation(FLAGS.evaluation_json) if FLAGS.evaluation_json else None
    common.require_dir_parent_writable(FLAGS.export_dir, "export_dir")
    try:
        export.export_checkpoint(FLAGS.optimizer, FLAGS.export_dir, evaluation)
    except (FileNotFoundError, ValueError) as error:
        common.usage_error(str(error))
    print(f"exported {FLAGS.optimizer} -> {FLAGS.export_dir}")


def main() -> None:
    """The ``l2l-export`` console script (``python -m train.export`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
