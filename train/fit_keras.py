"""``python -m train.fit_keras`` in a checkout: the ``l2l-fit-keras`` program (``l2l_tf/cli/fit_keras.py``)."""

from l2l_tf.cli.fit_keras import main

if __name__ == "__main__":
    main()
