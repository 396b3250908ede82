"""Loading an exported rule as data: l2l_tf never executes a graph that came from a file.

A SavedModel is a program: loading one with ``tf.saved_model.load`` runs restore
functions, resource initializers and init ops from the file, and calling its signatures
runs whatever graph (and Grappler-swapped function) the file holds. So ``load`` reads
only two things, both as data:

1. the metadata asset ``assets/l2l_tf_rule.json`` (size- and depth-bounded JSON, strictly
   typed, the architecture within ``rules.MAX_*``), and
2. the weight tensors in ``variables/`` through a checkpoint reader
   (``tf.train.load_checkpoint``), checked against the tensors the declared architecture
   needs: exactly those names, float32, those shapes, all finite.

It then rebuilds the rule in Python (``LoadedRule``, a ``CoordinatewiseLSTM``).
``saved_model.pb`` is never opened: its signatures exist for TF Serving,
``saved_model_cli`` and plain-TensorFlow users, who run the file's graph by choice.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.rules import (
    CoordinatewiseLSTM,
    RuleConfig,
    RuleWeightsError,
    check_weight_values,
)

FORMAT = "l2l_tf.rule"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
METADATA_ASSET = "l2l_tf_rule.json"
RULE_TYPE = "coordinatewise_lstm"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
MAX_INDEX_BYTES = 1 << 16  # the index of a rule's 2L + 2 tensors is under 1 KB
MAX_EXTRA_DATA_BYTES = 1 << 20  # the object graph stored beside the weights


class RuleLoadError(ValueError):
    """A path is not a loadable l2l_tf rule; the message says why and what to do."""


def weight_keys(config: RuleConfig) -> list[str]:
    """Checkpoint keys of the rule's weights (``RuleConfig.weight_names`` order), as
    ``tf.saved_model.save`` names the variables of a module whose attribute ``rule`` is
    the ``CoordinatewiseLSTM``."""
    return [f"rule/{name}/.ATTRIBUTES/VARIABLE_VALUE" for name in config.weight_names()]


def _require(condition: bool, path: str, problem: str) -> None:
    if not condition:
        raise RuleLoadError(f"{path}: invalid rule metadata: {problem}; re-export the rule with train.export")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_metadata(metadata: Any, path: str) -> RuleConfig:
    """The ``RuleConfig`` that metadata read from ``path`` declares, after strict checks."""
    _require(isinstance(metadata, dict), path, "not a JSON object")
    _require(metadata.get("format") == FORMAT, path, f"'format' is not {FORMAT!r}")
    version = metadata.get("format_version")
    if not _is_int(version) or version not in SUPPORTED_FORMAT_VERSIONS:
        raise RuleLoadError(
            f"{path}: rule format version {version!r}; this l2l_tf reads {SUPPORTED_FORMAT_VERSIONS}."
            " Upgrade l2l_tf or re-export the rule"
        )
    rule = metadata.get("rule")
    _require(isinstance(rule, dict) and rule.get("type") == RULE_TYPE, path, f"'rule.type' is not {RULE_TYPE!r}")
    try:
        config = RuleConfig.from_dict({k: v for k, v in rule.items() if k != "type"})
    except (TypeError, ValueError) as error:
        raise RuleLoadError(f"{path}: invalid rule metadata: {error}") from error
    state_size = metadata.get("state_size")
    _require(_is_int(state_size), path, f"'state_size' must be an integer, got {state_size!r}")
    if state_size != config.state_size:
        raise RuleLoadError(
            f"{path}: metadata state_size {state_size} does not match its architecture"
            f" ({config.state_size}); re-export the rule with train.export"
        )
    for key in ("problem", "training", "evaluation"):
        _require(isinstance(metadata.get(key, {}), dict), path, f"{key!r} must be a JSON object")
    return config


def read_metadata(export_dir: str) -> dict[str, Any]:
    """Reads and checks the metadata asset of an exported rule (no graph is loaded)."""
    if not os.path.exists(export_dir):
        raise RuleLoadError(f"no such path {export_dir!r}: pass the folder written by train.export")
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        raise RuleLoadError(
            f"{export_dir!r} is not a SavedModel (no saved_model.pb). Pass an exported rule"
            " (train.export), not a meta-training run's save_path"
        )
    path = os.path.join(export_dir, "assets", METADATA_ASSET)
    if not os.path.isfile(path):
        raise RuleLoadError(f"{export_dir!r} is a SavedModel but not an l2l_tf rule (no assets/{METADATA_ASSET})")
    try:
        metadata = read_json(path, "rule metadata")
    except JsonFileError as error:
        raise RuleLoadError(f"unreadable rule metadata: {error}") from error
    check_metadata(metadata, path)
    return metadata


def _check_file_sizes(prefix: str, config: RuleConfig) -> None:
    index = prefix + ".index"
    if not os.path.isfile(index):
        raise RuleLoadError(f"{index}: missing; the rule's weights are gone (the SavedModel is corrupted)")
    if os.path.getsize(index) > MAX_INDEX_BYTES:
        raise RuleLoadError(f"{index}: {os.path.getsize(index)} bytes is far too large for a rule's index; refusing it")
    shards = glob.glob(glob.escape(prefix) + ".data-*")
    if not shards or not all(os.path.isfile(p) for p in shards):
        raise RuleLoadError(f"{prefix}.data-*: missing or not regular files; the SavedModel is corrupted")
    data = sum(os.path.getsize(p) for p in shards)
    limit = 4 * sum(int(np.prod(s)) for s in config.weight_shapes()) + MAX_EXTRA_DATA_BYTES
    if data > limit:
        raise RuleLoadError(f"{prefix}.data-*: {data} bytes, more than a {config} rule can need ({limit}); refusing it")


def read_weights(export_dir: str, config: RuleConfig) -> list[np.ndarray]:
    """The rule's weight tensors, read as data from ``export_dir/variables`` and checked."""
    prefix = os.path.join(export_dir, "variables", "variables")
    _check_file_sizes(prefix, config)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as error:  # the C++ reader raises several types on corrupted files
        raise RuleLoadError(f"{export_dir!r}: the rule's weights are unreadable, the SavedModel is corrupted"
                            f" ({str(error)[:300]})") from error
    keys = weight_keys(config)
    unexpected = sorted(set(shapes) - set(keys) - {OBJECT_GRAPH_KEY})
    missing = sorted(set(keys) - set(shapes))
    if missing or unexpected:
        raise RuleLoadError(
            f"{export_dir!r}: its variables are not those of a {config.num_layers}x{config.hidden_size} rule"
            f" (missing {missing[:4]}, unexpected {unexpected[:4]}); not an l2l_tf rule export"
        )
    for key, shape in zip(keys, config.weight_shapes()):
        if dtypes[key] != tf.float32 or tuple(shapes[key]) != shape:
            raise RuleLoadError(f"{export_dir!r}: weight {key} is {dtypes[key].name} {shapes[key]},"
                                f" expected float32 {list(shape)}")
    try:
        return [reader.get_tensor(key) for key in keys]
    except Exception as error:
        raise RuleLoadError(f"{export_dir!r}: the rule's weights are unreadable ({str(error)[:300]})") from error


def check_weights(config: RuleConfig, values: Sequence[Any], source: str) -> list[np.ndarray]:
    """``rules.check_weight_values``, failing with a ``RuleLoadError``."""
    try:
        return check_weight_values(config, values, source)
    except RuleWeightsError as error:
        raise RuleLoadError(str(error)) from error


class LoadedRule(CoordinatewiseLSTM):
    """A rule rebuilt in Python from checked weights; ``path`` says where they came from
    (the exported folder, or a description of a ``.keras`` config), ``metadata`` is the
    export's metadata (``{}`` for a ``.keras`` config)."""

    def __init__(self, config: RuleConfig, values: Sequence[Any], source: str,
                 metadata: dict[str, Any] | None = None):
        arrays = check_weights(config, values, source)
        super().__init__(config, name="loaded_rule")
        self.set_weights(arrays, source)
        self.path = source
        self.metadata = metadata or {}


def load(export_dir: str) -> LoadedRule:
    """Loads an exported rule without executing anything from it (see the module doc)."""
    metadata = read_metadata(export_dir)
    config = check_metadata(metadata, export_dir)
    return LoadedRule(config, read_weights(export_dir, config), export_dir, metadata)
