"""Any Keras 3 model, with a loss and in-memory data, as a meta-training optimizee.

The model is called as a pure function of explicit weights with
``model.stateless_call(trainable_values, non_trainable_values, x)``, so a learned
rule's updates to those weights stay differentiable and no Keras variable is mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.problems.base import Batch, Problem, seed_pair
from l2l_tf.problems.data import Split, as_split


class KerasProblem(Problem):
    """Trains ``model`` on ``train`` minibatches; reports accuracy on ``test``.

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
        if self.model.non_trainable_variables:
            names = [v.path for v in self.model.non_trainable_variables][:3]
            raise ValueError(
                f"model has non-trainable state ({names}...), e.g. BatchNormalization statistics:"
                " optimizees must be pure functions of their trainable weights. Remove those"
                " layers or freeze them into constants"
            )
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

    def initial_params(self, seed: int) -> list[tf.Tensor]:
        if self.init_stddev is not None:
            return [
                tf.random.stateless_normal(shape, seed_pair(seed, 100 + i), stddev=self.init_stddev)
                for i, shape in enumerate(self.param_shapes())
            ]
        keras.utils.set_random_seed(seed)
        fresh = self.model_fn()
        return [tf.convert_to_tensor(v) for v in fresh.trainable_variables]

    def batches(self, seed: int, split: str = "train") -> tf.data.Dataset:
        data = self.train if split == "train" else self.test
        if data is None:
            raise ValueError(f"no {split!r} data was given to this problem")
        dataset = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
        dataset = dataset.shuffle(len(data.labels), seed=seed, reshuffle_each_iteration=True)
        return dataset.repeat().batch(self.batch_size, drop_remainder=True).prefetch(
            tf.data.AUTOTUNE
        )

    def outputs(self, params: Sequence[tf.Tensor], images: tf.Tensor, training: bool = True) -> tf.Tensor:
        outputs, _ = self.model.stateless_call(list(params), [], images, training=training)
        return outputs

    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        images, labels = batch
        return tf.reshape(self.loss_fn(labels, self.outputs(params, images)), [1])

    def metrics(self, params: Sequence[tf.Tensor], seed: int) -> dict[str, float]:
        del seed
        if self.test is None:
            return {}
        logits = self.outputs(params, self.test.images, training=False)
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
        }
