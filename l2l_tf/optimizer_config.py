"""How a ``LearnedOptimizer``'s settings are read: the checked ``coordinate_block_size`` and the
rule (or rule set) of a ``.keras`` optimizer config."""

from __future__ import annotations

import warnings
from typing import Any

from l2l_tf import rule_families, rule_file, rule_sets
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule


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


def rule_from_config(spec: Any) -> tuple[Rule, bool]:
    """The rule of a ``.keras`` optimizer config and whether its weights are still to come
    (``load_own_variables``): the compact config holds only the architecture, an older
    one also the weights, checked before anything of that size is allocated."""
    source = "the LearnedOptimizer config (.keras file)"
    if not isinstance(spec, dict) or "config" not in spec:
        raise rule_file.RuleLoadError(f"{source}: no 'rule' with a 'config'; save the model again")
    try:  # configs written before families hold an LSTM's
        config = rule_families.config_from_dict(spec["config"], spec.get("family", rule_families.DEFAULT_FAMILY))
    except ValueError as error:
        raise rule_file.RuleLoadError(f"{source}: {error}") from error
    if "weights" not in spec:
        return rule_families.make_rule(config), True
    return rule_file.rebuild(config, spec["weights"], source), False


def rule_set_from_config(spec: Any) -> RuleSet:
    """The rule set of a ``.keras`` optimizer config (weights to come: ``load_own_variables``)."""
    try:
        return rule_sets.from_description(spec, "the LearnedOptimizer config (.keras file)")
    except ValueError as error:
        raise rule_file.RuleLoadError(str(error)) from error
