"""The rule families: which config and rule classes a family name means.

``lstm`` is the paper's coordinatewise LSTM (``rules.CoordinatewiseLSTM``), ``mlp`` the
cheap per-parameter MLP over Adam (``rules_mlp.MLPRule``). Rule files, rule checkpoints and
``.keras`` optimizer configs record the family; ones written before families existed have
none and are LSTM rules (``DEFAULT_FAMILY``).
"""

from __future__ import annotations

from typing import Any

from l2l_tf import rules, rules_mlp
from l2l_tf.rules import CoordinatewiseLSTM, Rule, RuleConfig, RuleConfigError
from l2l_tf.rules_mlp import MLPRule, MLPRuleConfig

DEFAULT_FAMILY = "lstm"
FAMILIES: dict[str, tuple[type, type]] = {
    "lstm": (RuleConfig, CoordinatewiseLSTM),
    "mlp": (MLPRuleConfig, MLPRule),
}
# The metadata's ``rule.type`` of each family (format version 1 named the LSTM's so).
RULE_TYPES = {"lstm": "coordinatewise_lstm", "mlp": "per_parameter_mlp"}
WARM_STARTS = {"lstm": rules.warm_start, "mlp": rules_mlp.warm_start}


def family_of(config: Any) -> str:
    """The family of a rule config (or of a rule, through its ``config``)."""
    config = getattr(config, "config", config)
    return getattr(config, "family", DEFAULT_FAMILY)


def check_family(family: Any) -> str:
    """``family`` if it names a known family; ``RuleConfigError`` naming the known ones otherwise."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise RuleConfigError(f"unknown rule family {family!r}; known: {sorted(FAMILIES)} (upgrade l2l_tf?)")
    return family


def config_from_dict(values: Any, family: Any = DEFAULT_FAMILY) -> Any:
    """The ``family``'s config from its ``to_dict`` object (``RuleConfigError`` if invalid)."""
    return FAMILIES[check_family(family)][0].from_dict(values)


def make_rule(config: Any, seed: int = 0, name: str | None = None) -> Rule:
    """A fresh rule of ``config``'s family and architecture."""
    return FAMILIES[family_of(config)][1](config, seed=seed, name=name)


def warm_start(rule: Rule, source: Rule) -> None:
    """Initialises ``rule`` with ``source``'s weights (its family's ``warm_start``: which
    architecture differences it bridges); ``ValueError`` across families."""
    mine, theirs = family_of(rule), family_of(source)
    if mine != theirs:
        raise ValueError(f"cannot initialise a rule of family {mine!r} from one of family {theirs!r}")
    WARM_STARTS[mine](rule, source)
