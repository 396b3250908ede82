"""absl-flag binaries of l2l_tf: meta_train, evaluate, export."""

import os

# Keep TensorFlow's C++ start-up chatter out of the binaries' output (set before TF loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
