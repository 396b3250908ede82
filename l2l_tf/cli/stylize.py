"""Stylises a photo with a painting (Gatys et al.'s loss over VGG19) using a learned or Keras optimizer.

Example:
  python -m train.stylize --content=photo.jpg --style=painting.jpg --output=out.png \
      --size=256 --optimizer=saved_optimizers/neural_art_lstm --num_steps=128

--optimizer is a shipped learned optimizer (a SavedModel folder) or one of sgd, nag,
rmsprop, adam. VGG19 weights: --vgg_weights=FILE.npz (offline; the format of
../shared/data/neural-art/vgg19) or --vgg_weights=imagenet (Keras downloads them once).
Shows a progress bar; --frames_every=N also writes every N-th step's image.
"""

from __future__ import annotations

import os
import time

import keras
from absl import flags

from l2l_tf import baselines, catalog, export, rule_sets, stylize
from l2l_tf.cli import common
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems import images, neural_art, vgg

flags.DEFINE_string("content", None, "The photo to stylise (JPEG, PNG, GIF or BMP).")
flags.DEFINE_string("style", None, "The painting whose style to transfer.")
flags.DEFINE_string("output", None, "Where to write the stylised image (.png or .jpg).")
flags.DEFINE_integer("size", 256, "Longer side of the output in pixels (aspect ratio kept).", lower_bound=16)
flags.DEFINE_string(
    "optimizer", "saved_optimizers/neural_art_lstm",
    "A learned optimizer (SavedModel folder) or a Keras optimizer: sgd, nag, rmsprop, adam.",
)
flags.DEFINE_float(
    "learning_rate", None,
    "Learning rate. Keras optimizers: default the one tuned for 64x64 images in the neural-art"
    " evaluation; learned optimizers: a multiplier of the learned update (default 1, as trained).",
    lower_bound=0.0,
)
flags.DEFINE_integer("num_steps", 128, "Optimization steps.", lower_bound=1)
flags.DEFINE_string(
    "vgg_weights", None,
    "VGG19 weights: an .npz file (default: vgg19/vgg19_notop_q8.npz of $L2L_NEURAL_ART_DIR or"
    " ../shared/data/neural-art) or 'imagenet' (Keras' download, needs network access once).",
)
flags.DEFINE_integer("frames_every", 0, "If > 0, also write every N-th step's image to OUTPUT_frames/.", lower_bound=0)
flags.DEFINE_float(
    "memory_limit_gb", None,
    "Refuse sizes whose estimated memory exceeds this (default: the memory available now).", lower_bound=0.0,
)
flags.mark_flags_as_required(["content", "style", "output"])
FLAGS = flags.FLAGS

# Tuned on 64x64 images in the neural-art evaluation (experiments/neural_art/eval_a), except SGD:
# its tuned 1.0 diverged on 9 of the 20 evaluation images, so the 0.3 tuned in eval_c is used.
DEFAULT_LEARNING_RATES = {"adam": 0.1, "rmsprop": 0.01, "sgd": 0.3, "nag": 0.3}


def default_vgg_weights() -> str:
    if FLAGS.vgg_weights:
        return FLAGS.vgg_weights
    data_dir = neural_art.default_data_dir()
    if data_dir is None:
        common.usage_error(f"no VGG19 weights found; {vgg.HOW_TO_PROVIDE}")
    return os.path.join(data_dir, neural_art.NPZ_NAME)


def make_optimizer(name: str) -> keras.optimizers.Optimizer:
    """The Keras baseline ``name`` or the learned optimizer saved at ``name``."""
    if name in baselines.BASELINES:
        return baselines.make_baseline(name, FLAGS.learning_rate or DEFAULT_LEARNING_RATES[name])
    try:
        folder = catalog.resolve(name)
    except FileNotFoundError:
        folder = None
    if folder is None or not os.path.isdir(folder):
        common.usage_error(
            f"--optimizer={name}: neither a Keras optimizer ({', '.join(sorted(baselines.BASELINES))})"
            " nor a shipped learned optimizer's name or folder (e.g. neural_art_lstm; l2l-optimizers lists them)"
        )
    try:
        rule = export.load(folder)
        return LearnedOptimizer(
            rule,
            learning_rate=1.0 if FLAGS.learning_rate is None else FLAGS.learning_rate,
            total_steps=FLAGS.num_steps if rule_sets.reads_progress(rule) else None,  # a rule told its run's length
        )
    except (export.RuleLoadError, FileNotFoundError, ValueError) as error:
        common.usage_error(f"--optimizer={name}: {error}")
        raise  # unreachable


def check_memory(height: int, width: int, learned: bool) -> None:
    """A usage error, before allocating anything, if the size would not fit in memory."""
    needed = stylize.estimate_memory_bytes(height, width, learned)
    limit = FLAGS.memory_limit_gb * 2**30 if FLAGS.memory_limit_gb is not None else stylize.available_memory_bytes()
    if limit is not None and needed > limit:
        common.usage_error(
            f"--size={FLAGS.size} ({width}x{height} pixels) needs about {needed / 2**30:.1f} GiB,"
            f" more than the {limit / 2**30:.1f} GiB available; use a smaller --size"
        )


def frame_writer(frames_dir: str | None):
    """``on_step``: a Keras progress bar, and every ``--frames_every``-th image written."""
    bar = keras.utils.Progbar(FLAGS.num_steps, stateful_metrics=["loss", "content", "style"])

    def on_step(step: int, image, losses: dict[str, float]) -> None:
        bar.update(step, values=list(losses.items()))
        if frames_dir and step % FLAGS.frames_every == 0:
            images.write_image(image, os.path.join(frames_dir, f"step_{step:05d}.png"))

    return on_step


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    try:
        content_photo = images.read_image(FLAGS.content)
        painting = images.read_image(FLAGS.style)
    except images.ImageReadError as error:
        common.usage_error(str(error))
    height, width = stylize.output_shape(int(content_photo.shape[0]), int(content_photo.shape[1]), FLAGS.size)
    learned = FLAGS.optimizer not in baselines.BASELINES
    check_memory(height, width, learned)
    common.require_dir_parent_writable(FLAGS.output, "output")
    weights = default_vgg_weights()
    try:
        loss_fn = neural_art.StyleTransferLoss(weights)
    except vgg.VGGWeightsError as error:
        common.usage_error(str(error))
    optimizer = make_optimizer(FLAGS.optimizer)
    content = images.resize(content_photo, height, width)
    style = stylize.style_at_scale(painting, height, width)
    frames_dir = os.path.splitext(FLAGS.output)[0] + "_frames" if FLAGS.frames_every else None
    print(f"stylising {FLAGS.content} ({width}x{height}) with {FLAGS.style} using {FLAGS.optimizer}", flush=True)
    start = time.time()
    image = stylize.stylize(content, style, loss_fn, optimizer, FLAGS.num_steps, frame_writer(frames_dir))
    images.write_image(image, FLAGS.output)
    print(f"wrote {FLAGS.output} after {FLAGS.num_steps} steps in {time.time() - start:.1f} s"
          + (f"; frames in {frames_dir}" if frames_dir else ""), flush=True)


def main() -> None:
    """The ``l2l-stylize`` console script (``python -m train.stylize`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
