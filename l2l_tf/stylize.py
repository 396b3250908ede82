"""Stylising one photo with one painting by optimising its pixels (Gatys et al.), with any optimizer.

The optimizer is a Keras optimizer: a shipped learned rule (``LearnedOptimizer.load``) or
Keras' own (SGD, Adam, ...). ``estimate_memory_bytes`` says, before anything is
allocated, roughly how much memory a size needs, so that the tool can refuse sizes that
would not fit.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from l2l_tf.problems import images
from l2l_tf.problems.neural_art import StyleTransferLoss

# Floats kept per pixel by the loss and its gradient: the VGG19 activations up to
# block3_conv1 (64 + 64 + 16 + 32 + 32 + 8 + 16 channels at their resolutions = 232) for
# the forward pass, about three times that with the backward pass and the optimised
# image's copies. It is a guard, not a model: measured peaks (BUILD.md) are below it.
_FLOATS_PER_PIXEL_LOSS = 3 * 232 + 64
# A learned rule keeps 80 (+ momentum) floats of state per coordinate, 3 coordinates per
# pixel, and the rule's intermediate activations (about as many again).
_FLOATS_PER_PIXEL_LEARNED = 2 * 3 * 84
_FIXED_BYTES = 2**30  # TensorFlow itself and the VGG19 weights (20M floats): ~0.75 GiB measured


def output_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """The ``(height, width)`` of an image whose longer side is ``size``, aspect kept."""
    scale = size / max(height, width)
    return max(16, round(height * scale)), max(16, round(width * scale))


def estimate_memory_bytes(height: int, width: int, learned: bool) -> int:
    """A generous estimate of the peak memory of stylising an ``height x width`` image."""
    per_pixel = _FLOATS_PER_PIXEL_LOSS + (_FLOATS_PER_PIXEL_LEARNED if learned else 8)
    return _FIXED_BYTES + 4 * per_pixel * height * width


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def style_at_scale(style: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """The painting resized so that its shorter side equals the output's shorter side."""
    scale = min(height, width) / min(int(style.shape[0]), int(style.shape[1]))
    return images.resize(style, max(16, round(int(style.shape[0]) * scale)), max(16, round(int(style.shape[1]) * scale)))


def stylize(
    content: tf.Tensor,
    style: tf.Tensor,
    loss_fn: StyleTransferLoss,
    optimizer: keras.optimizers.Optimizer,
    num_steps: int,
    on_step: Callable[[int, tf.Tensor, dict[str, float]], None] | None = None,
) -> tf.Tensor:
    """Optimises an image, started from ``content``, for ``num_steps`` steps; returns it.

    ``on_step(step, image, losses)`` is called after every step (``step`` = 1..N; losses
    ``loss``, ``content``, ``style`` of the image *before* that step's update).
    """
    targets = loss_fn.targets(content, style)
    image = keras.Variable(content, name="image")
    optimizer.build([image])

    @tf.function
    def step() -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            content_term, style_term = loss_fn.parts(image.value, targets)
            loss = content_term + style_term
        optimizer.apply_gradients([(tape.gradient(loss, image.value), image)])
        return content_term, style_term

    for index in range(1, num_steps + 1):
        content_term, style_term = step()
        if on_step is not None:
            losses = {"content": float(content_term), "style": float(style_term)}
            losses["loss"] = losses["content"] + losses["style"]
            on_step(index, image.value, losses)
    return tf.convert_to_tensor(image.value)
