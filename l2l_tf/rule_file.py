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

It then rebuilds the rule in Python (``rebuild``: a ``LoadedRule``, i.e. a
``CoordinatewiseLSTM``, or a rule of another family, e.g. ``rules_mlp.MLPRule``, as the
rule's ``type`` and the file's ``family`` say; files written before families are LSTM
rules), or for a multi-rule file (format version 2) a ``rule_sets.RuleSet`` of them.
``saved_model.pb`` is never opened: its signatures exist for TF Serving,
``saved_model_cli`` and plain-TensorFlow users, who run the file's graph by choice.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import rule_families, rule_sets
from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import (
    CoordinatewiseLSTM,
    Rule,
    RuleConfig,
    RuleWeightsError,
    check_weight_values,
)

FORMAT = "l2l_tf.rule"
FORMAT_VERSION = 1  # one rule (what every single-rule export still writes)
RULE_SET_FORMAT_VERSION = 2  # several named rules and their assignment (rule_sets.RuleSet)
SUPPORTED_FORMAT_VERSIONS = (1, 2)
SINGLE_PREFIX = "rule"  # checkpoint prefix of a version-1 file's weights
METADATA_ASSET = "l2l_tf_rule.json"
RULE_TYPE = rule_families.RULE_TYPES["lstm"]
FAMILY_OF_TYPE = {rule_type: family for family, rule_type in rule_families.RULE_TYPES.items()}
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
MAX_INDEX_BYTES = 1 << 16  # the index of a rule's 2L + 2 tensors is under 1 KB
MAX_EXTRA_DATA_BYTES = 1 << 20  # the object graph stored beside the weights


class RuleLoadError(ValueError):
    """A path is not a loadable l2l_tf rule; the message says why and what to do."""


def weight_keys(config: Any, prefix: str = SINGLE_PREFIX) -> list[str]:
    """Checkpoint keys of the rule's weights (``config.weight_names()`` order), as
    ``tf.saved_model.save`` names the variables of a module whose attribute ``rule`` is
    the rule (``prefix`` ``rules/<name>`` for a rule set's rule)."""
    return [f"{prefix}/{name}/.ATTRIBUTES/VARIABLE_VALUE" for name in config.weight_names()]


def set_prefix(name: str) -> str:
    """Checkpoint prefix of rule ``name``'s weights in a version-2 (multi-rule) file."""
    return f"rules/{name}"


def _require(condition: bool, path: str, problem: str) -> None:
    if not condition:
        raise RuleLoadError(f"{path}: invalid rule metadata: {problem}; re-export the rule with train.export")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_rule(rule: Any, state_size: Any, path: str, where: str) -> Any:
    """The config of one declared rule (``where``: its key in the metadata; its ``type`` names
    its family, ``rule_families.RULE_TYPES``) and its ``state_size``, checked."""
    rule_type = _get(rule, "type")
    _require(isinstance(rule_type, str) and rule_type in FAMILY_OF_TYPE, path,
             f"'{where}.type' is {rule_type!r}, not one of {sorted(FAMILY_OF_TYPE)} (upgrade l2l_tf?)")
    try:
        values = {k: v for k, v in rule.items() if k not in ("type", "state_size", "inputs")}
        config = rule_families.config_from_dict(values, FAMILY_OF_TYPE[rule_type])
    except (TypeError, ValueError) as error:
        raise RuleLoadError(f"{path}: invalid rule metadata: {where}: {error}") from error
    _require(_is_int(state_size), path, f"'state_size' must be an integer, got {state_size!r} (in {where!r})")
    if state_size != config.state_size:
        raise RuleLoadError(
            f"{path}: metadata state_size {state_size} does not match its architecture"
            f" ({config.state_size}) in {where!r}; re-export the rule with train.export"
        )
    return config


def declared_rules(metadata: dict[str, Any], path: str) -> dict[str, Any]:
    """The rules checked metadata declares, by checkpoint prefix: ``{"rule": config}`` (version
    1) or ``{"rules/<name>": config}`` in the rule set's order (version 2)."""
    if metadata["format_version"] == FORMAT_VERSION:
        config = _check_rule(metadata.get("rule"), metadata.get("state_size"), path, "rule")
        family = metadata.get("family", rule_families.DEFAULT_FAMILY)  # files before families: LSTM rules
        _require(family == rule_families.family_of(config), path,
                 f"'family' is {family!r} but 'rule.type' is {metadata['rule']['type']!r}")
        return {SINGLE_PREFIX: config}
    rules = metadata.get("rules")
    _require(isinstance(rules, dict) and 1 <= len(rules) <= rule_sets.MAX_RULES, path,
             f"'rules' must be an object of 1 to {rule_sets.MAX_RULES} rules")
    for name in rules:
        _require(bool(re.fullmatch(rule_sets.RULE_NAME, name)), path, f"rule name {name!r} must match {rule_sets.RULE_NAME}")
    try:
        rule_sets.check_assignment(metadata.get("assignment"), list(rules), path)
    except ValueError as error:
        raise RuleLoadError(f"{error}; re-export the rule with train.export") from error
    return {set_prefix(name): _check_rule(rule, _get(rule, "state_size"), path, f"rules.{name}") for name, rule in rules.items()}


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def check_metadata(metadata: Any, path: str) -> dict[str, Any]:
    """The rules that metadata read from ``path`` declares (``declared_rules``), after strict checks."""
    _require(isinstance(metadata, dict), path, "not a JSON object")
    _require(metadata.get("format") == FORMAT, path, f"'format' is not {FORMAT!r}")
    version = metadata.get("format_version")
    if not _is_int(version) or version not in SUPPORTED_FORMAT_VERSIONS:
        raise RuleLoadError(
            f"{path}: rule format version {version!r}; this l2l_tf reads {SUPPORTED_FORMAT_VERSIONS}."
            " Upgrade l2l_tf or re-export the rule"
        )
    declared = declared_rules(metadata, path)
    for key in ("problem", "training", "evaluation"):
        _require(isinstance(metadata.get(key, {}), dict), path, f"{key!r} must be a JSON object")
    return declared


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


