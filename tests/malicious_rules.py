"""Builders of malicious rule files, one per attack class that got past the old op
allow-list (issue 13). Each writes ``marker`` when TensorFlow loads or runs the file; each
carries genuine l2l_tf metadata and (where the attack allows) genuine rule weights."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from l2l_tf import export
from l2l_tf.rules import CoordinatewiseLSTM


def _write_marker(marker: str, text: str) -> tf.Operation:
    return tf.io.write_file(marker, text)


class _FileWritingRule(CoordinatewiseLSTM):
    """A rule whose step (traced into the SavedModel's signature) writes ``marker``."""

    marker = ""

    def step(self, gradients, state):
        _write_marker(self.marker, "step")
        return super().step(gradients, state)


def _save_module(module: tf.Module, path: str, rule: CoordinatewiseLSTM, extra_signatures=None) -> None:
    """Saves ``module`` like ``export.export_rule`` does (same signatures and asset)."""
    metadata_json = json.dumps(export.build_metadata(rule))
    asset = os.path.join(tempfile.mkdtemp(), export.METADATA_ASSET)
    with open(asset, "w") as f:
        f.write(metadata_json)
    module.metadata_asset = tf.saved_model.Asset(asset)
    signatures = {"serving_default": module.step, "init_state": module.init_state, "metadata": module.metadata}
    signatures.update(extra_signatures or {})
    tf.saved_model.save(module, path, signatures=signatures)


def _rule_module(rule: CoordinatewiseLSTM) -> tf.Module:
    return export._RuleModule(rule, json.dumps(export.build_metadata(rule)))


def _edit_graph(path: str, edit) -> None:
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    edit(proto.meta_graphs[0])
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())


class _RestoreHook(tf.__internal__.tracking.Trackable):
    """A trackable whose restore function writes the marker when the SavedModel loads."""

    def __init__(self, marker: str):
        self.marker = marker

    def _serialize_to_tensors(self):
        return {"value": tf.constant(1.0)}

    def _restore_from_tensors(self, restored_tensors):
        return _write_marker(self.marker, "restore")


def _save_with(path: str, attribute: str, trackable: Any) -> None:
    """A genuine rule export with ``trackable`` attached to the module as ``attribute``."""
    rule = CoordinatewiseLSTM(seed=1)
    module = _rule_module(rule)
    setattr(module, attribute, trackable)
    _save_module(module, path, rule)


def restore_function(path: str, marker: str) -> None:
    _save_with(path, "hook", _RestoreHook(marker))


class _InitResource(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer writes the marker when the SavedModel loads."""

    def __init__(self, marker: str):
        self.marker = marker
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

    def _initialize(self):
        return _write_marker(self.marker, "initializer")


def resource_initializer(path: str, marker: str) -> None:
    _save_with(path, "resource", _InitResource(marker))


def tf1_main_op(path: str, marker: str) -> None:
    """A TF1-style SavedModel (no object graph) whose main_op writes the marker."""
    rule = CoordinatewiseLSTM(seed=1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        gradients = tf.compat.v1.placeholder(tf.float32, [None], name="gradients")
        state = tf.compat.v1.placeholder(tf.float32, [None, rule.state_size], name="state")
        scale = tf.compat.v1.get_variable("scale", initializer=1.0)
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(path)
        signature = tf.compat.v1.saved_model.predict_signature_def(
            {"gradients": gradients, "state": state}, {"update": gradients * scale, "state": state})
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature},
            main_op=_write_marker(marker, "main_op"))
        builder.save()
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    with open(os.path.join(path, "assets", export.METADATA_ASSET), "w") as f:
        json.dump(export.build_metadata(rule), f)


def api_implements_twin(path: str, marker: str) -> None:
    """The step calls a function with ``api_implements``; an evil twin with the same
    ``api_implements`` and the CPU as preferred device is in the library, for Grappler's
    implementation selector to swap in at the first call."""
    rule = CoordinatewiseLSTM(seed=1)
    module = _rule_module(rule)
    attributes = {"api_implements": "l2l_tf_rule_step"}

    @tf.function(experimental_attributes={**attributes, "api_preferred_device": "GPU"})
    def honest(gradients, state):
        return rule.step(gradients, state)

    @tf.function(experimental_attributes={**attributes, "api_preferred_device": "CPU"})
    def twin(gradients, state):
        with tf.control_dependencies([_write_marker(marker, "twin")]):
            update, new_state = rule.step(gradients, state)
            return tf.identity(update), tf.identity(new_state)

    spec = [tf.TensorSpec([None], tf.float32, name="gradients"), tf.TensorSpec([None, rule.state_size], tf.float32, name="state")]

    @tf.function(input_signature=spec)
    def step(gradients, state):
        update, new_state = honest(gradients, state)
        return {"update": update, "state": new_state}

    module.twin = twin.get_concrete_function(*spec)
    module.step = step
    _save_module(module, path, rule)


def _evil_export(path: str, marker: str) -> None:
    rule = _FileWritingRule(seed=1)
    rule.marker = marker
    export.export_rule(rule, path)


def forbidden_op(path: str, marker: str) -> None:
    """The pre-existing case: the signature itself runs WriteFile."""
    _evil_export(path, marker)


def signature_def_cleared(path: str, marker: str) -> None:
    """No TF1 signature_def at all; the object graph's signatures run WriteFile."""
    _evil_export(path, marker)
    _edit_graph(path, lambda meta: meta.signature_def.clear())


def signature_def_dangling(path: str, marker: str) -> None:
    """signature_def outputs name nodes that do not exist (a walker skips them)."""
    _evil_export(path, marker)

    def edit(meta):
        for signature in meta.signature_def.values():
            for tensor in signature.outputs.values():
                tensor.name = "no_such_node:0"

    _edit_graph(path, edit)


def serving_default_repointed(path: str, marker: str) -> None:
    """signature_def's serving_default names an honest function; the object graph's
    serving_default (what ``tf.saved_model.load`` calls) is an evil one."""
    honest_rule, evil_rule = CoordinatewiseLSTM(seed=1), _FileWritingRule(seed=1)
    evil_rule.marker = marker
    module = _rule_module(honest_rule)
    evil = _rule_module(evil_rule)
    module.evil = evil
    _save_module(module, path, honest_rule, extra_signatures={"honest": module.step})
    module_path = path + ".evil"
    _save_module(module, module_path, honest_rule, extra_signatures={"serving_default": evil.step, "honest": module.step})
    shutil.rmtree(path)
    shutil.move(module_path, path)

    def edit(meta):
        meta.signature_def["serving_default"].CopyFrom(meta.signature_def["honest"])
        del meta.signature_def["honest"]

    _edit_graph(path, edit)


def node_named_like_function(path: str, marker: str) -> None:
    """A top-level NoOp node named like the function that writes the file."""
    _evil_export(path, marker)

    def edit(meta):
        writers = [f.signature.name for f in meta.graph_def.library.function
                   if any(node.op == "WriteFile" for node in f.node_def)]
        for name in writers:
            meta.graph_def.node.add(name=name, op="NoOp")

    _edit_graph(path, edit)


ATTACKS = {
    "forbidden_op": forbidden_op,
    "restore_function": restore_function,
    "resource_initializer": resource_initializer,
    "tf1_main_op": tf1_main_op,
    "api_implements_twin": api_implements_twin,
    "signature_def_cleared": signature_def_cleared,
    "signature_def_dangling": signature_def_dangling,
    "serving_default_repointed": serving_default_repointed,
    "node_named_like_function": node_named_like_function,
}
