"""A quiet TensorFlow start-up: drops TensorFlow's known, harmless start-up lines.

Importing TensorFlow and initialising its devices prints 7-9 lines on stderr from C++
(oneDNN, CPU instruction sets, "Could not find cuda drivers", and on machines without a
GPU an alarming ``E0000 ... failed call to cuInit``). ``TF_CPP_MIN_LOG_LEVEL`` cannot hide
most of them (they are written before TensorFlow reads it), so ``import_tensorflow``
captures stderr while TensorFlow imports and finds its devices, then writes back every
line that is not one of those known start-up lines: nothing else is lost.

A user who sets ``TF_CPP_MIN_LOG_LEVEL`` keeps TensorFlow's own behaviour (no filtering),
as does any process that imported TensorFlow before ``l2l_tf``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# TensorFlow's start-up lines: informational, or about a GPU that is not there.
START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
)


def is_start_up_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's known start-up lines."""
    return bool(START_UP_NOISE.search(line))


def import_tensorflow() -> None:
    """Imports TensorFlow and finds its devices with the start-up lines filtered out.

    Does nothing (TensorFlow then imports as usual, when first used) if TensorFlow is already imported, if the user set
    ``TF_CPP_MIN_LOG_LEVEL``, or if stderr has no file descriptor."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow
        return
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(stderr_fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), stderr_fd)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # initialises the platforms (where cuInit is logged)
        finally:
            sys.stderr.flush()
            os.dup2(saved, stderr_fd)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_start_up_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
