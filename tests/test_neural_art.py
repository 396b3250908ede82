"""The style-transfer problem: VGG19 weight loading, the loss and its gradients, the data split."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from neural_art_helpers import write_fake_data_dir, write_fake_vgg_npz

from l2l_tf import seeds
from l2l_tf.problems import images, vgg
from l2l_tf.problems.neural_art import NeuralArt, StyleTransferLoss, default_data_dir

LAYERS = ["block1_conv1", "block1_conv2"]


def test_npz_weights_are_rebuilt_as_table_lookups(tmp_path):
    path = str(tmp_path / "vgg.npz")
    arrays = write_fake_vgg_npz(path, layers=("block1_conv1", "block1_conv2"))
    model = vgg.feature_extractor(LAYERS, path)
    assert [layer.name for layer in model.layers[1:]] == LAYERS  # truncated after the deepest layer
    for name in LAYERS:
        kernel, bias = model.get_layer(name).get_weights()
        np.testing.assert_array_equal(kernel, arrays[f"{name}/kernel_table"][arrays[f"{name}/kernel_index"]])
        np.testing.assert_array_equal(bias, arrays[f"{name}/bias"])


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        ("missing", "not found"),
        ("garbage", "not a readable .npz"),
        ("missing_key", "lacks ['block1_conv2/kernel_index'"),
        ("wrong_shape", "expected uint8[3, 3, 64, 64]"),
        ("wrong_table", "kernel_table must be [256]"),
    ],
)
def test_bad_vgg_weights_give_a_clear_error(tmp_path, corrupt, expected):
    path = str(tmp_path / "vgg.npz")
    arrays = write_fake_vgg_npz(path, layers=("block1_conv1", "block1_conv2"))
    if corrupt == "missing":
        path = str(tmp_path / "absent.npz")
    elif corrupt == "garbage":
        with open(path, "wb") as f:
            f.write(b"this is not an npz file")
    else:
        if corrupt == "missing_key":
            del arrays["block1_conv2/kernel_index"]
        elif corrupt == "wrong_shape":
            arrays["block1_conv2/kernel_index"] = arrays["block1_conv2/kernel_index"][:, :, :32]
        else:
            arrays["block1_conv1/kernel_table"] = arrays["block1_conv1/kernel_table"][:100]
        np.savez(path, **arrays)
    with pytest.raises(vgg.VGGWeightsError) as error:
        vgg.feature_extractor(LAYERS, path)
    message = str(error.value)
    assert expected in message
    assert "--vgg_weights=" in message and "imagenet" in message  # says how to provide them
    assert "\n" not in message


def test_unknown_layer_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown VGG19 layers"):
        vgg.feature_extractor(["block9_conv1"], str(tmp_path / "x.npz"))


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return write_fake_data_dir(str(tmp_path_factory.mktemp("neural_art")))


@pytest.fixture(scope="module")
def tiny_problem(fake_dir):
    return NeuralArt(fake_dir, size=16, style="stripes", training_photos=("red",), test_photos=("blue",))


def test_loss_terms_vanish_at_their_targets(tiny_problem):
    loss_fn = tiny_problem.loss_fn
    content = tiny_problem.content_image(0)
    content_term, style_term = loss_fn.parts(content, loss_fn.targets(content, content))
    assert float(content_term) == pytest.approx(0.0, abs=1e-9)
    assert float(style_term) == pytest.approx(0.0, abs=1e-9)
    content_term, style_term = loss_fn.parts(content, loss_fn.targets(content, tiny_problem.style))
    assert float(content_term) == pytest.approx(0.0, abs=1e-9) and float(style_term) > 0


def test_gram_matches_numpy():
    features = tf.random.stateless_normal([3, 5, 4], [1, 2])
    expected = np.einsum("hwc,hwd->cd", features.numpy(), features.numpy()) / 15
    np.testing.assert_allclose(StyleTransferLoss.gram(features).numpy(), expected, rtol=1e-5)


def test_gradient_matches_finite_differences(tiny_problem):
    seed = 3
    # Noise breaks the ties of max-pooling over the fake photos' identical rows (kinks where
    # finite differences and the gradient legitimately differ).
    start = tiny_problem.flatten(tiny_problem.initial_params(seed))
    params = start + 0.1 * tf.random.stateless_uniform(start.shape, [2, 3])
    batch = next(iter(tiny_problem.batches(seed)))
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = tf.reduce_sum(tiny_problem.flat_loss(params, batch))
    gradient = tape.gradient(loss, params)
    assert gradient.shape == params.shape and bool(tf.reduce_all(tf.math.is_finite(gradient)))
    direction = tf.random.stateless_normal(params.shape, [4, 5])
    direction /= tf.norm(direction)
    eps = 1e-2
    plus = tiny_problem.flat_loss(params + eps * direction, batch)[0]
    minus = tiny_problem.flat_loss(params - eps * direction, batch)[0]
    numeric = float(plus - minus) / (2 * eps)
    analytic = float(tf.reduce_sum(gradient * direction))
    assert numeric == pytest.approx(analytic, rel=0.05)
    # and a gradient step lowers the loss
    lowered = tiny_problem.flat_loss(params - 1e-3 * gradient / tf.reduce_max(tf.abs(gradient)), batch)[0]
    assert float(lowered) < float(loss)


def test_evaluation_seeds_use_test_photos_only(tiny_problem):
    assert tiny_problem.param_shapes() == [tf.TensorShape([16, 16, 3])]
    for seed in (0, 5, 19):
        image = tiny_problem.content_image(seed).numpy()
        assert image[..., 2].mean() > 0.4 and image[..., 0].mean() < 0.1  # blue = test photo
    for seed in (seeds.TUNING_START, seeds.VALIDATION_START, seeds.training_seed(7)):
        image = tiny_problem.content_image(seed).numpy()
        assert image[..., 0].mean() > 0.4 and image[..., 2].mean() < 0.1  # red = training photo
    np.testing.assert_array_equal(tiny_problem.content_image(4).numpy(), tiny_problem.content_image(4).numpy())
    assert not np.array_equal(tiny_problem.content_image(4).numpy(), tiny_problem.content_image(5).numpy())


def test_unreadable_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(images.ImageReadError, match="cannot read image .*bad.jpg"):
        images.read_image(str(bad))
    with pytest.raises(images.ImageReadError, match="not found"):
        images.read_image(str(tmp_path / "absent.png"))


@pytest.mark.skipif(default_data_dir() is None, reason="shared neural-art data not found")
def test_real_vgg19_weights_load_and_give_features():
    path = os.path.join(default_data_dir(), "vgg19", "vgg19_notop_q8.npz")
    loss_fn = StyleTransferLoss(path)
    photo = images.read_image(os.path.join(default_data_dir(), "content", "skimage_chelsea.jpg"))
    content = images.center_square(photo, 32)
    features = loss_fn.features(content)
    assert [f.shape for f in features] == [[8, 8, 256], [32, 32, 64], [16, 16, 128], [8, 8, 256]]
    assert all(bool(tf.reduce_all(tf.math.is_finite(f))) for f in features)
    # ImageNet features of a photo are sparse ReLU maps, neither all zero nor all positive.
    active = float(tf.reduce_mean(tf.cast(features[1] > 0, tf.float32)))
    assert 0.05 < active < 0.95
