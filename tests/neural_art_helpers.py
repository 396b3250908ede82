"""Small fake neural-art data (photos, paintings, VGG19 weights in the npz format) for fast tests."""

from __future__ import annotations

import os

import numpy as np

from l2l_tf.problems import images, vgg

# Input channels of each VGG19 conv layer up to block3_conv1 (the deepest the loss uses).
CHANNELS = {"block1_conv1": (3, 64), "block1_conv2": (64, 64), "block2_conv1": (64, 128),
            "block2_conv2": (128, 128), "block3_conv1": (128, 256)}


def write_fake_vgg_npz(path: str, seed: int = 0, layers: tuple[str, ...] = tuple(CHANNELS)) -> dict:
    """Random He-scaled VGG19 conv weights for ``layers`` in the quantised npz format; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in layers:
        fan_in, out = CHANNELS[name]
        arrays[f"{name}/kernel_index"] = rng.integers(0, 256, size=(3, 3, fan_in, out), dtype=np.uint8)
        scale = np.sqrt(2.0 / (9 * fan_in)) * np.sqrt(3.0)
        arrays[f"{name}/kernel_table"] = np.linspace(-scale, scale, 256, dtype=np.float32)
        arrays[f"{name}/bias"] = rng.normal(0.0, 0.01, size=out).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


def write_fake_data_dir(root: str, photos: tuple[str, ...] = (), paintings: tuple[str, ...] = ()) -> str:
    """A neural-art folder: content/{red,blue}.jpg, style/stripes.jpg, vgg19/vgg19_notop_q8.npz,
    and small random pictures named ``photos`` (content/) and ``paintings`` (style/)."""
    for folder in ("content", "style", "vgg19"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    height, width = 40, 56
    red = np.zeros((height, width, 3), np.float32)
    red[..., 0] = np.linspace(0.5, 1.0, width)
    blue = np.zeros((height, width, 3), np.float32)
    blue[..., 2] = np.linspace(0.5, 1.0, width)
    stripes = np.zeros((48, 48, 3), np.float32)
    stripes[::4] = 1.0
    images.write_image(red, os.path.join(root, "content", "red.jpg"))
    images.write_image(blue, os.path.join(root, "content", "blue.jpg"))
    images.write_image(stripes, os.path.join(root, "style", "stripes.jpg"))
    rng = np.random.default_rng(1)
    for folder, names in (("content", photos), ("style", paintings)):
        for name in names:
            picture = rng.uniform(size=(24, 32, 3)).astype(np.float32)
            images.write_image(picture, os.path.join(root, folder, name + ".jpg"))
    write_fake_vgg_npz(os.path.join(root, "vgg19", "vgg19_notop_q8.npz"))
    return root


assert set(CHANNELS) == set(vgg.vgg19_layer_names()[:5])
