"""Exports a meta-trained rule as a SavedModel (the l2l_tf rule contract, see l2l_tf.export).

Example:
  python -m train.export --checkpoint=runs/quadratic --export_dir=runs/quadratic_rule \
      [--evaluation_json=runs/quadratic_eval/results.json]

--checkpoint takes a meta_train --save_path (its best rule is used) or a rule folder.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from l2l_tf import export
from train import common

flags.DEFINE_string("checkpoint", None, "meta_train --save_path, or a rule folder.")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (replaced atomically).")
flags.DEFINE_string("evaluation_json", None, "Optional results.json of train.evaluate to embed as the evaluation summary.")
flags.mark_flags_as_required(["checkpoint", "export_dir"])
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    evaluation = None
    if FLAGS.evaluation_json:
        if not os.path.isfile(FLAGS.evaluation_json):
            common.usage_error(f"--evaluation_json={FLAGS.evaluation_json}: no such file")
        with open(FLAGS.evaluation_json) as f:
            results = json.load(f)
        evaluation = {k: results[k] for k in ("summary", "settings") if k in results}
    common.require_dir_parent_writable(FLAGS.export_dir, "export_dir")
    try:
        export.export_checkpoint(FLAGS.checkpoint, FLAGS.export_dir, evaluation)
    except FileNotFoundError as error:
        common.usage_error(str(error))
    print(f"exported {FLAGS.checkpoint} -> {FLAGS.export_dir}")


if __name__ == "__main__":
    app.run(main)
