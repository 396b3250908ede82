"""The shipped learned optimizers: lookup by name, and what each one is for.

    LearnedOptimizer.load("mnist_lstm_momentum")   # a shipped rule, by name
    LearnedOptimizer.load("runs/my_rule")          # any exported rule folder, by path

The rules live in the repository's ``saved_optimizers/`` folder; an installed
``l2l_tf`` carries the same folder as package data (``l2l_tf/saved_optimizers``, mapped
there by ``setup.py``), so names work from a checkout and from ``pip install`` alike.
``l2l-optimizers`` (or ``python -m l2l_tf.cli.optimizers``) prints the list.
"""

from __future__ import annotations

import dataclasses
import json
import os

METADATA_FILE = os.path.join("assets", "l2l_tf_rule.json")
# Rule types (the metadata's ``rule.type``) whose state must stay float32 (their class sets
# ``state_needs_float32``: a step count in the state).
FLOAT32_STATE_RULE_TYPES = ("per_parameter_mlp",)

# What each shipped rule is for, in words (the numbers below are read from its metadata).
PURPOSES = {
    "quadratic_lstm": "the paper's quadratic experiment; a demonstration rule, not for neural networks",
    "mnist_lstm": "the paper's MNIST rule: small sigmoid MLPs, 100-200 steps; behind tuned Adam on ReLU MLPs",
    "mnist_lstm_momentum": "the best shipped rule for small sigmoid MLPs, 100-200 steps (momentum features,"
                           " beyond the paper); behind tuned Adam on ReLU MLPs",
    "general": "the general-purpose learned rule (per-parameter MLP on Adam's direction, beyond the paper) for"
               " models no rule was trained on: below Adam(1e-3) on all 10 held-out tasks, level with a fixed"
               " Adam(1e-2), behind tuned baselines on 8",
    "conv_lstm": "the paper's conv-net optimizer (separate conv/FC LSTMs, momentum features): small conv nets"
                 " with BatchNorm, 100-200 steps",
    "neural_art_lstm": "style transfer (the paper's neural-art experiment): the image is the optimizee, 128 steps;"
                       " use it with l2l-stylize",
}


@dataclasses.dataclass(frozen=True)
class ShippedOptimizer:
    """One shipped rule: its name, folder, purpose and the facts its metadata records."""

    name: str
    path: str
    purpose: str
    trained_on: str
    horizon: int
    state_size: int
    bfloat16_state: bool = True
    shortest_run: int = 0  # with sampled run lengths (meta_train --min_num_steps): the shortest; else 0
    reads_progress: bool = False  # told how far through its run it is: LearnedOptimizer needs total_steps=

    def load_snippet(self) -> str:
        """The line that makes this optimizer."""
        told = ", total_steps=EPOCHS * STEPS_PER_EPOCH" if self.reads_progress else ""
        return f"LearnedOptimizer.load({self.name!r}{told})"

    @property
    def runs(self) -> str:
        """The meta-training runs' length in steps: ``"200"``, or a range ``"100-1000"``."""
        return f"{self.shortest_run}-{self.horizon}" if self.shortest_run else str(self.horizon)

    def describe(self) -> str:
        storage = "" if self.bfloat16_state else " (float32 only)"
        return (f"{self.name}: {self.purpose}. Meta-trained on {self.trained_on}, runs of {self.runs} steps;"
                f" {self.state_size} state floats per parameter{storage}.")


def shipped_dir() -> str:
    """The folder of shipped rules: inside the installed package, else the checkout's."""
    package = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(package, "saved_optimizers"), os.path.join(os.path.dirname(package), "saved_optimizers")):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        "no shipped optimizers found (neither l2l_tf/saved_optimizers nor a checkout's saved_optimizers/);"
        " reinstall l2l_tf, or pass the path of an exported rule folder"
    )


def names() -> list[str]:
    """Names of the shipped rules, sorted."""
    return sorted(PURPOSES)


def _describe_problem(problem: dict) -> str:
    if "problems" in problem:  # a task distribution
        kinds = {"MLPs" if "activation" in p else "conv nets" if "channels" in p else "quadratics"
                 for p in problem["problems"]}
        return f"{problem.get('name', '?')}: {len(problem['problems'])} tasks ({', '.join(sorted(kinds))})"
    if problem.get("name") == "quadratic":
        return "random 10-d quadratics"
    if "hidden" in problem:
        sizes = "-".join(str(h) for h in problem["hidden"])
        return f"{str(problem['name']).upper()} MLP 784-{sizes}-10 ({problem.get('activation', '?')})"
    if "architecture" in problem:
        return f"{problem.get('name', '?')}: {problem['architecture']}"
    return str(problem.get("name", "?"))


def get(name: str) -> ShippedOptimizer:
    """The shipped rule called ``name``; a ``KeyError`` naming the choices otherwise."""
    if name not in PURPOSES:
        raise KeyError(f"no shipped optimizer named {name!r}; shipped: {', '.join(names())}")
    path = os.path.join(shipped_dir(), name)
    with open(os.path.join(path, METADATA_FILE)) as f:
        metadata = json.load(f)
    training = metadata.get("training", {})
    return ShippedOptimizer(
        name=name, path=path, purpose=PURPOSES[name], trained_on=_describe_problem(metadata.get("problem", {})),
        horizon=int(training.get("num_steps", 0)), state_size=_state_size(metadata),
        bfloat16_state=not any(rule.get("type") in FLOAT32_STATE_RULE_TYPES for rule in rule_configs(metadata)),
        shortest_run=int(training.get("min_num_steps") or 0),
        reads_progress=any(rule.get("progress_input") for rule in rule_configs(metadata)),
    )


def rule_configs(metadata: dict) -> list[dict]:
    """The configs of the folder's rule, or of each of its rules (format 2)."""
    return list(metadata["rules"].values()) if "rules" in metadata else [metadata.get("rule", {})]


def _state_size(metadata: dict) -> int:
    """State floats per parameter: the rule's, or with several rules (format 2) the largest."""
    if "rules" in metadata:
        return max(int(rule["state_size"]) for rule in rule_configs(metadata))
    return int(metadata["state_size"])


def list_optimizers() -> list[ShippedOptimizer]:
    """Every shipped rule with what it is for (``describe()`` gives one line each)."""
    return [get(name) for name in names()]


def resolve(name_or_path: str) -> str:
    """``name_or_path`` itself if it exists or is a path (the loader then says what is
    missing), else the folder of the shipped rule of that name.

    Raises ``FileNotFoundError`` naming the shipped rules for an unknown bare name."""
    path = os.fspath(name_or_path)
    if os.path.exists(path) or os.sep in path or (os.altsep and os.altsep in path):
        return path
    if path in PURPOSES:
        return get(path).path
    raise FileNotFoundError(
        f"{path!r} is neither an existing rule folder nor a shipped optimizer name;"
        f" shipped: {', '.join(names())} (l2l-optimizers lists what each is for)"
    )
