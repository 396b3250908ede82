"""``python -m train.evaluate_suite`` in a checkout: the ``l2l-evaluate-suite`` program (``l2l_tf/cli/evaluate_suite.py``)."""

from l2l_tf.cli.evaluate_suite import main

if __name__ == "__main__":
    main()
