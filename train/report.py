"""``python -m train.report`` in a checkout: the ``l2l-report`` program (``l2l_tf/cli/report.py``)."""

from l2l_tf.cli.report import main

if __name__ == "__main__":
    main()
