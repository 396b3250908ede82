"""How a ``LearnedOptimizer`` travels in ``.keras`` files: its rule (or rule set) in the
config, the rule's weights from the weights file, and its checked settings."""

from __future__ import annotations

import warnings
from typing import Any

from l2l_tf import rule_families, rule_file, rule_sets
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule

SOURCE = "the LearnedOptimizer config (.keras file)"


def block_size(coordinate_block_size: Any, chunk_size: Any) -> int:
    """The checked ``coordinate_block_size``, or the deprecated ``chunk_size`` (with a warning)."""
    if chunk_size is not None:
        warnings.warn("LearnedOptimizer(chunk_size=...) is deprecated; use coordinate_block_size=..."
                      " (same meaning)", DeprecationWarning, stacklevel=3)
        if coordinate_block_size:
            raise ValueError("pass coordinate_block_size only (chunk_size is its deprecated name)")
        coordinate_block_size = chunk_size
    value = coordinate_block_size
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"coordinate_block_size must be 0 (one call) or a positive int, got {value!r}")
    return value


def _single_rule(spec: Any) -> tuple[Rule, bool]:
    """The rule of a ``.keras`` optimizer config and whether its weights are still to come
    (``load_own_variables``): the compact config holds only the architecture, an older
    one also the weights, checked before anything of that size is allocated."""
    source = SOURCE
    if not isinstance(spec, dict) or "config" not in spec:
        raise rule_file.RuleLoadError(f"{source}: no 'rule' with a 'config'; save the model again")
    try:  # configs written before families hold an LSTM's
        config = rule_families.config_from_dict(spec["config"], spec.get("family", rule_families.DEFAULT_FAMILY))
    except ValueError as error:
        raise rule_file.RuleLoadError(f"{source}: {error}") from error
    if "weights" not in spec:
        return rule_families.make_rule(config), True
    return rule_file.rebuild(config, spec["weights"], source), False


def rule_from_config(config: dict[str, Any]) -> tuple[Rule | RuleSet, bool]:
    """Pops the rule (``rule``) or rule set (``rule_set``) from a ``.keras`` optimizer config:
    ``(rule, whether its weights are still to come)`` (``load_own_variables``)."""
    if "rule_set" not in config:
        return _single_rule(config.pop("rule", None))
    try:
        return rule_sets.from_description(config.pop("rule_set"), SOURCE), True
    except ValueError as error:
        raise rule_file.RuleLoadError(str(error)) from error


def rule_to_config(rule: Rule | RuleSet) -> dict[str, Any]:
    """The config entry of ``rule``: its architecture (a rule set: ``RuleSet.to_dict``)."""
    if isinstance(rule, RuleSet):
        return {"rule_set": rule.to_dict()}
    return {"rule": {"family": rule_families.family_of(rule.config), "config": rule.config.to_dict()}}


def with_weights(rule: Rule | RuleSet, values: list, source: str) -> Rule | RuleSet:
    """``rule`` with the weights of a ``.keras`` weights file (checked against its architecture):
    a ``LoadedRule``, or the rule set with every rule's weights set."""
    if not isinstance(rule, RuleSet):
        return rule_file.rebuild(rule.config, values, source)
    try:
        rule_sets.set_weights(rule, values, source)
    except ValueError as error:
        raise rule_file.RuleLoadError(str(error)) from error
    return rule
