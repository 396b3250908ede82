"""Freeze a rule into a SavedModel, and load and validate one.

The SavedModel contract (format version 1), usable from plain TensorFlow:

- signature ``serving_default``: inputs ``gradients`` float32 ``[N]`` and ``state``
  float32 ``[N, S]``; outputs ``update`` float32 ``[N]`` (theta_new = theta + update)
  and ``state`` float32 ``[N, S]``. N is dynamic, S fixed by the rule.
- signature ``init_state``: input ``num_coordinates`` int32 scalar; output ``state``
  float32 ``[N, S]`` (zeros).
- signature ``metadata``: no inputs; output ``json``, a string holding the metadata
  below; the same JSON is the asset ``assets/l2l_tf_rule.json``.
- metadata: ``format``, ``format_version``, ``rule`` (architecture and preprocessing),
  ``state_size``, ``problem``, ``training`` (the meta_train flags/command) and
  ``evaluation`` (a summary, if given).

Loading checks the directory, the metadata, the signatures and (unless explicitly
disabled) that the graph uses only the ops a frozen rule needs: a SavedModel is a
program, and one from an untrusted source could read or write files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import tensorflow as tf

from l2l_tf import checkpoints
from l2l_tf.checkpoints import replace_directory
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig

FORMAT = "l2l_tf.rule"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
METADATA_ASSET = "l2l_tf_rule.json"

# Every op the signature functions of a frozen coordinatewise rule may run (found by
# exporting rules and listing the ops reachable from their signatures). File, network,
# print and py-function ops are absent on purpose.
ALLOWED_OPS = frozenset(
    [
        "Abs", "Add", "AddV2", "All", "AssignVariableOp", "BiasAdd", "BroadcastTo", "Cast",
        "ConcatV2", "Const", "DisableCopyOnRead", "Equal", "Exp", "ExpandDims", "Fill", "GatherV2",
        "Greater", "GreaterEqual", "Identity", "IdentityN", "IsFinite", "Less", "LessEqual", "Log",
        "LogicalAnd", "LogicalNot", "MatMul", "Max", "Maximum", "Mean", "Min", "Minimum", "Mul",
        "Neg", "NoOp", "OnesLike", "Pack", "PartitionedCall", "Placeholder", "Prod", "Range",
        "ReadVariableOp", "RealDiv", "Reshape", "Rsqrt", "Select", "SelectV2", "Shape", "Sigmoid",
        "Sign", "Slice", "Split", "SplitV", "Sqrt", "Square", "Squeeze", "StatefulPartitionedCall",
        "StopGradient", "StridedSlice", "Sub", "Sum", "Tanh", "Tile", "Transpose", "VarHandleOp",
        "Where", "ZerosLike",
    ]
)
SIGNATURES_CALLED = ("serving_default", "init_state", "metadata")


class RuleLoadError(ValueError):
    """A path is not a loadable l2l_tf rule SavedModel; the message says why and what to do."""


class _FrozenRule(tf.Module):
    """What gets exported: the rule's weights and its step/init_state/metadata functions."""

    def __init__(self, rule: CoordinatewiseLSTM, metadata_json: str):
        super().__init__(name="l2l_tf_frozen_rule")
        self.rule = rule
        self._metadata_json = metadata_json
        self.metadata_asset = None
        state_size = rule.state_size

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32, name="gradients"),
                tf.TensorSpec([None, state_size], tf.float32, name="state"),
            ]
        )
        def step(gradients: tf.Tensor, state: tf.Tensor) -> dict[str, tf.Tensor]:
            update, new_state = self.rule.step(gradients, state)
            return {"update": update, "state": new_state}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_coordinates")])
        def init_state(num_coordinates: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"state": self.rule.init_state(num_coordinates)}

        @tf.function(input_signature=[])
        def metadata() -> dict[str, tf.Tensor]:
            return {"json": tf.constant(self._metadata_json)}

        self.step, self.init_state, self.metadata = step, init_state, metadata


