"""``python -m train.meta_train`` in a checkout: the ``l2l-meta-train`` program (``l2l_tf/cli/meta_train.py``)."""

from l2l_tf.cli.meta_train import main

if __name__ == "__main__":
    main()
