"""``python -m train.evaluate`` in a checkout: the ``l2l-evaluate`` program (``l2l_tf/cli/evaluate.py``)."""

from l2l_tf.cli.evaluate import main

if __name__ == "__main__":
    main()
