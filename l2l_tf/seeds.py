"""Disjoint seed ranges, so no optimizee is ever both trained on and evaluated on.

Every optimizee run is identified by an integer seed (its initial parameters, its
function or its data order). Each use draws from its own range:

- evaluation: ``[0, 800_000)`` (the evaluate binary uses ``0..N-1`` by default),
- baseline learning-rate tuning: ``[800_000, 900_000)``,
- meta-training validation (early stopping): ``[900_000, 1_000_000)``,
- meta-training: ``[1_000_000, ...)``, one per optimizee run.
"""

from __future__ import annotations

TUNING_START = 800_000
VALIDATION_START = 900_000
TRAINING_START = 1_000_000


def evaluation_seeds(count: int, start: int = 0) -> list[int]:
    if start < 0 or start + count > TUNING_START:
        raise ValueError(f"evaluation seeds must lie in [0, {TUNING_START})")
    return list(range(start, start + count))


def tuning_seeds(count: int) -> list[int]:
    return list(range(TUNING_START, TUNING_START + count))


def validation_seeds(count: int) -> list[int]:
    return list(range(VALIDATION_START, VALIDATION_START + count))


def training_seed(run_index: int, base_seed: int = 0) -> int:
    """The seed of meta-training run ``run_index`` for training seed ``base_seed``."""
    return TRAINING_START + base_seed * 10_000_000 + run_index
