"""Reading, cropping and writing the RGB images of the style-transfer problems."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


class ImageReadError(ValueError):
    """An image file is missing or not a decodable image."""


def read_image(path: str) -> tf.Tensor:
    """The RGB image at ``path`` (JPEG, PNG, GIF or BMP) as float32 ``[H, W, 3]`` in [0, 1]."""
    if not os.path.isfile(path):
        raise ImageReadError(f"image {path!r} not found; pass the path of a JPEG, PNG, GIF or BMP file")
    try:
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False, dtype=tf.float32)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as error:
        reason = error.message.splitlines()[0] if error.message else type(error).__name__
        raise ImageReadError(
            f"cannot read image {path!r} ({reason}); pass a JPEG, PNG, GIF or BMP file"
        ) from None
    if min(image.shape[0], image.shape[1]) < 1:
        raise ImageReadError(f"image {path!r} is empty")
    return image


def resize(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """``image`` resized to ``height x width`` (area-averaged when shrinking)."""
    return tf.image.resize(image, [height, width], method="area" if height <= image.shape[0] else "bilinear")


def center_square(image: tf.Tensor, size: int) -> tf.Tensor:
    """The largest centred square of ``image``, resized to ``size x size``."""
    height, width = int(image.shape[0]), int(image.shape[1])
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(image[top : top + side, left : left + side], size, size)


def random_crop(image: tf.Tensor, size: int, rng: np.random.Generator, min_scale: float = 0.5) -> tf.Tensor:
    """A random square crop of ``image`` (side ``min_scale..1`` of its shorter side, random
    position, mirrored half the time), resized to ``size x size``."""
    height, width = int(image.shape[0]), int(image.shape[1])
    side = max(1, round(rng.uniform(min_scale, 1.0) * min(height, width)))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = image[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return resize(crop, size, size)


def write_image(image: tf.Tensor | np.ndarray, path: str) -> None:
    """Writes ``[H, W, 3]`` values in [0, 1] (clipped) as a PNG or JPEG (by extension)."""
    pixels = tf.cast(tf.round(tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)
    extension = os.path.splitext(path)[1].lower()
    data = tf.io.encode_jpeg(pixels, quality=95) if extension in (".jpg", ".jpeg") else tf.io.encode_png(pixels)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    tf.io.write_file(tmp, data)
    os.replace(tmp, path)
