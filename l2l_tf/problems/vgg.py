"""Keras' VGG19 as a frozen feature extractor for style transfer, with offline weights.

The network is ``keras.applications.VGG19(include_top=False)`` truncated at the deepest
layer a loss uses (the layers after it cost time and change nothing). Its weights come
either from Keras' ImageNet download (``"imagenet"``, needs network access once) or from
an ``.npz`` file holding, for each Keras layer name ``L``, ``L/kernel_index`` (uint8,
HWIO), ``L/kernel_table`` (float32 ``[256]``) and ``L/bias``: the kernel is
``kernel_table[kernel_index]`` (the format of ``../shared/data/neural-art/vgg19``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import keras
import numpy as np

IMAGENET = "imagenet"
HOW_TO_PROVIDE = (
    "provide VGG19 weights offline as an .npz of <layer>/kernel_index, <layer>/kernel_table and"
    " <layer>/bias (e.g. ../shared/data/neural-art/vgg19/vgg19_notop_q8.npz) with --vgg_weights=FILE,"
    " or pass --vgg_weights=imagenet to let Keras download them (needs network access once)"
)


class VGGWeightsError(ValueError):
    """VGG19 weights are missing, unreadable or do not fit the network."""


def vgg19_layer_names() -> list[str]:
    """The 16 conv layer names of Keras' VGG19, in order (block1_conv1 ... block5_conv4)."""
    convs = (2, 2, 4, 4, 4)
    return [f"block{b}_conv{c}" for b, n in enumerate(convs, start=1) for c in range(1, n + 1)]


def _read_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise VGGWeightsError(f"VGG19 weights file {path!r} not found; {HOW_TO_PROVIDE}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise VGGWeightsError(
            f"VGG19 weights file {path!r} is not a readable .npz ({error}); {HOW_TO_PROVIDE}"
        ) from error


def _layer_weights(data: dict[str, np.ndarray], name: str, kernel_shape: tuple, path: str) -> list[np.ndarray]:
    keys = [f"{name}/kernel_index", f"{name}/kernel_table", f"{name}/bias"]
    missing = [key for key in keys if key not in data]
    if missing:
        raise VGGWeightsError(f"VGG19 weights file {path!r} lacks {missing}; {HOW_TO_PROVIDE}")
    index, table, bias = (data[key] for key in keys)
    if index.shape != kernel_shape or index.dtype != np.uint8:
        raise VGGWeightsError(
            f"VGG19 weights file {path!r}: {name}/kernel_index is {index.dtype}{list(index.shape)},"
            f" expected uint8{list(kernel_shape)}; {HOW_TO_PROVIDE}"
        )
    if table.shape != (256,) or bias.shape != (kernel_shape[-1],):
        raise VGGWeightsError(
            f"VGG19 weights file {path!r}: {name}/kernel_table must be [256] and {name}/bias"
            f" [{kernel_shape[-1]}], got {list(table.shape)} and {list(bias.shape)}; {HOW_TO_PROVIDE}"
        )
    kernel = table.astype(np.float32)[index]
    if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
        raise VGGWeightsError(f"VGG19 weights file {path!r}: {name} has non-finite values")
    return [kernel, bias.astype(np.float32)]


def load_npz_weights(model: keras.Model, path: str) -> None:
    """Sets every VGG19 conv layer of ``model`` from the quantised ``.npz`` at ``path``."""
    data = _read_npz(path)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_shape = tuple(layer.kernel.shape)
            layer.set_weights(_layer_weights(data, layer.name, kernel_shape, path))


def feature_extractor(layers: Sequence[str], weights: str) -> keras.Model:
    """VGG19 truncated at the deepest of ``layers``, returning their outputs in order.

    ``weights`` is ``"imagenet"`` (Keras' download) or the path of an ``.npz`` file (see
    the module docstring). Inputs are ``[B, H, W, 3]`` images preprocessed as Keras'
    ``vgg19.preprocess_input`` does (BGR, ImageNet mean subtracted, 0..255 scale); any
    H, W >= 16 works with the same model.
    """
    known = vgg19_layer_names()
    unknown = [name for name in layers if name not in known]
    if unknown or not layers:
        raise ValueError(f"unknown VGG19 layers {unknown}; choose from {known}")
    if weights == IMAGENET:
        try:
            full = keras.applications.VGG19(include_top=False, weights=IMAGENET, input_shape=(None, None, 3))
        except Exception as error:  # noqa: BLE001 (keras.utils.get_file raises a bare Exception)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise VGGWeightsError(f"could not get Keras' ImageNet VGG19 weights ({reason}); {HOW_TO_PROVIDE}") from None
    else:
        full = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    deepest = max(known.index(name) for name in layers)
    # Rebuild only the layers up to the deepest one used: a smaller graph to compile.
    inputs = keras.Input((None, None, 3))
    outputs, x = {}, inputs
    for layer in full.layers[1:]:
        x = layer(x)
        outputs[layer.name] = x
        if layer.name == known[deepest]:
            break
    model = keras.Model(inputs, [outputs[name] for name in layers], name="vgg19_features")
    if weights != IMAGENET:
        load_npz_weights(model, weights)
    model.trainable = False
    return model
