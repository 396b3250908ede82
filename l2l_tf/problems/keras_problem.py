"""Any Keras 3 model, with a loss and in-memory data, as a meta-training optimizee.

The model is called as a pure function of explicit weights with
``model.stateless_call(trainable_values, non_trainable_values, x)``, so a learned
rule's updates to those weights stay differentiable and no Keras variable is mutated.
Non-trainable state (BatchNormalization statistics, Dropout seeds) is explicit too:
see ``l2l_tf.problems.keras_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.problems.base import Batch, Problem, seed_pair
from l2l_tf.problems.data import Split, as_split
from l2l_tf.problems.keras_state import ModelState, step_seeds


class KerasProblem(Problem):
    """Trains ``model`` on ``train`` minibatches; reports accuracy on ``test``.

    BatchNormalization moving statistics are the optimizee's state (``state_size``
    floats, reset per run, updated by each training forward pass); models with Dropout
    or other random layers get each step's seed in the batch (``images, labels, seed``).

    Args:
      model_fn: builds a fresh, *built* Keras model (Sequential or functional).
      train, test: the data: ``(x, y)`` arrays, a finite ``tf.data.Dataset`` of ``(x, y)``
        (read into memory once), or a ``Split``; ``test`` is optional.
      loss_fn: ``loss_fn(labels, outputs) -> scalar``; default sparse cross-entropy on logits.
      batch_size: minibatch size (128 in the paper).
      init_stddev: if set, every weight starts from ``N(0, init_stddev^2)`` drawn from
        the run's seed (the paper's public code: 0.01); if None, the model's own
        initializers are used, seeded per run.
    """

    def __init__(
        self,
        model_fn: Callable[[], keras.Model],
        train: Split | tuple | tf.data.Dataset,
        test: Split | tuple | tf.data.Dataset | None = None,
        loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
        batch_size: int = 128,
        init_stddev: float | None = None,
        name: str = "keras",
        description: dict | None = None,
    ):
        train, test = as_split(train, "train"), None if test is None else as_split(test, "test")
        self.model_fn = model_fn
        self.model = model_fn()
        if not self.model.built:
            raise ValueError("model_fn must return a built model (give it an Input or call build())")
        self.model_state = ModelState(self.model)
        if batch_size < 1 or batch_size > len(train.labels):
            raise ValueError(f"batch_size must be in [1, {len(train.labels)}], got {batch_size}")
        self.train, self.test = train, test
        self.loss_fn = loss_fn or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.batch_size = batch_size
        self.init_stddev = init_stddev
        self.name = name
        self.num_functions = 1
        self._description = description or {}

    def param_shapes(self) -> list[tf.TensorShape]:
        return [tf.TensorShape(v.shape) for v in self.model.trainable_variables]

    def param_names(self) -> list[str]:
        """The trainable variables' Keras paths (e.g. ``sequential/conv2d/kernel``)."""
        return [v.path for v in self.model.trainable_variables]

    def initial_params(self, seed: int) -> list[tf.Tensor]:
        if self.init_stddev is not None:
            return [
                tf.random.stateless_normal(shape, seed_pair(seed, 100 + i), stddev=self.init_stddev)
                for i, shape in enumerate(self.param_shapes())
            ]
        keras.utils.set_random_seed(seed)
        fresh = self.model_fn()
        return [tf.convert_to_tensor(v) for v in fresh.trainable_variables]

    @property
    def state_size(self) -> int:
        return self.model_state.size

    def initial_state(self, seed: int) -> tf.Tensor:
        del seed  # a fresh model's statistics do not depend on the run
        return self.model_state.initial()

    def batches(self, seed: int, split: str = "train") -> tf.data.Dataset:
        data = self.train if split == "train" else self.test
        if data is None:
            raise ValueError(f"no {split!r} data was given to this problem")
        dataset = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
        dataset = dataset.shuffle(len(data.labels), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat().batch(self.batch_size, drop_remainder=True)
        if self.model_state.stochastic:
            dataset = tf.data.Dataset.zip(dataset, step_seeds(seed)).map(
                lambda minibatch, step_seed: (*minibatch, step_seed)
            )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def outputs(
        self,
        params: Sequence[tf.Tensor],
        images: tf.Tensor,
        training: bool = True,
        state: tf.Tensor | None = None,
        step_seed: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits and the updated flat state (``state`` None: a fresh model's statistics)."""
        state = self.model_state.initial() if state is None else state
        outputs, non_trainable = self.model.stateless_call(
            list(params), self.model_state.values(state, step_seed), images, training=training
        )
        return outputs, tf.stop_gradient(self.model_state.flatten(non_trainable))

    def loss_and_state(
        self, params: Sequence[tf.Tensor], state: tf.Tensor, batch: Batch
    ) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels, *step_seed = batch
        logits, state = self.outputs(params, images, True, state, step_seed[0] if step_seed else None)
        return tf.reshape(self.loss_fn(labels, logits), [1]), state

    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        return self.loss_and_state(params, self.model_state.initial(), batch)[0]

    def metrics(
        self, params: Sequence[tf.Tensor], seed: int, state: tf.Tensor | None = None
    ) -> dict[str, float]:
        del seed
        if self.test is None:
            return {}
        logits, _ = self.outputs(params, self.test.images, training=False, state=state)
        predictions = np.argmax(np.asarray(logits), axis=-1)
        loss = float(self.loss_fn(self.test.labels, logits))
        return {"test_accuracy": float(np.mean(predictions == self.test.labels)), "test_loss": loss}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "init_stddev": self.init_stddev,
            "num_parameters": self.num_coordinates,
            **self._description,
            # Only for models with state, so stateless problems describe themselves as before.
            **({"state_size": self.state_size} if self.state_size else {}),
            **({"stochastic": True} if self.model_state.stochastic else {}),
        }