def build_metadata(
    rule: CoordinatewiseLSTM,
    problem: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rule": {"type": "coordinatewise_lstm", **rule.config.to_dict()},
        "state_size": rule.state_size,
        "num_meta_parameters": rule.num_meta_parameters(),
        "problem": problem or {},
        "training": training or {},
        "evaluation": evaluation or {},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_rule(
    rule: CoordinatewiseLSTM,
    export_dir: str,
    problem: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> str:
    """Writes ``rule`` as a SavedModel to ``export_dir`` (atomically: built in a sibling
    temporary folder and moved into place only when complete)."""
    metadata = build_metadata(rule, problem, training, evaluation)
    metadata_json = json.dumps(metadata, indent=1, sort_keys=True)
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        asset_source = os.path.join(tempfile.mkdtemp(), METADATA_ASSET)
        with open(asset_source, "w") as f:
            f.write(metadata_json)
        module = _FrozenRule(rule, metadata_json)
        module.metadata_asset = tf.saved_model.Asset(asset_source)
        tf.saved_model.save(
            module,
            build_dir,
            signatures={
                "serving_default": module.step,
                "init_state": module.init_state,
                "metadata": module.metadata,
            },
        )
        shutil.rmtree(os.path.dirname(asset_source), ignore_errors=True)
        replace_directory(build_dir, export_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    return export_dir


def export_checkpoint(checkpoint: str, export_dir: str, evaluation: dict | None = None) -> str:
    """Exports the rule at ``checkpoint`` (a meta_train ``--save_path`` or a rule folder)
    with the training flags and problem recorded beside it."""
    rule_dir = checkpoints.resolve_rule_dir(checkpoint)
    metadata = checkpoints.read_rule_metadata(rule_dir)
    run_config = metadata.get("run_config") or {}
    training = {k: v for k, v in run_config.items() if k != "problem_description"}
    training.update({k: metadata[k] for k in ("epoch", "validation_loss") if k in metadata})
    rule = checkpoints.load_rule(rule_dir)
    return export_rule(
        rule, export_dir, problem=run_config.get("problem_description"), training=training,
        evaluation=evaluation,
    )


def signature_ops(export_dir: str, signatures: tuple[str, ...] = SIGNATURES_CALLED) -> set[str]:
    """Op types that calling ``signatures`` can run: the signature's graph nodes and every
    function they reach, transitively. (Checkpoint save/restore functions, which the
    loader never calls, are not included.)"""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    try:
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as error:  # DecodeError and friends
        raise RuleLoadError(f"{path}: not a readable SavedModel protobuf ({error})") from error
    if len(proto.meta_graphs) != 1:
        raise RuleLoadError(f"{path}: expected one MetaGraph, found {len(proto.meta_graphs)}")
    meta_graph = proto.meta_graphs[0]
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    ops: set[str] = set()
    pending: list = []
    for key in signatures:
        if key not in meta_graph.signature_def:
            continue
        for tensor in meta_graph.signature_def[key].outputs.values():
            node = nodes.get(tensor.name.split(":")[0])
            if node is not None:
                pending.append(node)
    seen: set[str] = set()
    while pending:
        node = pending.pop()
        ops.add(node.op)
        for attr in node.attr.values():
            names = [attr.func.name] if attr.HasField("func") else [f.name for f in attr.list.func]
            for name in names:
                if name and name not in seen:
                    seen.add(name)
                    if name not in functions:
                        raise RuleLoadError(f"{path}: calls undefined function {name!r}")
                    pending.extend(functions[name].node_def)
        for source in node.input:
            source_node = nodes.get(source.lstrip("^").split(":")[0])
            if source_node is not None and source_node.name not in seen:
                seen.add(source_node.name)
                pending.append(source_node)
    return ops


def check_ops(export_dir: str) -> None:
    """Refuses a SavedModel whose signatures can run ops outside ``ALLOWED_OPS``."""
    forbidden = sorted(signature_ops(export_dir) - ALLOWED_OPS)
    if forbidden:
        raise RuleLoadError(
            f"{export_dir!r} uses ops a frozen l2l_tf rule never needs: {forbidden}. A SavedModel"
            " is a program; refusing to run it. If you trust its source, load with"
            " allow_unsafe_ops=True (flag --allow_unsafe_ops)"
        )


def read_metadata(export_dir: str) -> dict[str, Any]:
    """Reads and checks the metadata asset of an exported rule (no graph is loaded)."""
    if not os.path.exists(export_dir):
        raise RuleLoadError(f"no such path {export_dir!r}: pass the folder written by train.export")
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        raise RuleLoadError(
            f"{export_dir!r} is not a SavedModel (no saved_model.pb). Pass an exported rule"
            " (train.export), not a training --save_path"
        )
    path = os.path.join(export_dir, "assets", METADATA_ASSET)
    if not os.path.isfile(path):
        raise RuleLoadError(
            f"{export_dir!r} is a SavedModel but not an l2l_tf rule (no assets/{METADATA_ASSET})"
        )
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (OSError, ValueError) as error:
        raise RuleLoadError(f"{path}: unreadable rule metadata ({error})") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise RuleLoadError(f"{path}: not l2l_tf rule metadata (format is not {FORMAT!r})")
    version = metadata.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise RuleLoadError(
            f"{export_dir!r} has rule format version {version!r}; this l2l_tf reads"
            f" {SUPPORTED_FORMAT_VERSIONS}. Upgrade l2l_tf or re-export the rule"
        )
    return metadata


class FrozenRule:
    """An exported rule loaded from its SavedModel: ``init_state(n)``, ``step(g, state)``.

    ``rule_config`` and ``weights()`` give back the architecture and weight values, so a
    ``LearnedOptimizer`` holding one can be serialised into a ``.keras`` file.
    """

    def __init__(self, export_dir: str, allow_unsafe_ops: bool = False):
        self.path = export_dir
        self.metadata = read_metadata(export_dir)
        try:
            self.rule_config = RuleConfig.from_dict(
                {k: v for k, v in self.metadata["rule"].items() if k != "type"}
            )
            self.state_size = int(self.metadata["state_size"])
        except (KeyError, TypeError, ValueError) as error:
            raise RuleLoadError(f"{export_dir!r}: invalid rule metadata ({error})") from error
        if self.state_size != self.rule_config.state_size:
            raise RuleLoadError(
                f"{export_dir!r}: metadata state_size {self.state_size} does not match its"
                f" architecture ({self.rule_config.state_size})"
            )
        if not allow_unsafe_ops:
            check_ops(export_dir)
        try:
            self._loaded = tf.saved_model.load(export_dir)
        except Exception as error:  # corrupted protobufs and variables raise many types
            raise RuleLoadError(f"{export_dir!r}: the SavedModel is corrupted ({error})"[:500]) from error
        self._check_signatures()
        self._step = self._loaded.signatures["serving_default"]
        self._init_state = self._loaded.signatures["init_state"]

    def _check_signatures(self) -> None:
        signatures = self._loaded.signatures
        missing = {"serving_default", "init_state"} - set(signatures)
        if missing:
            raise RuleLoadError(f"{self.path!r}: missing signatures {sorted(missing)}")
        inputs = signatures["serving_default"].structured_input_signature[1]
        outputs = signatures["serving_default"].structured_outputs
        expected = {"gradients": [None], "state": [None, self.state_size]}
        for name, shape in expected.items():
            spec = inputs.get(name)
            if spec is None or spec.dtype != tf.float32 or spec.shape.as_list() != shape:
                raise RuleLoadError(
                    f"{self.path!r}: serving_default input {name!r} is {spec}, expected float32 {shape}"
                )
        if set(outputs) != {"update", "state"}:
            raise RuleLoadError(f"{self.path!r}: serving_default outputs {sorted(outputs)}, expected update/state")

    def init_state(self, num_coordinates: int | tf.Tensor) -> tf.Tensor:
        return self._init_state(num_coordinates=tf.cast(num_coordinates, tf.int32))["state"]

    def step(self, gradients: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = self._step(gradients=gradients, state=state)
        return out["update"], out["state"]

    def weights(self) -> list[tf.Variable]:
        """The rule's weight variables in ``CoordinatewiseLSTM`` order."""
        rule = self._loaded.rule
        return [*rule.kernels, *rule.biases, rule.output_kernel, rule.output_bias]

    def to_rule(self) -> CoordinatewiseLSTM:
        """An in-memory ``CoordinatewiseLSTM`` with this rule's architecture and weights."""
        return rule_from_weights(self.rule_config, [w.numpy() for w in self.weights()])


def rule_weights(rule: CoordinatewiseLSTM) -> list[tf.Variable]:
    return [*rule.kernels, *rule.biases, rule.output_kernel, rule.output_bias]


def rule_from_weights(config: RuleConfig, values: list) -> CoordinatewiseLSTM:
    rule = CoordinatewiseLSTM(config)
    targets = rule_weights(rule)
    if len(values) != len(targets):
        raise RuleLoadError(f"expected {len(targets)} weight tensors for {config}, got {len(values)}")
    for variable, value in zip(targets, values):
        value = tf.convert_to_tensor(value, tf.float32)
        if value.shape != variable.shape:
            raise RuleLoadError(f"weight {variable.name}: shape {value.shape}, expected {variable.shape}")
        variable.assign(value)
    return rule


def load(export_dir: str, allow_unsafe_ops: bool = False) -> FrozenRule:
    """Loads and validates an exported rule (see ``FrozenRule``)."""
    return FrozenRule(export_dir, allow_unsafe_ops)
