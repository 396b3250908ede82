"""Rule sets: several named rules in one optimizer, each parameter assigned to one of them.

The paper's conv-net optimizer (its CIFAR-10 section) has two coordinatewise LSTMs, one for
the convolution kernels and one for every other parameter. A ``RuleSet`` is that: a mapping
of names to ``rules.Rule``s plus an **assignment** of each trainable variable (by its path,
e.g. ``sequential/conv2d/kernel``, and shape) to one rule name::

    rules = RuleSet({"conv": CoordinatewiseLSTM(config, seed=0), "fc": CoordinatewiseLSTM(config, seed=1)})
    rules.assign(["sequential/conv2d/kernel", "sequential/dense/bias"], [(5, 5, 1, 16), (10,)])
    # -> ["conv", "fc"]

Assignments (``assignment=``):

- ``"conv_fc"`` (the default, the paper's mapping): a variable named ``kernel`` of rank >= 3
  (the kernels of Keras' Conv1D/2D/3D and their transposes) -> ``"conv"``; everything else
  (biases, BatchNormalization's offsets and scales, Dense kernels, embeddings) -> ``"fc"``.
- a ``{pattern: rule name}`` dict of ``fnmatch`` patterns on the variable path, tried in order
  (first match wins; a variable no pattern matches is an error, so end with ``"*"``), e.g.
  ``{"*conv*": "conv", "*": "fc"}``. Stored in exports and ``.keras`` files as it is.
- a Python callable ``(path, shape) -> rule name`` (used as is; it cannot be exported, so
  ``export`` asks for a name or a pattern dict instead).

Each rule steps only its own coordinates: ``bind`` gives a ``BoundRuleSet``, the ``CellRule``
over a fixed list of parameters (a problem's flat coordinates) that meta-training and
evaluation step, with **one rule call per rule per step**.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import rule_families
from l2l_tf.layout import (
    TensorLayout,
    check_blockable,
    needs_layout,
    needs_params,
    needs_progress,
    rule_step,
    rule_step_cells,
)
from l2l_tf.rules import (
    CellRule,
    CoordinatewiseLSTM,
    Rule,
    RuleConfig,
    RuleWeightsError,
)
from l2l_tf.sharding import CoordinateShards

CONV, FC = "conv", "fc"
CONV_FC = "conv_fc"
# --rule_set values: "single" is one rule for every parameter (a plain Rule, no set).
RULE_SETS = ("single", CONV_FC)
MAX_RULES = 16  # a stored rule set must not make l2l_tf allocate unboundedly (rules.MAX_*)
RULE_NAME = r"[A-Za-z][A-Za-z0-9_]{0,63}"
Assignment = str | Mapping[str, str] | Callable[[str, tuple[int, ...]], str]


class RuleSetError(ValueError):
    """A rule set or assignment that cannot work; the message names the rule or variable."""


def conv_fc(path: str, shape: Sequence[int]) -> str:
    """The paper's mapping: convolution kernels -> ``"conv"``, every other variable -> ``"fc"``."""
    return CONV if path.rsplit("/", 1)[-1] == "kernel" and len(shape) >= 3 else FC


NAMED_ASSIGNMENTS: dict[str, Callable[[str, tuple[int, ...]], str]] = {CONV_FC: conv_fc}


def _assigner(assignment: Assignment) -> Callable[[str, tuple[int, ...]], str]:
    if isinstance(assignment, str):
        if assignment not in NAMED_ASSIGNMENTS:
            raise RuleSetError(f"unknown assignment {assignment!r}; known: {sorted(NAMED_ASSIGNMENTS)} or a pattern dict")
        return NAMED_ASSIGNMENTS[assignment]
    if isinstance(assignment, Mapping):
        patterns = dict(assignment)

        def by_pattern(path: str, shape: tuple[int, ...]) -> str:
            del shape
            for pattern, name in patterns.items():
                if fnmatch.fnmatchcase(path, pattern):
                    return name
            raise RuleSetError(f"no pattern of the assignment {list(patterns)} matches variable {path!r}; add '*'")

        return by_pattern
    if callable(assignment):
        return assignment
    raise RuleSetError(f"an assignment is a name, a {{pattern: rule}} dict or a callable, got {type(assignment).__name__}")


