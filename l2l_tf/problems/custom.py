"""A user's own optimizee for the binaries: ``--problem_fn=MODULE:FUNCTION``.

``FUNCTION()`` returns an ``l2l_tf`` ``Problem``, typically a ``KerasProblem`` of the
user's model and data::

    # my_problem.py
    def make():
        return l2l_tf.KerasProblem(build_my_model, (x_train, y_train), (x_test, y_test))

    python -m train.meta_train --problem_fn=my_problem:make --save_path=runs/mine
"""

from __future__ import annotations

import importlib
import os
import sys

from l2l_tf.problems.base import Problem


class ProblemFnError(ValueError):
    """``--problem_fn`` does not name a function returning a ``Problem``; the message says why."""


def load_problem(spec: str) -> Problem:
    """The ``Problem`` returned by ``MODULE:FUNCTION`` (importable from the working folder
    or ``PYTHONPATH``); a one-line ``ProblemFnError`` naming what is wrong otherwise."""
    module_name, separator, function_name = spec.partition(":")
    if not separator or not module_name or not function_name:
        raise ProblemFnError(f"--problem_fn={spec}: expected MODULE:FUNCTION, e.g. my_problem:make")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # console scripts do not put the working folder on the path
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ProblemFnError(
            f"--problem_fn={spec}: cannot import {module_name!r} ({error}); run from the folder that holds it"
            " or add that folder to PYTHONPATH"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ProblemFnError(f"--problem_fn={spec}: module {module_name!r} has no function {function_name!r}")
    problem = function()
    if not isinstance(problem, Problem):
        raise ProblemFnError(
            f"--problem_fn={spec} returned a {type(problem).__name__}, not an l2l_tf Problem; wrap your model:"
            " l2l_tf.KerasProblem(model_fn, (x, y))"
        )
    return problem
