"""``python -m train.export`` in a checkout: the ``l2l-export`` program (``l2l_tf/cli/export.py``)."""

from l2l_tf.cli.export import main

if __name__ == "__main__":
    main()
