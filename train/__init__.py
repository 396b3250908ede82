"""absl-flag binaries of l2l_tf, runnable from a checkout as ``python -m train.X``.

TensorFlow's start-up lines are filtered by ``l2l_tf.startup`` (a user's own
``TF_CPP_MIN_LOG_LEVEL`` switches the filter off).
"""
