"""A Keras model's non-trainable variables as explicit optimizee state and per-step seeds.

``model.stateless_call`` takes and returns the values of every non-trainable variable.
Two kinds are supported:

- **carried statistics**: BatchNormalization's ``moving_mean`` / ``moving_variance``.
  They travel through an optimizee run as one flat float32 vector, are updated by each
  training forward pass (never by the learned rule) and are never differentiated.
- **seeds**: the state of every ``keras.random.SeedGenerator`` (Dropout and other random
  layers). It is not carried: at each step it is derived from that step's seed (run seed
  and step index, see ``step_seeds``), so a run's randomness depends only on its seed and
  a resumed run draws the same masks as an uninterrupted one. (XLA-compiled steps draw
  other masks than graph-executed ones, as TensorFlow's stateless RNG picks another
  algorithm there; each is deterministic.)

Any other non-trainable variable (a frozen layer's weights, adapted normalisation
statistics, ...) is refused with an error naming its layer.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

# The seed of step ``t`` of run ``seed`` is ``[seed, STEP_SEED_SALT + t]``; the salt keeps
# these streams apart from the stateless seeds used for initial parameters (``seed_pair``).
STEP_SEED_SALT = 1 << 32


class UnsupportedStateError(ValueError):
    """A model holds non-trainable state that an optimizee cannot carry."""


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One non-trainable variable: carried statistic (``seed_index`` None) or a seed."""

    shape: tuple[int, ...]
    dtype: tf.DType
    seed_index: int | None


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    # Keras' own recursive traversal (nested models and layers included).
    return list(model._flatten_layers(include_self=True, recursive=True))


def _classify(model: keras.Model) -> dict[int, tuple[str, keras.layers.Layer]]:
    """``id(variable) -> (kind, owning layer)`` for every supported non-trainable variable."""
    kinds: dict[int, tuple[str, keras.layers.Layer]] = {}
    for layer in _layers(model):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                kinds[id(value.state)] = ("seed", layer)
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in (layer.moving_mean, layer.moving_variance):
                kinds[id(variable)] = ("statistic", layer)
    return kinds


def _owner(model: keras.Model, variable: keras.Variable) -> keras.layers.Layer | None:
    for layer in _layers(model):
        if layer is not model and any(v is variable for v in layer.non_trainable_variables):
            return layer
    return None


class ModelState:
    """Maps between a model's non-trainable values and (flat state, step seed).

    Raises ``UnsupportedStateError`` naming the first layer whose non-trainable
    variables are neither BatchNormalization statistics nor random-layer seeds.
    """

    def __init__(self, model: keras.Model):
        kinds = _classify(model)
        self.slots: list[_Slot] = []
        initial, seeds = [], 0
        for variable in model.non_trainable_variables:
            kind = kinds.get(id(variable), (None, None))[0]
            if kind is None:
                owner = _owner(model, variable)
                layer = f"layer {owner.name!r} ({type(owner).__name__})" if owner else "the model"
                raise UnsupportedStateError(
                    f"{layer} has non-trainable variable {variable.path!r}, which an optimizee"
                    " cannot carry (supported: BatchNormalization moving statistics and the seeds"
                    " of Dropout/random layers). Make it trainable or remove the layer"
                )
            if kind == "seed":
                self.slots.append(_Slot(tuple(variable.shape), tf.as_dtype(variable.dtype), seeds))
                seeds += 1
            else:
                self.slots.append(_Slot(tuple(variable.shape), tf.as_dtype(variable.dtype), None))
                initial.append(tf.reshape(tf.cast(variable.value, tf.float32), [-1]))
        self.num_seeds = seeds
        self._initial = tf.concat(initial, axis=0) if initial else tf.zeros([0])

    @property
    def size(self) -> int:
        """Length of the flat carried state (0 without BatchNormalization)."""
        return int(self._initial.shape[0])

    @property
    def stochastic(self) -> bool:
        """Whether the model draws random numbers in training (needs step seeds)."""
        return self.num_seeds > 0

    def initial(self) -> tf.Tensor:
        """The carried statistics of a fresh model (BatchNorm: means 0, variances 1)."""
        return tf.identity(self._initial)

    def values(self, state: tf.Tensor, step_seed: tf.Tensor | None) -> list[tf.Tensor]:
        """Non-trainable values for ``stateless_call`` from flat ``state`` and ``step_seed``."""
        values, offset = [], 0
        for slot in self.slots:
            if slot.seed_index is None:
                size = int(tf.TensorShape(slot.shape).num_elements())
                part = tf.reshape(state[offset : offset + size], slot.shape)
                values.append(tf.cast(part, slot.dtype))
                offset += size
            elif step_seed is None:
                values.append(tf.zeros(slot.shape, slot.dtype))
            else:
                derived = tf.random.experimental.stateless_fold_in(step_seed, slot.seed_index)
                values.append(tf.cast(derived, slot.dtype))
        return values

    def flatten(self, values: list[tf.Tensor]) -> tf.Tensor:
        """The carried part of ``stateless_call``'s returned non-trainable values."""
        parts = [
            tf.reshape(tf.cast(value, tf.float32), [-1])
            for value, slot in zip(values, self.slots)
            if slot.seed_index is None
        ]
        return tf.concat(parts, axis=0) if parts else tf.zeros([0])


def step_seeds(seed: int) -> tf.data.Dataset:
    """The endless per-step seeds ``[seed, STEP_SEED_SALT + t]`` (int64) of run ``seed``."""
    return tf.data.Dataset.counter().map(
        lambda t: tf.stack([tf.constant(seed, tf.int64), STEP_SEED_SALT + t])
    )
