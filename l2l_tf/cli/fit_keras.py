"""Trains a Keras model with model.fit, once with a learned optimizer and once with Adam.

Example:
  l2l-fit-keras --optimizer=mnist_lstm_momentum \
      --data_source=idx --data_dir=../shared/data/mnist-10k --epochs=5

Prints the per-epoch training loss and the final test accuracy of both, side by side.
The model is the paper's MNIST MLP (784-20-10, sigmoid) unless --hidden/--activation say
otherwise; both runs start from the same initial weights and see the same batches.
"""

from __future__ import annotations

from absl import flags

from l2l_tf.cli import common

flags.DEFINE_string(
    "optimizer", "mnist_lstm", "Learned optimizer: a shipped rule's name (l2l-optimizers lists them) or an exported rule folder."
)
flags.DEFINE_float("adam_learning_rate", 1e-3, "Adam's learning rate (Keras default 0.001).", lower_bound=0.0)
flags.DEFINE_integer("epochs", 5, "Epochs over the training split.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Minibatch size.", lower_bound=1)
flags.DEFINE_list("hidden", ["20"], "Hidden layer sizes.")
flags.DEFINE_string("activation", "sigmoid", "Hidden activation.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the batch order.", lower_bound=0)
flags.DEFINE_enum("data_source", "tfds", ["tfds", "idx"], "MNIST from TFDS or local IDX files.")
flags.DEFINE_string("data_dir", None, "IDX folder (with --data_source=idx) or TFDS data_dir.")
FLAGS = flags.FLAGS


def parse_hidden(values: list[str]) -> list[int]:
    """``--hidden`` as positive layer sizes; a usage error otherwise."""
    try:
        hidden = [int(h) for h in values]
    except ValueError:
        hidden = []
    if not hidden or any(h < 1 for h in hidden):
        common.usage_error(f"--hidden must be positive integers (layer sizes), got {','.join(values)!r}")
    return hidden


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    import keras

    from l2l_tf import catalog, export, rule_sets
    from l2l_tf.optimizer import LearnedOptimizer
    from l2l_tf.problems.data import DataUnavailableError, load_split
    from l2l_tf.problems.mnist import mlp

    hidden = parse_hidden(FLAGS.hidden)
    try:
        keras.activations.get(FLAGS.activation)
    except ValueError:
        common.usage_error(f"--activation={FLAGS.activation} is not a Keras activation (e.g. sigmoid, relu, tanh)")
    try:
        rule = export.load(catalog.resolve(FLAGS.optimizer))
        train = load_split("train", FLAGS.data_source, FLAGS.data_dir)
        test = load_split("test", FLAGS.data_source, FLAGS.data_dir)
    except (export.RuleLoadError, DataUnavailableError, FileNotFoundError, ValueError) as error:
        common.usage_error(str(error))
    # a rule that reads its run's progress is told the run's length, as a schedule would be
    total_steps = FLAGS.epochs * -(-len(train.labels) // FLAGS.batch_size) if rule_sets.reads_progress(rule) else None
    try:
        learned = LearnedOptimizer(rule, total_steps=total_steps)
    except ValueError as error:
        common.usage_error(str(error))
    histories, accuracies = {}, {}
    for name, optimizer in (("learned", learned), ("adam", keras.optimizers.Adam(FLAGS.adam_learning_rate))):
        keras.utils.set_random_seed(FLAGS.seed)
        model = mlp(hidden, FLAGS.activation)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        history = model.fit(train.images, train.labels, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0)
        histories[name] = history.history["loss"]
        accuracies[name] = model.evaluate(test.images, test.labels, verbose=0)[1]
    print(f"MLP 784-{'-'.join(map(str, hidden))}-10 ({FLAGS.activation}), {len(train.labels)} training images,"
          f" batch {FLAGS.batch_size}: training loss per epoch")
    print(f"{'epoch':>5} {'learned':>10} {'adam':>10}")
    for epoch, (a, b) in enumerate(zip(histories["learned"], histories["adam"]), start=1):
        print(f"{epoch:>5} {a:>10.4f} {b:>10.4f}")
    print(f"test accuracy: learned {accuracies['learned']:.4f}, adam {accuracies['adam']:.4f}")


def main() -> None:
    """The ``l2l-fit-keras`` console script (``python -m train.fit_keras`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
