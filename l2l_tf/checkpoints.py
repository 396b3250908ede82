"""Saving and restoring rules: tf.train.Checkpoint files plus a JSON config, written atomically."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from typing import Any

import tensorflow as tf

from l2l_tf import rule_families, rule_sets
from l2l_tf.json_files import JsonFileError, read_json
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule

RULE_CONFIG_FILE = "rule_config.json"
RULE_PREFIX = "rule"


class RuleCheckpointError(ValueError):
    """A rule checkpoint folder is missing or unreadable; the message names the file."""


def build_prefix(target: str) -> str:
    """Prefix of the temporary sibling folder in which ``target``'s new copy is built."""
    return f".tmp-{os.path.basename(os.path.normpath(target))}-"


def _aside_prefix(target: str) -> str:
    return f".old-{os.path.basename(os.path.normpath(target))}-"


def replace_directory(build_dir: str, target: str) -> None:
    """Moves fully written ``build_dir`` to ``target``, replacing it without a window
    in which ``target`` is half-written (the old copy is moved aside first; a crash
    between the two renames is undone by ``recover_directory``)."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=_aside_prefix(target), dir=os.path.dirname(os.path.abspath(target)))
        os.rmdir(old)
        os.replace(target, old)
    os.replace(build_dir, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def recover_directory(target: str) -> str | None:
    """Repairs what a crash inside ``replace_directory`` left: if ``target`` is missing but
    its moved-aside copy exists, moves it back; deletes leftover temporary folders of
    ``target``. Returns a line saying what was done, or ``None``."""
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        return None
    asides = sorted(glob.glob(os.path.join(glob.escape(parent), glob.escape(_aside_prefix(target)) + "*")),
                    key=os.path.getmtime)
    builds = glob.glob(os.path.join(glob.escape(parent), glob.escape(build_prefix(target)) + "*"))
    message = None
    if asides and not os.path.exists(target):
        os.replace(asides.pop(), target)
        message = f"recovered {target} from the copy an interrupted replacement had moved aside"
    for leftover in asides + builds:
        shutil.rmtree(leftover, ignore_errors=True)
    if message is None and asides + builds:
        message = f"removed {len(asides + builds)} leftover temporary folder(s) of {target}"
    return message


def save_rule(rule: Rule | RuleSet, directory: str, extra: dict[str, Any] | None = None) -> str:
    """Writes ``rule``'s weights and config (a rule set: ``rule_set``, its ``to_dict``) to
    ``directory`` atomically."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix=build_prefix(directory), dir=parent)
    try:
        tf.train.Checkpoint(rule=rule).write(os.path.join(build_dir, RULE_PREFIX))
        with open(os.path.join(build_dir, RULE_CONFIG_FILE), "w") as f:
            described = {"rule_set": rule.to_dict()} if isinstance(rule, RuleSet) else {
                "family": rule_families.family_of(rule.config), "rule": rule.config.to_dict()}
            json.dump({**described, **(extra or {})}, f, indent=1)
        replace_directory(build_dir, directory)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    return directory


def read_rule_metadata(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, RULE_CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory!r} holds no l2l_tf rule checkpoint (no {RULE_CONFIG_FILE}); pass the"
            " folder of a meta-training run (its save_path) or its 'best' folder"
        )
    try:
        metadata = read_json(path, "rule config")
    except JsonFileError as error:
        raise RuleCheckpointError(f"{error}; restore the file or re-run meta_train") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("rule", metadata.get("rule_set")), dict):
        raise RuleCheckpointError(f"{path}: no 'rule' object in it; restore the file or re-run meta_train")
    return metadata


def resolve_rule_dir(path: str) -> str:
    """Accepts a rule directory or a meta-training run folder (whose ``best`` it uses)."""
    if os.path.isfile(os.path.join(path, RULE_CONFIG_FILE)):
        return path
    best = os.path.join(path, "best")
    if not os.path.exists(best):
        recover_directory(best)
    if os.path.isfile(os.path.join(best, RULE_CONFIG_FILE)):
        return best
    raise FileNotFoundError(
        f"no trained rule at {path!r}: expected {RULE_CONFIG_FILE} there or in {path}/best"
        " (meta-train a rule into that folder first)"
    )


def load_rule(path: str) -> Rule | RuleSet:
    """Restores a rule (or rule set) saved by ``save_rule`` (or the best of a meta-training run folder)."""
    directory = resolve_rule_dir(path)
    metadata = read_rule_metadata(directory)
    source = os.path.join(directory, RULE_CONFIG_FILE)
    try:
        if "rule_set" in metadata:
            rule = rule_sets.from_description(metadata["rule_set"], source)
        else:
            family = metadata.get("family", rule_families.DEFAULT_FAMILY)  # saved before families: LSTM
            rule = rule_families.make_rule(rule_families.config_from_dict(metadata["rule"], family))
    except (TypeError, ValueError) as error:
        raise RuleCheckpointError(f"{source}: bad rule config ({error})") from error
    try:
        tf.train.Checkpoint(rule=rule).read(os.path.join(directory, RULE_PREFIX)).assert_consumed()
    except (tf.errors.OpError, AssertionError, ValueError) as error:
        raise RuleCheckpointError(
            f"{os.path.join(directory, RULE_PREFIX)}: unreadable rule weights ({str(error)[:200]});"
            " restore the files or re-run meta_train"
        ) from error
    return rule
