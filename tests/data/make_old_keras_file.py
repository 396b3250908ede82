"""Writes old_inline_weights.keras: a model compiled with the LearnedOptimizer of l2l_tf
before the compact config (commit 7ee95ca), whose config inlines the rule's weights.

    git archive 7ee95ca l2l_tf saved_optimizers | tar -x -C OLD
    PYTHONPATH=OLD python tests/data/make_old_keras_file.py OLD/saved_optimizers/quadratic_lstm OUT.keras
"""

import sys

import keras
import numpy as np

from l2l_tf import LearnedOptimizer

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
model.compile(optimizer=LearnedOptimizer.load(sys.argv[1], learning_rate=0.5), loss="mse")
x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4)
model.fit(x, x[:, :3] * 2.0, batch_size=8, epochs=1, verbose=0, shuffle=False)
model.save(sys.argv[2])