def _check_file_sizes(prefix: str, configs: Sequence[Any]) -> None:
    index = prefix + ".index"
    if not os.path.isfile(index):
        raise RuleLoadError(f"{index}: missing; the rule's weights are gone (the SavedModel is corrupted)")
    if os.path.getsize(index) > MAX_INDEX_BYTES:
        raise RuleLoadError(f"{index}: {os.path.getsize(index)} bytes is far too large for a rule's index; refusing it")
    shards = glob.glob(glob.escape(prefix) + ".data-*")
    if not shards or not all(os.path.isfile(p) for p in shards):
        raise RuleLoadError(f"{prefix}.data-*: missing or not regular files; the SavedModel is corrupted")
    data = sum(os.path.getsize(p) for p in shards)
    limit = 4 * sum(int(np.prod(s)) for c in configs for s in c.weight_shapes()) + MAX_EXTRA_DATA_BYTES
    if data > limit:
        raise RuleLoadError(f"{prefix}.data-*: {data} bytes, more than {list(configs)} can need ({limit}); refusing it")


def read_weights(export_dir: str, declared: dict[str, Any]) -> dict[str, list[np.ndarray]]:
    """Each declared rule's weight tensors (by checkpoint prefix, ``declared_rules``), read as
    data from ``export_dir/variables`` and checked: exactly those tensors, float32, those shapes."""
    prefix = os.path.join(export_dir, "variables", "variables")
    _check_file_sizes(prefix, list(declared.values()))
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as error:  # the C++ reader raises several types on corrupted files
        raise RuleLoadError(f"{export_dir!r}: the rule's weights are unreadable, the SavedModel is corrupted"
                            f" ({str(error)[:300]})") from error
    expected = {key: shape for p, c in declared.items() for key, shape in zip(weight_keys(c, p), c.weight_shapes())}
    unexpected = sorted(set(shapes) - set(expected) - {OBJECT_GRAPH_KEY})
    missing = sorted(set(expected) - set(shapes))
    if missing or unexpected:
        described = ", ".join(_architecture(c) for c in declared.values())
        raise RuleLoadError(
            f"{export_dir!r}: its variables are not those of a {described} rule{' set' if len(declared) > 1 else ''}"
            f" (missing {missing[:4]}, unexpected {unexpected[:4]}); not an l2l_tf rule export"
        )
    for key, shape in expected.items():
        if dtypes[key] != tf.float32 or tuple(shapes[key]) != shape:
            raise RuleLoadError(f"{export_dir!r}: weight {key} is {dtypes[key].name} {shapes[key]},"
                                f" expected float32 {list(shape)}")
    try:
        return {p: [reader.get_tensor(key) for key in weight_keys(c, p)] for p, c in declared.items()}
    except Exception as error:
        raise RuleLoadError(f"{export_dir!r}: the rule's weights are unreadable ({str(error)[:300]})") from error


def _architecture(config: Any) -> str:
    """A short name of the architecture, for errors: ``2x20`` (LSTM) or ``mlp 1x8``."""
    if isinstance(config, RuleConfig):
        return f"{config.num_layers}x{config.hidden_size}"
    return f"{rule_families.family_of(config)} {config.num_hidden_layers}x{config.hidden_size}"


def check_weights(config: Any, values: Sequence[Any], source: str) -> list[np.ndarray]:
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
                 metadata: dict[str, Any] | None = None, name: str = "loaded_rule"):
        arrays = check_weights(config, values, source)
        super().__init__(config, name=name)
        self.set_weights(arrays, source)
        self.path = source
        self.metadata = metadata or {}


def rebuild(config: Any, values: Sequence[Any], source: str, metadata: dict[str, Any] | None = None,
            name: str = "loaded_rule") -> Rule:
    """A rule of ``config``'s family with the checked weights ``values`` (``RuleLoadError``
    naming ``source`` if they do not fit): a ``LoadedRule`` for an LSTM config; any rule
    gets ``path`` (``source``) and ``metadata`` attributes."""
    if isinstance(config, RuleConfig):
        return LoadedRule(config, values, source, metadata, name=name)
    arrays = check_weights(config, values, source)
    rule = rule_families.make_rule(config, name=name)
    rule.set_weights(arrays, source)
    rule.path, rule.metadata = source, metadata or {}
    return rule


def load(export_dir: str) -> Rule | RuleSet:
    """Loads an exported rule (version 1), or rule set (version 2: a ``RuleSet`` of
    ``LoadedRule``s with the stored assignment), without executing anything from it (see the
    module doc)."""
    metadata = read_metadata(export_dir)
    declared = check_metadata(metadata, export_dir)
    weights = read_weights(export_dir, declared)
    if metadata["format_version"] == FORMAT_VERSION:
        return rebuild(declared[SINGLE_PREFIX], weights[SINGLE_PREFIX], export_dir, metadata)
    rules = {
        name: rebuild(declared[set_prefix(name)], weights[set_prefix(name)], export_dir, metadata, name=name)
        for name in metadata["rules"]
    }
    return RuleSet(rules, metadata["assignment"])
