"""``python -m train.stylize`` in a checkout: the ``l2l-stylize`` program (``l2l_tf/cli/stylize.py``)."""

from l2l_tf.cli.stylize import main

if __name__ == "__main__":
    main()
