"""When to scale a shipped rule's ``learning_rate``: model.fit on the MNIST MLP with the
rule's update multiplied by 0.25 ... 2, inside its training distribution (sigmoid) and
outside it (ReLU), at about its horizon (3 epochs = 189 steps) and beyond (10 epochs = 630).

Protocol (fixed before any result was seen): the shared 8,000-image MNIST sample, batch
128, seeds 0-2 (initial weights and batch order), Keras' default initialisation; for each
setting the mean over seeds of the training loss of the epoch (Keras' running mean over
the epoch) and the final test accuracy; Adam at Keras' default learning rate 1e-3 as the
reference. Nothing is tuned on the test split; the table reports every setting run.

    python experiments/learning_rate_scale/sweep.py --data_dir=../shared/data/mnist-10k
"""

import json
import os
import sys

import numpy as np

RULE = "mnist_lstm_momentum"
SCALES = (0.25, 0.5, 1.0, 2.0)
ACTIVATIONS = ("sigmoid", "relu")
SEEDS = (0, 1, 2)
EPOCHS = 10
OUT = os.path.dirname(os.path.abspath(__file__))


def fit(make_optimizer, activation, seed, train, test):
    import keras

    from l2l_tf.problems.mnist import mlp

    keras.utils.set_random_seed(seed)
    model = mlp([20], activation)
    model.compile(optimizer=make_optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train.images, train.labels, batch_size=128, epochs=EPOCHS, verbose=0)
    return history.history["loss"], float(model.evaluate(test.images, test.labels, verbose=0)[1])


def main(data_dir):
    import keras

    from l2l_tf import LearnedOptimizer
    from l2l_tf.problems.data import load_idx_split

    train, test = load_idx_split(data_dir, "train"), load_idx_split(data_dir, "test")
    settings = [("adam 1e-3", lambda: keras.optimizers.Adam(1e-3))]
    settings += [(f"{RULE} x{s:g}", lambda s=s: LearnedOptimizer.load(RULE, learning_rate=s)) for s in SCALES]
    rows = []
    for activation in ACTIVATIONS:
        for label, make in settings:
            runs = [fit(make, activation, seed, train, test) for seed in SEEDS]
            losses = np.array([r[0] for r in runs])
            rows.append({"optimizer": label, "activation": activation, "loss_epoch_3": float(losses[:, 2].mean()),
                         "loss_epoch_10": float(losses[:, -1].mean()), "test_accuracy": float(np.mean([r[1] for r in runs])),
                         "loss_per_epoch_per_seed": losses.tolist()})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "loss_per_epoch_per_seed"}), flush=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"protocol": __doc__, "rows": rows}, f, indent=1)
    lines = ["| optimizer | activation | training loss, epoch 3 (189 steps) | epoch 10 (630 steps) | test accuracy |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['optimizer']} | {r['activation']} | {r['loss_epoch_3']:.4f} | {r['loss_epoch_10']:.4f}"
              f" | {r['test_accuracy']:.4f} |" for r in rows]
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    arg = next((a for a in sys.argv[1:] if a.startswith("--data_dir=")), "--data_dir=../shared/data/mnist-10k")
    main(arg.split("=", 1)[1])
