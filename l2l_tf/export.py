"""Freeze a rule into a SavedModel (the l2l_tf rule file), and refuse unsafe targets.

The SavedModel contract, format version 1 (one rule; what a single rule still exports as),
usable from plain TensorFlow:

- signature ``serving_default``: inputs ``gradients`` float32 ``[N]`` and ``state``
  float32 ``[N, S]``; outputs ``update`` float32 ``[N]`` (theta_new = theta + update)
  and ``state`` float32 ``[N, S]``. N is dynamic, S fixed by the rule. Rules that
  normalise per tensor (family ``mlp``) also take ``tensor_sizes`` int32 ``[T]`` (the
  sizes of the tensors whose flattened gradients are concatenated in ``gradients``) and,
  if they read parameter values, ``params`` float32 ``[N]``. Rules that read how far
  through its run the optimizee is (``progress_input``) take ``progress`` float32 scalar
  (``t / T`` of step ``t`` in a run of ``T`` steps, in [0, 1]). The metadata's ``inputs``
  lists a file's step inputs.
- signature ``init_state``: input ``num_coordinates`` int32 scalar; output ``state``
  float32 ``[N, S]`` (zeros).
- signature ``metadata``: no inputs; output ``json``, a string holding the metadata
  below; the same JSON is the asset ``assets/l2l_tf_rule.json``.
- metadata: ``format``, ``format_version``, ``family`` (``lstm`` or ``mlp``, see
  ``rule_families``; absent in files written before families: ``lstm``), ``rule``
  (``type``, architecture and preprocessing), ``state_size``, ``inputs``, ``problem``,
  ``training`` (the meta_train flags/command) and ``evaluation`` (a summary, if given).
- weights: the rule's variables ``rule/<name>`` for its ``config.weight_names()`` (for the
  LSTM ``rule/kernels/<i>``, ``rule/biases/<i>``, ``rule/output_kernel`` and
  ``rule/output_bias``) of the checkpoint in ``variables/``.

Format version 2 (a rule set, ``l2l_tf.rule_sets.RuleSet``: several named rules in one folder):

- signatures ``step_<name>`` and ``init_state_<name>`` for every rule ``<name>``, each as
  ``serving_default`` and ``init_state`` above for that rule's own ``S``; ``metadata`` as
  above. (No ``serving_default``: which coordinates a rule updates is the assignment's call.)
- metadata: ``format``, ``format_version`` 2, ``rules`` (``{name: {type, architecture,
  state_size}}``, in the set's order), ``assignment`` (``"conv_fc"``: convolution kernels to
  rule ``conv``, everything else to ``fc``; or ``{fnmatch pattern on the variable path:
  rule name}``, first match wins; each rule's entry also holds its ``inputs``), ``num_meta_parameters``, ``problem``, ``training``,
  ``evaluation``.
- weights: rule ``<name>``'s variables ``rules/<name>/kernels/<i>``, ... (as in version 1
  with ``rules/<name>`` for ``rule``).

Version-1 files load unchanged. l2l_tf itself loads a rule file as data only (``l2l_tf.rule_file``, re-exported here as
``load`` and ``read_metadata``): the signatures are for other TensorFlow users.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import tensorflow as tf

from l2l_tf import checkpoints, rule_families
from l2l_tf.checkpoints import replace_directory
from l2l_tf.layout import TensorLayout, needs_layout, needs_params, needs_progress
from l2l_tf.rule_file import (  # noqa: F401  (the loading half of the contract, re-exported)
    FORMAT,
    FORMAT_VERSION,
    METADATA_ASSET,
    RULE_SET_FORMAT_VERSION,
    SUPPORTED_FORMAT_VERSIONS,
    LoadedRule,
    RuleLoadError,
    load,
    read_metadata,
)
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule

AnyRule = Rule | RuleSet


class UnsafeExportTargetError(ValueError):
    """An export folder that may not be replaced (it holds something other than a rule)."""


def _rule_functions(rule: Rule) -> tuple[Any, Any]:
    """``rule``'s exported ``step`` and ``init_state`` functions (see the contract above)."""

    specs = step_input_specs(rule)

    @tf.function(input_signature=list(specs.values()))
    def step(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        named = dict(zip(specs, inputs))
        extra = {}
        if "tensor_sizes" in named:
            extra["layout"] = TensorLayout(named["tensor_sizes"])
        for name in ("params", "progress"):
            if name in named:
                extra[name] = named[name]
        update, new_state = rule.step(named["gradients"], named["state"], **extra)
        return {"update": update, "state": new_state}

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_coordinates")])
    def init_state(num_coordinates: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"state": rule.init_state(num_coordinates)}

    return step, init_state


class _RuleModule(tf.Module):
    """What gets exported: the rule's (or rule set's) weights and its step/init_state/metadata
    functions; ``exported`` names them as the contract's signatures."""

    def __init__(self, rule: AnyRule, metadata_json: str):
        super().__init__(name="l2l_tf_rule_module")
        self._metadata_json = metadata_json
        self.metadata_asset = None

        @tf.function(input_signature=[])
        def metadata() -> dict[str, tf.Tensor]:
            return {"json": tf.constant(self._metadata_json)}

        self.metadata = metadata
        if isinstance(rule, RuleSet):
            self.rules = dict(rule.rules)
            functions = {name: _rule_functions(r) for name, r in rule.rules.items()}
            self.exported = {f"{kind}_{name}": f for name, pair in functions.items()
                             for kind, f in zip(("step", "init_state"), pair)}
        else:
            self.rule = rule
            self.step, self.init_state = _rule_functions(rule)
            self.exported = {"serving_default": self.step, "init_state": self.init_state}
        self.exported["metadata"] = metadata


def step_input_specs(rule: Rule) -> dict[str, tf.TensorSpec]:
    """The inputs of ``rule``'s exported step signature, by name (see the contract above)."""
    specs = {
        "gradients": tf.TensorSpec([None], tf.float32, name="gradients"),
        "state": tf.TensorSpec([None, rule.state_size], tf.float32, name="state"),
    }
    if needs_layout(rule):
        specs["tensor_sizes"] = tf.TensorSpec([None], tf.int32, name="tensor_sizes")
    if needs_params(rule):
        specs["params"] = tf.TensorSpec([None], tf.float32, name="params")
    if needs_progress(rule):
        specs["progress"] = tf.TensorSpec([], tf.float32, name="progress")
    return specs


def _describe(rule: Rule) -> dict[str, Any]:
    return {"type": rule_families.RULE_TYPES[rule_families.family_of(rule.config)], **rule.config.to_dict()}


def build_metadata(
    rule: AnyRule,
    problem: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata of ``rule``'s file (see the contract above)."""
    if isinstance(rule, RuleSet):
        described = {
            "format_version": RULE_SET_FORMAT_VERSION,
            "rules": {name: {**_describe(r), "state_size": r.state_size, "inputs": list(step_input_specs(r))}
                      for name, r in rule.rules.items()},
            "assignment": rule.assignment_spec(),
        }
    else:
        described = {"format_version": FORMAT_VERSION, "family": rule_families.family_of(rule.config),
                     "rule": _describe(rule), "state_size": rule.state_size, "inputs": list(step_input_specs(rule))}
    return {
        "format": FORMAT,
        **described,
        "num_meta_parameters": rule.num_meta_parameters(),
        "problem": problem or {},
        "training": training or {},
        "evaluation": evaluation or {},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_rule(
    rule: AnyRule,
    export_dir: str,
    problem: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    protected: tuple[str, ...] = (),
) -> str:
    """Writes ``rule`` as a SavedModel to ``export_dir`` (atomically: built in a sibling
    temporary folder and moved into place only when complete). Only an earlier export or
    an empty folder is replaced (``check_export_target``)."""
    check_export_target(export_dir, protected)
    checkpoints.recover_directory(export_dir)
    metadata = build_metadata(rule, problem, training, evaluation)
    metadata_json = json.dumps(metadata, indent=1, sort_keys=True)
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix=checkpoints.build_prefix(export_dir), dir=parent)
    try:
        asset_source = os.path.join(tempfile.mkdtemp(), METADATA_ASSET)
        with open(asset_source, "w") as f:
            f.write(metadata_json)
        module = _RuleModule(rule, metadata_json)
        module.metadata_asset = tf.saved_model.Asset(asset_source)
        tf.saved_model.save(module, build_dir, signatures=dict(module.exported))
        shutil.rmtree(os.path.dirname(asset_source), ignore_errors=True)
        replace_directory(build_dir, export_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    return export_dir


def export_checkpoint(checkpoint: str, export_dir: str, evaluation: dict | None = None) -> str:
    """Exports the rule at ``checkpoint`` (a meta_train ``--save_path`` or a rule folder)
    with the training flags and problem recorded beside it."""
    check_export_target(export_dir, (checkpoint,))
    rule_dir = checkpoints.resolve_rule_dir(checkpoint)
    metadata = checkpoints.read_rule_metadata(rule_dir)
    run_config = metadata.get("run_config") or {}
    training = {k: v for k, v in run_config.items() if k != "problem_description"}
    training.update({k: metadata[k] for k in ("epoch", "validation_loss") if k in metadata})
    rule = checkpoints.load_rule(rule_dir)
    return export_rule(
        rule, export_dir, problem=run_config.get("problem_description"), training=training,
        evaluation=evaluation, protected=(checkpoint,),
    )




def load_any(path: str) -> AnyRule:
    """The rule wherever it is (what the binaries' ``--optimizer`` takes): an exported rule
    folder (read as data, nothing from it executed), else a meta_train save_path's best
    rule or a rule checkpoint folder (``checkpoints.load_rule``)."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return load(path)
    return checkpoints.load_rule(path)


def is_exported_rule(path: str) -> bool:
    """Whether ``path`` is a folder holding an l2l_tf rule export (the only kind of folder
    ``export_rule`` replaces)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isfile(
        os.path.join(path, "assets", METADATA_ASSET)
    )


def _first_existing_ancestor(path: str) -> str:
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def check_export_target(export_dir: str, protected: tuple[str, ...] = ()) -> None:
    """Refuses, before any work, an ``export_dir`` whose replacement would lose data: a
    file, a non-empty folder that is not an earlier export, a folder under a file, or one
    of the ``protected`` folders (the run being exported) or a folder above one."""
    target = os.path.realpath(export_dir)
    for path in protected:
        run = os.path.realpath(path)
        if target == run or run.startswith(target.rstrip(os.sep) + os.sep):
            raise UnsafeExportTargetError(
                f"export folder {export_dir!r} is the run folder {path!r} or a folder above it; exporting"
                " there would delete the run. Export to a new folder, e.g. " + path.rstrip("/") + "_export"
            )
    if os.path.lexists(export_dir):
        if os.path.islink(export_dir) or not os.path.isdir(export_dir):
            raise UnsafeExportTargetError(f"export folder {export_dir!r} exists and is not a folder; export to a new folder")
        if os.listdir(export_dir) and not is_exported_rule(export_dir):
            raise UnsafeExportTargetError(
                f"export folder {export_dir!r} is a non-empty folder that is not an exported l2l_tf rule;"
                " refusing to replace it (its files would be deleted). Export to a new or empty folder, or"
                " over an earlier export"
            )
        return
    ancestor = _first_existing_ancestor(target)
    if not os.path.isdir(ancestor):
        raise UnsafeExportTargetError(f"export folder {export_dir!r}: {ancestor!r} is a file, not a folder")