class RuleSet(tf.Module):
    """Named ``Rule``s and the ``assignment`` of variables to them (see the module doc)."""

    def __init__(self, rules: Mapping[str, Rule], assignment: Assignment = CONV_FC, name: str | None = None):
        super().__init__(name=name or "rule_set")
        if not rules:
            raise RuleSetError("a rule set needs at least one rule")
        if len(rules) > MAX_RULES:
            raise RuleSetError(f"{len(rules)} rules; a rule set holds at most {MAX_RULES}")
        for rule_name, rule in rules.items():
            if not isinstance(rule_name, str) or not re.fullmatch(RULE_NAME, rule_name):
                raise RuleSetError(f"rule names must match {RULE_NAME} (they name signatures and weights), got {rule_name!r}")
            if not isinstance(rule, Rule):
                raise RuleSetError(f"rule {rule_name!r} is a {type(rule).__name__}, not an l2l_tf.rules.Rule")
        self.rules = dict(rules)
        self.assignment = assignment
        self._assign = _assigner(assignment)

    @property
    def names(self) -> list[str]:
        return list(self.rules)

    def assignment_spec(self) -> str | dict[str, str]:
        """The assignment as JSON (a name or a pattern dict); an error for a callable."""
        if isinstance(self.assignment, (str, Mapping)):
            return self.assignment if isinstance(self.assignment, str) else dict(self.assignment)
        raise RuleSetError(
            "this rule set's assignment is a Python callable, which cannot be stored; build the RuleSet"
            " with a named assignment ('conv_fc') or a {pattern: rule} dict to save or export it"
        )

    def assign(self, paths: Sequence[str], shapes: Sequence[Sequence[int]]) -> list[str]:
        """The rule name of each variable (``paths[i]``, ``shapes[i]``), checked."""
        names = [self._assign(path, tuple(int(d) for d in shape)) for path, shape in zip(paths, shapes)]
        for path, rule_name in zip(paths, names):
            if rule_name not in self.rules:
                raise RuleSetError(f"variable {path!r} is assigned to rule {rule_name!r}; this set has {self.names}")
        return names

    def bind(self, paths: Sequence[str], shapes: Sequence[Sequence[int]], num_shards: int = 1) -> BoundRuleSet:
        """The ``CellRule`` over these variables' concatenated coordinates (``num_shards``: each
        rule's coordinates cut into that many blocks run as parallel chains, ``sharding``)."""
        return BoundRuleSet(self, self.assign(paths, shapes), [math.prod(s) for s in shapes], num_shards)

    def weights(self) -> list[tf.Variable]:
        """Every rule's weights, rule after rule (``names`` order)."""
        return [w for rule in self.rules.values() for w in rule.weights()]

    def num_meta_parameters(self) -> int:
        return int(sum(v.shape.num_elements() for v in self.weights()))

    def to_dict(self) -> dict[str, Any]:
        """The set's JSON description: ``{"assignment": ..., "rules": {name: RuleConfig dict}}``."""
        return {"assignment": self.assignment_spec(), "rules": {n: r.config.to_dict() for n, r in self.rules.items()}}


def set_weights(rule_set: RuleSet, values: Sequence[Any], source: str) -> None:
    """Sets every rule's weights from ``values`` (``RuleSet.weights`` order: rule after rule),
    each rule's checked against its architecture (``rules.RuleWeightsError`` naming the weight)."""
    counts = [len(rule.config.weight_shapes()) for rule in rule_set.rules.values()]
    if not isinstance(values, (list, tuple)) or len(values) != sum(counts):
        count = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise RuleWeightsError(f"{source}: expected {sum(counts)} weight tensors for rules {rule_set.names}, got {count}")
    bounds = np.cumsum([0, *counts])
    for (name, rule), (a, b) in zip(rule_set.rules.items(), itertools.pairwise(bounds)):
        rule.set_weights(list(values[a:b]), f"{source}, rule {name!r}")


def check_assignment(assignment: Any, rule_names: Sequence[str], source: str) -> Assignment:
    """A stored assignment (a name of ``NAMED_ASSIGNMENTS`` or a pattern dict naming only
    ``rule_names``), checked; ``RuleSetError`` naming ``source`` otherwise."""
    if isinstance(assignment, str) and assignment in NAMED_ASSIGNMENTS:
        return assignment
    if not isinstance(assignment, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in assignment.items()):
        raise RuleSetError(f"{source}: 'assignment' must be one of {sorted(NAMED_ASSIGNMENTS)} or a {{pattern: rule}} object")
    if not set(assignment.values()) <= set(rule_names):
        raise RuleSetError(f"{source}: the assignment names rules {sorted(set(assignment.values()))}, the set has {list(rule_names)}")
    return assignment


def check_description(values: Any, source: str) -> tuple[Assignment, dict[str, RuleConfig]]:
    """The assignment and rule configs of a ``RuleSet.to_dict`` object read from ``source``
    (strictly checked: at most ``MAX_RULES`` rules, configs within ``rules.MAX_*``)."""
    if not isinstance(values, dict) or not isinstance(values.get("rules"), dict) or not values["rules"]:
        raise RuleSetError(f"{source}: a rule set needs a non-empty 'rules' object")
    if len(values["rules"]) > MAX_RULES:
        raise RuleSetError(f"{source}: {len(values['rules'])} rules; a rule set holds at most {MAX_RULES}")
    assignment = check_assignment(values.get("assignment"), list(values["rules"]), source)
    configs = {}
    for name, config in values["rules"].items():
        try:
            configs[name] = RuleConfig.from_dict({k: v for k, v in config.items() if k != "type"})
        except (AttributeError, TypeError, ValueError) as error:
            raise RuleSetError(f"{source}: rule {name!r}: {error}") from error
    return assignment, configs


