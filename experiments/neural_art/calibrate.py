"""Calibration of the neural-art loss (run before meta-training; training photos only).

Prints the unweighted content/style terms at the start and after Adam steps on a few
training-seed crops, and the time of one loss+gradient step at 64x64 and 128x128.
Usage: taskset -c 1 python experiments/neural_art/calibrate.py [--steps=128] [--lr=0.02]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from l2l_tf import seeds
from l2l_tf.problems import images
from l2l_tf.problems.neural_art import NeuralArt, StyleLossConfig, default_data_dir

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=128)
parser.add_argument("--lr", type=float, default=0.02)
parser.add_argument("--runs", type=int, default=2)
parser.add_argument("--content_layer", default="block3_conv1")
parser.add_argument("--content_weight", type=float, default=1.0)
parser.add_argument("--style_weight", type=float, default=1.0)
parser.add_argument("--sizes", default="64,128")
parser.add_argument("--out", default="runs/neural_art_calibration")
args = parser.parse_args()
config = StyleLossConfig(content_layer=args.content_layer, content_weight=args.content_weight, style_weight=args.style_weight)
for size in [int(v) for v in args.sizes.split(",")]:
    problem = NeuralArt(default_data_dir(), size, loss_config=config)

    @tf.function(jit_compile=True)
    def step(image, targets, loss_fn=problem.loss_fn):
        with tf.GradientTape() as tape:
            tape.watch(image)
            content, style = loss_fn.parts(image, targets)
            total = content + style
        return content, style, tape.gradient(total, image)

    for run in range(args.runs if size == 64 else 1):
        seed = seeds.TUNING_START + 50_000 + run  # a training-photo seed never used elsewhere
        image = problem.content_image(seed)
        targets = problem.loss_fn.targets(image, problem.style)
        var = tf.Variable(image)
        opt = tf.keras.optimizers.Adam(args.lr)
        times = []
        for t in range(args.steps + 1):
            start = time.perf_counter()
            content, style, grad = step(tf.convert_to_tensor(var), targets)
            times.append(time.perf_counter() - start)
            if t in (0, args.steps // 4, args.steps):
                print(f"size {size} run {run} step {t}: content {float(content):.4g} style {float(style):.4g}"
                      f" |grad|_mean {float(tf.reduce_mean(tf.abs(grad))):.3g}", flush=True)
            if t < args.steps:
                opt.apply_gradients([(grad, var)])
        print(f"size {size}: loss+gradient step median {np.median(times[5:]) * 1000:.1f} ms", flush=True)
        images.write_image(tf.concat([image, var, problem.style], axis=1), f"{args.out}_{size}_{run}.png")
