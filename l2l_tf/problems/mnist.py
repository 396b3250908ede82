"""The paper's MNIST multi-layer perceptrons and their generalisation variants."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from l2l_tf.problems.data import TFDS, load_split
from l2l_tf.problems.keras_problem import KerasProblem

# name -> (hidden layer sizes, activation). "mnist" is the paper's training problem.
MLP_VARIANTS: dict[str, tuple[tuple[int, ...], str]] = {
    "mnist": ((20,), "sigmoid"),
    "mnist_40": ((40,), "sigmoid"),
    "mnist_2layer": ((20, 20), "sigmoid"),
    "mnist_relu": ((20,), "relu"),
}


def mlp(hidden: Sequence[int], activation: str, inputs: int = 784, classes: int = 10) -> keras.Model:
    """A built MLP ``inputs -> hidden... -> classes`` (logits)."""
    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(units, activation=activation) for units in hidden]
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


def mnist_mlp_problem(
    variant: str = "mnist",
    data_source: str = TFDS,
    data_dir: str | None = None,
    batch_size: int = 128,
    init_stddev: float | None = 0.01,
) -> KerasProblem:
    """The paper's MNIST MLP (``mnist``) or a variant from ``MLP_VARIANTS``.

    Parameters start from ``N(0, 0.01^2)`` as in the paper's public code; minibatches
    of 128 from the train split; test accuracy on the test split.
    """
    if variant not in MLP_VARIANTS:
        raise ValueError(f"unknown MNIST variant {variant!r}; choose from {sorted(MLP_VARIANTS)}")
    hidden, activation = MLP_VARIANTS[variant]
    train = load_split("train", data_source, data_dir)
    test = load_split("test", data_source, data_dir)
    return KerasProblem(
        lambda: mlp(hidden, activation),
        train,
        test,
        batch_size=batch_size,
        init_stddev=init_stddev,
        name=variant,
        description={"hidden": list(hidden), "activation": activation, "data_source": data_source},
    )