def from_description(values: Any, source: str) -> RuleSet:
    """A ``RuleSet`` of fresh ``CoordinatewiseLSTM``s as ``values`` (``RuleSet.to_dict``) describes."""
    assignment, configs = check_description(values, source)
    return RuleSet({name: CoordinatewiseLSTM(config, name=name) for name, config in configs.items()}, assignment)


def make(kind: str, config: Any, seed: int = 0) -> Rule | RuleSet:
    """The rule(s) ``--rule_set=kind`` meta-trains, of ``config``'s family: one rule
    (``"single"``), or the paper's conv/FC pair (``"conv_fc"``), both initialised like the
    single rule of that seed (so the untrained set computes what the untrained single rule does)."""
    if kind == "single":
        return rule_families.make_rule(config, seed=seed)
    if kind == CONV_FC:
        return RuleSet({name: rule_families.make_rule(config, seed=seed, name=name) for name in (CONV, FC)}, CONV_FC)
    raise RuleSetError(f"unknown rule set {kind!r}; choose from {RULE_SETS}")


def warm_start(target: CoordinatewiseLSTM | RuleSet, source: CoordinatewiseLSTM | RuleSet) -> None:
    """``target``'s weights from ``source`` (``rule_families.warm_start`` rule by rule): a rule set from
    a single rule (each of its rules starts as it) or from a set with the same rule names."""
    if not isinstance(target, RuleSet):
        if isinstance(source, RuleSet):
            raise RuleSetError(f"cannot initialise a single rule from the rule set {source.names}; pass --rule_set")
        rule_families.warm_start(target, source)
        return
    if isinstance(source, RuleSet) and source.names != target.names:
        raise RuleSetError(f"cannot initialise rules {target.names} from rules {source.names}: the names must match")
    for name, rule in target.rules.items():
        rule_families.warm_start(rule, source.rules[name] if isinstance(source, RuleSet) else source)


def members(rule: Rule | RuleSet) -> list[Rule]:
    """The rules of a set, or ``[rule]``."""
    return list(rule.rules.values()) if isinstance(rule, RuleSet) else [rule]


def reads_progress(rule: Rule | RuleSet) -> bool:
    """Whether ``rule`` (one of a set's rules) reads its run's progress: its users must say how
    long the run is (``LearnedOptimizer(total_steps=...)``)."""
    return any(needs_progress(member) for member in members(rule))


def as_cell_rule(rule: Rule | RuleSet, paths: Sequence[str], shapes: Sequence[Sequence[int]],
                 num_shards: int = 1) -> CellRule:
    """What steps the coordinates of these variables: a ``Rule`` itself (as parallel blocks
    with ``num_shards > 1``), or a ``RuleSet`` bound to them."""
    if isinstance(rule, RuleSet):
        return rule.bind(paths, shapes, num_shards)
    if num_shards > 1:
        return CoordinateShards(rule, int(sum(math.prod(s) for s in shapes)), num_shards)
    return rule


def for_problem(rule: Rule | RuleSet, problem: Any, num_shards: int = 1) -> CellRule:
    """``as_cell_rule`` over a ``Problem``'s parameters (its flat coordinates)."""
    return as_cell_rule(rule, problem.param_names(), [tuple(s) for s in problem.param_shapes()], num_shards)


