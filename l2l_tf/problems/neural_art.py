"""Style transfer as an optimizee (the paper's "Neural Art" experiment; Gatys et al.'s loss).

The parameters are the pixels of one RGB image (``[H, W, 3]``, values in [0, 1], started
from the content image). The loss is

    content_weight * mean((F_c(x) - F_c(content))^2)
      + style_weight * sum_l mean((G_l(x) - G_l(style))^2)

over VGG19 feature maps ``F``, with Gram matrices ``G_l = F_l^T F_l / (h w)`` of the style
layers. Layers and weights are chosen so that a 128-step run at 64x64 is cheap on a CPU:
the network is cut after the deepest layer used (``block3_conv1``).

Data split of ``../shared/data/neural-art`` (fixed here, before any meta-training):
``TRAINING_STYLE`` is the only painting meta-training sees; ``HELD_OUT_STYLE`` is only used
for evaluation (c); ``TEST_PHOTOS`` are only used by evaluation runs (seeds below
``seeds.TUNING_START``); every other seed (baseline tuning, validation, meta-training)
draws crops of the other nine photos.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.problems import images, vgg
from l2l_tf.problems.base import Batch, Problem

TRAINING_STYLE = "hokusai_great_wave"
HELD_OUT_STYLE = "munch_the_scream"
TEST_PHOTOS = ("darknet_dog", "matplotlib_grace_hopper", "skimage_astronaut", "sklearn_china")
TRAINING_PHOTOS = (
    "darknet_eagle", "darknet_giraffe", "darknet_horses", "darknet_kite", "darknet_person",
    "skimage_chelsea", "skimage_coffee", "skimage_rocket", "sklearn_flower",
)
NPZ_NAME = os.path.join("vgg19", "vgg19_notop_q8.npz")

# name -> (image size, style): the training setting and the paper's two generalisation tests.
NEURAL_ART_VARIANTS: dict[str, tuple[int, str]] = {
    "neural_art": (64, TRAINING_STYLE),
    "neural_art_128": (128, TRAINING_STYLE),
    "neural_art_new_style": (64, HELD_OUT_STYLE),
}


@dataclasses.dataclass(frozen=True)
class StyleLossConfig:
    """VGG19 layers and weights of the style-transfer loss."""

    content_layer: str = "block3_conv1"
    style_layers: tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1")
    # Chosen with experiments/neural_art/calibrate.py on training photos: the weighted style
    # term starts near 14 at 64x64 and tuned Adam brings both terms below 1 in 128 steps
    # with the content still recognisable.
    content_weight: float = 1e-5
    style_weight: float = 1e-8


class StyleTransferLoss:
    """Gatys et al.'s loss over a (truncated) VGG19 with frozen weights."""

    def __init__(self, weights: str, config: StyleLossConfig = StyleLossConfig()):
        self.config = config
        self.layers = [config.content_layer, *config.style_layers]
        self.network = vgg.feature_extractor(self.layers, weights)

    def features(self, image: tf.Tensor) -> list[tf.Tensor]:
        """VGG features ``[h, w, C]`` of ``[H, W, 3]`` pixels in [0, 1], in ``self.layers`` order."""
        rgb = image[tf.newaxis] * 255.0
        bgr = rgb[..., ::-1] - tf.constant([103.939, 116.779, 123.68])  # vgg19.preprocess_input
        outputs = self.network(bgr, training=False)
        return [output[0] for output in outputs]

    @staticmethod
    def gram(features: tf.Tensor) -> tf.Tensor:
        """``F^T F / (h w)`` of features ``[h, w, C]``."""
        positions = tf.cast(tf.shape(features)[0] * tf.shape(features)[1], tf.float32)
        return tf.einsum("hwc,hwd->cd", features, features) / positions

    def targets(self, content: tf.Tensor, style: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """``(content features, style Gram per style layer...)`` the loss compares against."""
        content_features = self.features(content)[0]
        style_features = self.features(style)[1:]
        return (content_features, *[self.gram(f) for f in style_features])

    def parts(self, image: tf.Tensor, targets: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The weighted ``(content, style)`` terms of the loss of ``image``."""
        features = self.features(image)
        content = tf.reduce_mean(tf.square(features[0] - targets[0]))
        style = tf.add_n([
            tf.reduce_mean(tf.square(self.gram(f) - target))
            for f, target in zip(features[1:], targets[1:])
        ])
        return self.config.content_weight * content, self.config.style_weight * style

    def __call__(self, image: tf.Tensor, targets: Sequence[tf.Tensor]) -> tf.Tensor:
        content, style = self.parts(image, targets)
        return content + style


def default_data_dir() -> str | None:
    """``$L2L_NEURAL_ART_DIR``, else ``../shared/data/neural-art`` beside the repository, if present."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (os.environ.get("L2L_NEURAL_ART_DIR"), os.path.join(repo, "..", "shared", "data", "neural-art")):
        if candidate and os.path.isdir(os.path.join(candidate, "content")):
            return os.path.abspath(candidate)
    return None


class NeuralArt(Problem):
    """Stylising ``size x size`` crops of photos with one painting (one image per run).

    Run ``seed`` optimises a crop of ``test_photos[seed % len]`` if ``seed`` is an
    evaluation seed (below ``seeds.TUNING_START``), else of ``training_photos[seed % len]``;
    its scale (half to all of the photo's shorter side), position and mirroring are drawn
    from ``seed``. The image starts as the content crop itself; the data of every step is
    the same (the content features and the style Grams).
    """

    def __init__(
        self,
        data_dir: str,
        size: int = 64,
        style: str = TRAINING_STYLE,
        vgg_weights: str | None = None,
        loss_config: StyleLossConfig = StyleLossConfig(),
        training_photos: Sequence[str] = TRAINING_PHOTOS,
        test_photos: Sequence[str] = TEST_PHOTOS,
        name: str = "neural_art",
    ):
        if size < 16:
            raise ValueError(f"image size must be >= 16 pixels, got {size}")
        self.data_dir, self.size, self.style_name, self.name = data_dir, size, style, name
        self.vgg_weights = vgg_weights or os.path.join(data_dir, NPZ_NAME)
        self.training_photos, self.test_photos = tuple(training_photos), tuple(test_photos)
        read = lambda folder, stem: images.read_image(os.path.join(data_dir, folder, stem + ".jpg"))
        self._photos = {stem: read("content", stem) for stem in (*self.training_photos, *self.test_photos)}
        self.style = images.center_square(read("style", style), size)
        self.loss_fn = StyleTransferLoss(self.vgg_weights, loss_config)
        self.num_functions = 1

    def content_image(self, seed: int) -> tf.Tensor:
        """The ``size x size`` content crop of run ``seed``."""
        if seed < 0:
            raise ValueError(f"seeds must be non-negative, got {seed}")
        photos = self.test_photos if seed < seeds.TUNING_START else self.training_photos
        photo = self._photos[photos[seed % len(photos)]]
        return images.random_crop(photo, self.size, np.random.default_rng(seed))

    def param_shapes(self) -> list[tf.TensorShape]:
        return [tf.TensorShape([self.size, self.size, 3])]

    def initial_params(self, seed: int) -> list[tf.Tensor]:
        return [self.content_image(seed)]

    def batches(self, seed: int, split: str = "train") -> tf.data.Dataset:
        del split  # the photos are split by seed range instead
        targets = self.loss_fn.targets(self.content_image(seed), self.style)
        return tf.data.Dataset.from_tensors(targets).repeat()

    def loss(self, params: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        (image,) = params
        return tf.reshape(self.loss_fn(image, batch), [1])

    def metrics(
        self, params: Sequence[tf.Tensor], seed: int, state: tf.Tensor | None = None
    ) -> dict[str, float]:
        del state  # an image has no optimizee state
        (image,) = params
        targets = self.loss_fn.targets(self.content_image(seed), self.style)
        content, style = self.loss_fn.parts(image, targets)
        return {"content_loss": float(content), "style_loss": float(style)}

    def describe(self) -> dict[str, Any]:
        config = dataclasses.asdict(self.loss_fn.config)
        return {
            "name": self.name, "size": self.size, "style": self.style_name, "num_functions": 1,
            "training_photos": list(self.training_photos), "test_photos": list(self.test_photos),
            "vgg_weights": os.path.basename(self.vgg_weights), "loss": config,
            "parametrisation": "pixels in [0, 1], started from the content crop",
        }


def neural_art_problem(variant: str, data_dir: str | None = None, vgg_weights: str | None = None) -> NeuralArt:
    """The named variant of ``NEURAL_ART_VARIANTS`` on the data in ``data_dir``."""
    if variant not in NEURAL_ART_VARIANTS:
        raise ValueError(f"unknown neural-art variant {variant!r}; choose from {sorted(NEURAL_ART_VARIANTS)}")
    data_dir = data_dir or default_data_dir()
    if data_dir is None or not os.path.isdir(os.path.join(data_dir, "content")):
        raise FileNotFoundError(
            f"neural-art data folder {data_dir!r} has no content/ and style/ images; pass the folder"
            " that has them as data_dir, e.g. ../shared/data/neural-art (or set L2L_NEURAL_ART_DIR)"
        )
    size, style = NEURAL_ART_VARIANTS[variant]
    return NeuralArt(data_dir, size, style, vgg_weights, name=variant)
