"""Saving and restoring rules: tf.train.Checkpoint files plus a JSON config, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import tensorflow as tf

from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig

RULE_CONFIG_FILE = "rule_config.json"
RULE_PREFIX = "rule"


def replace_directory(build_dir: str, target: str) -> None:
    """Moves fully written ``build_dir`` to ``target``, replacing it without a window
    in which ``target`` is half-written (the old copy is moved aside first)."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(target)))
        os.rmdir(old)
        os.replace(target, old)
    os.replace(build_dir, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def save_rule(rule: CoordinatewiseLSTM, directory: str, extra: dict[str, Any] | None = None) -> str:
    """Writes ``rule``'s weights and config to ``directory`` atomically."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix=".tmp-rule-", dir=parent)
    try:
        tf.train.Checkpoint(rule=rule).write(os.path.join(build_dir, RULE_PREFIX))
        with open(os.path.join(build_dir, RULE_CONFIG_FILE), "w") as f:
            json.dump({"rule": rule.config.to_dict(), **(extra or {})}, f, indent=1)
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
            " directory that meta_train wrote with --save_path (its 'best' folder) or its parent"
        )
    with open(path) as f:
        return json.load(f)


def resolve_rule_dir(path: str) -> str:
    """Accepts a rule directory or a meta_train ``--save_path`` (whose ``best`` it uses)."""
    if os.path.isfile(os.path.join(path, RULE_CONFIG_FILE)):
        return path
    best = os.path.join(path, "best")
    if os.path.isfile(os.path.join(best, RULE_CONFIG_FILE)):
        return best
    raise FileNotFoundError(
        f"no trained rule at {path!r}: expected {RULE_CONFIG_FILE} there or in {path}/best"
        " (run train.meta_train --save_path=... first)"
    )


def load_rule(path: str) -> CoordinatewiseLSTM:
    """Restores a rule saved by ``save_rule`` (or a meta_train ``--save_path``)."""
    directory = resolve_rule_dir(path)
    config = RuleConfig.from_dict(read_rule_metadata(directory)["rule"])
    rule = CoordinatewiseLSTM(config)
    tf.train.Checkpoint(rule=rule).read(os.path.join(directory, RULE_PREFIX)).assert_consumed()
    return rule