class BoundRuleSet(tf.Module):
    """A ``RuleSet`` over a fixed list of parameters: the ``CellRule`` stepping interface over
    their concatenated coordinates, each rule called once per step on its own coordinates.

    The state is ``[N, state_size]`` with the rows **grouped by rule** (the first rule's
    coordinates, then the next rule's ...; opaque to callers, who only pass it back), and
    ``state_size`` the widest rule's (a narrower rule uses the first columns of its rows).
    A rule that needs the layout (``layout.needs_layout``) gets that of its own tensors; the
    set needs ``params=`` (``progress=``) if one of its rules does.
    """

    needs_layout = False  # it knows its parameters' layout and gives each rule its part

    def __init__(self, rule_set: RuleSet, assigned: Sequence[str], sizes: Sequence[int], num_shards: int = 1):
        super().__init__(name="bound_rule_set")
        for rule in rule_set.rules.values():
            check_blockable(rule, f"coordinate blocks ({num_shards})", num_shards > 1)
        self.rule_set, self.sizes = rule_set, [int(s) for s in sizes]
        self.needs_params = any(needs_params(rule) for rule in rule_set.rules.values())
        self.needs_progress = any(needs_progress(rule) for rule in rule_set.rules.values())
        groups = {name: [i for i, a in enumerate(assigned) if a == name] for name in rule_set.names}
        self.groups = {name: members for name, members in groups.items() if members}
        self.group_sizes = [sum(self.sizes[i] for i in members) for members in self.groups.values()]
        self.steppers = [
            as_cell_rule(rule_set.rules[name], [name], [(n,)], min(num_shards, n))
            for name, n in zip(self.groups, self.group_sizes)
        ]
        self.state_size = max(rule.state_size for rule in rule_set.rules.values())
        self._cell_counts = [
            len(rule.split_state(tf.zeros([n, rule.state_size]))) for rule, n in zip(self.steppers, self.group_sizes)
        ]
        self.layouts = [
            TensorLayout([self.sizes[i] for i in members]) if needs_layout(rule) else None
            for rule, members in zip(self.steppers, self.groups.values())
        ]

    def _params(self, params: tf.Tensor | None) -> list[tf.Tensor | None]:
        return [None] * len(self.steppers) if params is None else self.group(params)

    @property
    def num_coordinates(self) -> int:
        return sum(self.sizes)

    def init_state(self, num_coordinates: int | tf.Tensor) -> tf.Tensor:
        """Zero state ``[N, state_size]``; ``N`` must be ``num_coordinates``."""
        return tf.zeros(tf.stack([num_coordinates, self.state_size]), tf.float32)

    def group(self, flat: tf.Tensor) -> list[tf.Tensor]:
        """A ``[N, ...]`` tensor in parameter order -> one ``[n_k, ...]`` tensor per rule."""
        parts = tf.split(flat, self.sizes) if len(self.sizes) > 1 else [flat]
        return [tf.concat([parts[i] for i in members], 0) for members in self.groups.values()]

    def ungroup(self, grouped: Sequence[tf.Tensor]) -> tf.Tensor:
        """Inverse of ``group``: the rules' ``[n_k, ...]`` tensors back in parameter order."""
        parts: list[Any] = [None] * len(self.sizes)
        for members, tensor in zip(self.groups.values(), grouped):
            for i, part in zip(members, tf.split(tensor, [self.sizes[i] for i in members])):
                parts[i] = part
        return tf.concat(parts, 0)

    def _state_blocks(self, state: tf.Tensor) -> list[tf.Tensor]:
        blocks = tf.split(state, self.group_sizes) if len(self.group_sizes) > 1 else [state]
        return [block[:, : rule.state_size] for block, rule in zip(blocks, self.steppers)]

    def _join_blocks(self, blocks: Sequence[tf.Tensor]) -> tf.Tensor:
        padded = [tf.pad(b, [[0, 0], [0, self.state_size - rule.state_size]]) for b, rule in zip(blocks, self.steppers)]
        return tf.concat(padded, 0)

    def step(self, gradients: tf.Tensor, state: tf.Tensor, params: tf.Tensor | None = None,
             progress: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """One step of every rule on its coordinates: ``([N] update, [N, state_size] state)``."""
        inputs = zip(self.steppers, self.group(gradients), self._state_blocks(state), self.layouts, self._params(params))
        results = [rule_step(rule, g, s, layout, p, progress=progress) for rule, g, s, layout, p in inputs]
        return self.ungroup([u for u, _ in results]), self._join_blocks([s for _, s in results])

    def split_state(self, state: tf.Tensor) -> list[tf.Tensor]:
        """Every rule's cells (``split_state`` of its rows), rule after rule."""
        blocks = self._state_blocks(state)
        return [cell for rule, block in zip(self.steppers, blocks) for cell in rule.split_state(block)]

    def _cells_per_rule(self, cells: Sequence[tf.Tensor]) -> list[list[tf.Tensor]]:
        bounds = np.cumsum([0, *self._cell_counts])
        return [list(cells[a:b]) for a, b in itertools.pairwise(bounds)]

    def join_state(self, cells: Sequence[tf.Tensor]) -> tf.Tensor:
        """Inverse of ``split_state``."""
        per_rule = self._cells_per_rule(cells)
        return self._join_blocks([rule.join_state(c) for rule, c in zip(self.steppers, per_rule)])

    def step_cells(
        self, gradients: tf.Tensor, cells: list[tf.Tensor], params: tf.Tensor | None = None,
        progress: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``step`` on the cells of ``split_state``."""
        updates, new_cells = [], []
        inputs = zip(self.steppers, self.group(gradients), self._cells_per_rule(cells), self.layouts, self._params(params))
        for rule, g, c, layout, p in inputs:
            update, c = rule_step_cells(rule, g, c, layout, p, progress)
            updates.append(update)
            new_cells += c
        return self.ungroup(updates), new_cells

    def weights(self) -> list[tf.Variable]:
        return self.rule_set.weights()
