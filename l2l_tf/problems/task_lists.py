"""Named lists of problems, for meta-training over a task distribution (``--problem=tasks:NAME``).

A task list is a function ``make(data_source, data_dir)`` returning a list of ``Problem``s
(the data settings are the binaries' ``--data_source`` and ``--data_dir``), registered
under a name with ``register_task_list``. ``l2l_tf.problems.tasks`` (the task families and held-out suites),
when present, registers its lists on import; ``task_list`` imports it before looking a
name up, so the binaries see its lists without naming the module. One tiny list is built
in: ``quadratics_small``, two quadratics of different sizes (what the tests meta-train on).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from l2l_tf.problems.base import Problem
from l2l_tf.problems.data import TFDS
from l2l_tf.problems.quadratic import Quadratic

TASKS_PREFIX = "tasks:"
_PLUGIN = "l2l_tf.problems.tasks"
TaskListMaker = Callable[[str, "str | None"], list[Problem]]
_TASK_LISTS: dict[str, TaskListMaker] = {}


def register_task_list(name: str, make: TaskListMaker) -> None:
    """Makes ``make(data_source, data_dir)`` (a non-empty list of problems) available as ``tasks:NAME``."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"task list names are non-empty and have no ':' or ',', got {name!r}")
    _TASK_LISTS[name] = make


def _load_plugin() -> None:
    if importlib.util.find_spec(_PLUGIN) is not None:
        importlib.import_module(_PLUGIN)


def task_list_names() -> list[str]:
    """The registered task lists' names, sorted."""
    _load_plugin()
    return sorted(_TASK_LISTS)


def is_task_list(problem: str) -> bool:
    """Whether ``problem`` (a problem setting, e.g. the binaries' ``--problem``) names a task list."""
    return problem.startswith(TASKS_PREFIX)


def task_list(name: str, data_source: str = TFDS, data_dir: str | None = None) -> list[Problem]:
    """The problems of task list ``name`` (with or without the ``tasks:`` prefix)."""
    name = name[len(TASKS_PREFIX):] if is_task_list(name) else name
    _load_plugin()
    if name not in _TASK_LISTS:
        raise ValueError(f"unknown task list {name!r}; choose from {sorted(_TASK_LISTS)}")
    problems = list(_TASK_LISTS[name](data_source, data_dir))
    if not problems or not all(isinstance(p, Problem) for p in problems):
        raise ValueError(f"task list {name!r} must give a non-empty list of l2l_tf Problems")
    return problems


def _quadratics_small(data_source: str, data_dir: str | None) -> list[Problem]:
    del data_source, data_dir  # quadratics need no data
    small, large = Quadratic(dims=3, batch_size=4), Quadratic(dims=6, batch_size=4)
    small.name, large.name = "quadratic_3", "quadratic_6"
    return [small, large]


register_task_list("quadratics_small", _quadratics_small)
