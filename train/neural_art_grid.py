"""``python -m train.neural_art_grid`` in a checkout: the ``l2l-neural-art-grid`` program (``l2l_tf/cli/neural_art_grid.py``)."""

from l2l_tf.cli.neural_art_grid import main

if __name__ == "__main__":
    main()
