"""One typed run configuration for meta-training: what a run computes, and how it is scheduled.

``RunConfig`` holds a ``Computation`` (the problem, the rule, the meta-objective: a resumed
run must compute the same) and a ``Schedule`` (epochs, XLA, recomputation, coordinate
blocks, distribution: none of them changes the values computed, so they may change when a
run resumes). "May change on resume" is therefore a type, not a list of keys.

It is serialised in one place (``to_dict`` / ``from_dict``) as the flat JSON object of
``run_config.json`` and of ``best/rule_config.json``'s ``run_config`` (and so of an exported
rule's ``training`` metadata), with ``schema_version``. Files written before the schema
existed (version 1: no ``schema_version``, settings added later missing) read the same way:
a missing setting takes the value those runs used, which is its field's default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SCHEMA_VERSION = 2
# The keys of run_config.json that are neither Computation nor Schedule fields.
COMMAND, PROBLEM_DESCRIPTION = "command", "problem_description"


class RunConfigError(ValueError):
    """A stored run configuration that this l2l_tf cannot read; the message says why."""


@dataclasses.dataclass(frozen=True)
class Computation:
    """What a meta-training run computes; a run resumes only with the same values."""

    problem: str = "quadratic"
    problem_fn: str | None = None  # MODULE:FUNCTION of a user's problem (the binaries' --problem_fn)
    data_source: str = "tfds"
    num_steps: int = 100
    unroll_length: int = 20
    meta_learning_rate: float = 1e-3
    meta_gradient_clip_norm: float | None = None
    second_derivatives: bool = False
    seed: int = 0
    num_layers: int = 2
    hidden_size: int = 20
    preprocessing: str = "log_sign"
    preprocessing_p: float = 10.0
    output_scale: float = 0.1
    validation_runs: int = 8
    init_from: str | None = None
    meta_loss_weighting: str = "uniform"
    meta_objective: str = "loss"
    momentum_decays: tuple[float, ...] = ()
    meta_gradient_accumulation: int = 1
    num_replicas: int = 1
    gradient_estimator: str = "tbptt"
    es_pairs: int = 4
    es_std: float = 0.01
    min_num_steps: int = 0  # MetaConfig.min_num_steps (sampled horizons; 0: off)
    validation_problem: str | None = None  # None: validate on the training problems
    rule_set: str = "single"  # l2l_tf.rule_sets.RULE_SETS
    gac_cells: int = 0  # RuleConfig.gac_cells (the paper's LSTM+GAC)
    progress_input: bool = False  # RuleConfig.progress_input (the run's progress as an input)
    rule: str = "lstm"  # the rule family (l2l_tf.rule_families); the mlp_* fields are its architecture
    mlp_hidden_size: int = 8
    mlp_num_hidden_layers: int = 1
    mlp_base_step: float = 1e-3
    mlp_max_log_scale: float = 2.3
    mlp_use_params: bool = True
    mlp_step_adaptation_rate: float = 0.0
    mlp_max_adapted_log_scale: float = 2.3

    def __post_init__(self) -> None:
        decays = self.momentum_decays
        if isinstance(decays, (str, bytes)) or not isinstance(decays, (list, tuple)):
            raise RunConfigError(f"momentum_decays must be a list of numbers, got {decays!r}")
        try:  # flags give strings ("0.9"); files written before the schema hold them too
            object.__setattr__(self, "momentum_decays", tuple(float(b) for b in decays))
        except (TypeError, ValueError) as error:
            raise RunConfigError(f"momentum_decays must be numbers, got {decays!r}") from error

    def differences(self, other: Computation) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        return {
            field.name: (getattr(self, field.name), getattr(other, field.name))
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        }


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a run is scheduled; the values computed do not depend on it, so it may change
    when a run resumes (more epochs, XLA on/off, recomputation, coordinate blocks, devices)."""

    num_epochs: int = 100
    jit_compile: bool = False
    recompute_segment: int = 0
    coordinate_shards: int = 1
    distribution: str = "none"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A meta-training run's settings, the command that started it and its problem."""

    computation: Computation = dataclasses.field(default_factory=Computation)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    command: str = ""
    problem_description: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_settings(cls, value_of: Any, **extra: Any) -> RunConfig:
        """Built by field name: ``value_of(name)`` gives each ``Computation`` and ``Schedule``
        field (e.g. the flag of that name); ``extra`` overrides fields or sets ``command`` /
        ``problem_description``."""
        parts = {}
        for part in (Computation, Schedule):
            names = [field.name for field in dataclasses.fields(part)]
            parts[part] = part(**{name: extra.pop(name) if name in extra else value_of(name) for name in names})
        return cls(parts[Computation], parts[Schedule], **extra)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object stored in ``run_config.json``."""
        values = {**dataclasses.asdict(self.computation), **dataclasses.asdict(self.schedule)}
        values["momentum_decays"] = list(self.computation.momentum_decays)
        return {"schema_version": SCHEMA_VERSION, **values, COMMAND: self.command,
                PROBLEM_DESCRIPTION: self.problem_description}

    @classmethod
    def from_dict(cls, values: Any) -> RunConfig:
        """Reads ``to_dict``'s object, or one written before ``schema_version`` existed
        (missing settings take their defaults: the values those runs used; keys this
        version does not know are ignored). ``RunConfigError`` if it cannot."""
        if not isinstance(values, dict):
            raise RunConfigError(f"a run config must be a JSON object, got {type(values).__name__}")
        version = values.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise RunConfigError(
                f"run config schema_version {version!r}; this l2l_tf reads 1 to {SCHEMA_VERSION} (upgrade l2l_tf)"
            )
        parts = {}
        for part in (Computation, Schedule):
            known = {field.name for field in dataclasses.fields(part)}
            try:
                parts[part] = part(**{k: v for k, v in values.items() if k in known})
            except TypeError as error:
                raise RunConfigError(str(error)) from error
        description = values.get(PROBLEM_DESCRIPTION) or {}
        return cls(parts[Computation], parts[Schedule], str(values.get(COMMAND) or ""),
                   description if isinstance(description, dict) else {})
