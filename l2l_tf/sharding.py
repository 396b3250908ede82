"""Coordinate sharding: a coordinatewise rule run as independent chains, one per CPU core.

The rule's ops are small (``[N, 20..80]`` tensors at N = 15,910 for the MNIST MLP), and
splitting each of them across TensorFlow's intra-op threads costs a synchronisation per op.
A coordinatewise rule treats every coordinate independently, so the coordinates can instead
be cut into K contiguous blocks whose rule steps never touch each other: K independent chains
of ops in the unroll graph, which TensorFlow's inter-op threads run side by side. With one
intra-op thread and K inter-op threads (``configure_cpu_threads``) each core runs its own
chain without synchronising. The values are those of the unsharded rule; only the schedule
changes (measured in ``benchmarks/``).

Both speed knobs are this one idea, coordinate blocks: meta-training's ``coordinate_blocks``
(``MetaConfig.coordinate_shards``, flag ``--coordinate_blocks``) is the *number* of blocks, run
as parallel chains; ``LearnedOptimizer(coordinate_block_size=...)`` is the *size* of blocks
whose tensors fit in the cache (``block_sizes``, ``step_in_blocks``), run one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf.layout import global_context, needs_progress
from l2l_tf.rules import CellRule, RuleConfig


def shard_sizes(num_coordinates: int, num_shards: int) -> list[int]:
    """Sizes of ``num_shards`` contiguous blocks covering ``num_coordinates`` (differing by <= 1)."""
    if not 1 <= num_shards <= num_coordinates:
        raise ValueError(
            f"coordinate_shards must lie in [1, {num_coordinates}] (the number of coordinates),"
            f" got {num_shards}"
        )
    base, extra = divmod(num_coordinates, num_shards)
    return [base + (1 if shard < extra else 0) for shard in range(num_shards)]


def block_sizes(num_coordinates: int, block_size: int) -> list[int]:
    """Sizes of the fewest contiguous blocks of at most ``block_size`` coordinates, as even as
    possible; ``block_size=0`` means one block."""
    if block_size == 0 or num_coordinates <= block_size:
        return [num_coordinates]
    return shard_sizes(num_coordinates, -(-num_coordinates // block_size))


def step_in_blocks(
    step: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    gradients: tf.Tensor,
    state: tf.Tensor,
    sizes: Sequence[int],
) -> tuple[tf.Tensor, tf.Tensor]:
    """``step(gradients, state) -> (update, new_state)`` on each block of ``sizes`` coordinates
    (one call for one block), the blocks' results concatenated in order."""
    if len(sizes) == 1:
        return step(gradients, state)
    parts = [step(g, s) for g, s in zip(tf.split(gradients, sizes), tf.split(state, sizes))]
    return tf.concat([update for update, _ in parts], 0), tf.concat([new for _, new in parts], 0)


class CoordinateShards(tf.Module):
    """``rule`` applied to K blocks of coordinates as K independent chains.

    A ``CellRule`` over exactly ``num_coordinates`` coordinates, with ``rule``'s config and
    weights: the state stays one ``[N, state_size]`` tensor at the unroll's boundaries, and
    inside the unroll the cells are the K blocks' cells, concatenated in block order.
    """

    def __init__(self, rule: CellRule, num_coordinates: int, num_shards: int):
        super().__init__(name="coordinate_shards")
        self.rule = rule
        self.sizes = shard_sizes(num_coordinates, num_shards)

    @property
    def config(self) -> RuleConfig:
        return self.rule.config

    @property
    def needs_progress(self) -> bool:
        return needs_progress(self.rule)

    @property
    def state_size(self) -> int:
        return self.rule.state_size

    def init_state(self, num_coordinates: int | tf.Tensor) -> tf.Tensor:
        return self.rule.init_state(num_coordinates)

    def step(self, gradients: tf.Tensor, state: tf.Tensor,
             progress: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """``rule.step`` computed as K independent blocks (the same values)."""
        update, cells = self.step_cells(gradients, self.split_state(state), progress)
        return update, self.join_state(cells)

    def weights(self) -> list[tf.Variable]:
        return self.rule.weights()

    def get_weights(self) -> list[np.ndarray]:
        return self.rule.get_weights()

    def set_weights(self, values: Sequence[Any], source: str = "weights") -> None:
        self.rule.set_weights(values, source)

    def _cells_per_shard(self, cells: list[tf.Tensor]) -> list[list[tf.Tensor]]:
        per_shard = len(cells) // len(self.sizes)
        return [cells[k * per_shard:(k + 1) * per_shard] for k in range(len(self.sizes))]

    def split_state(self, state: tf.Tensor) -> list[tf.Tensor]:
        """``[N, S]`` -> every block's cells (``rule.split_state`` of each block), in block order."""
        return [cell for block in tf.split(state, self.sizes, axis=0) for cell in self.rule.split_state(block)]

    def join_state(self, cells: list[tf.Tensor]) -> tf.Tensor:
        """Inverse of ``split_state``."""
        return tf.concat([self.rule.join_state(block) for block in self._cells_per_shard(cells)], axis=0)

    def step_cells(self, gradients: tf.Tensor, cells: list[tf.Tensor],
                   progress: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``rule.step_cells`` on each block: ``([N] update, every block's new cells)``. A rule
        with global cells gets their mean over all blocks (``rules.global_context``), taken
        before the blocks are stepped."""
        updates, new_cells = [], []
        blocks = self._cells_per_shard(cells)
        context = global_context(self.rule, blocks)
        extra: dict = {} if context is None else {"context": context}
        if needs_progress(self.rule):
            extra["progress"] = progress
        for block_gradients, block_cells in zip(tf.split(gradients, self.sizes), blocks):
            update, block_cells = self.rule.step_cells(block_gradients, block_cells, **extra)
            updates.append(update)
            new_cells += block_cells
        return tf.concat(updates, axis=0), new_cells


def configure_cpu_threads(num_shards: int) -> None:
    """One intra-op thread and ``num_shards`` inter-op threads, so each shard's chain runs on
    its own core. Must run before TensorFlow executes its first op (a ``RuntimeError``
    from TensorFlow otherwise)."""
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(num_shards)
