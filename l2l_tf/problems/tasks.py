"""The task distribution for a general learned optimizer, split three ways.

- **training** (``TRAINING``): what meta-training samples from;
- **validation** (``VALIDATION``): held out from meta-training, for rule selection
  (checkpoints, variants), never for the reported results;
- **held-out evaluation suite** (``HELDOUT``): the tasks of the reported table
  (``l2l-evaluate-suite``). No held-out configuration appears in training or validation:
  each differs in at least its architecture (width/depth/activation combination), its data
  variant, or its batch/initialisation/loss scale, and the suite holds data variants
  (full-resolution digits for conv nets, ``blobs_wide``, ``regression_wide``) and an
  activation/depth combination (3-layer GELU) that training never sees.

Names resolve through ``task_list(NAME)`` (a list's name or one task's name) and
``make_task(NAME)``; ``experiments/general/TASKS.md`` documents the lists. Every task runs
a few hundred steps on a CPU in seconds. Every list and every task is registered under its
name in the meta-trainer's registry (``l2l_tf.problems.task_lists``: ``--problem=tasks:NAME``)
on import.
"""

from __future__ import annotations

import dataclasses

from l2l_tf.problems.base import Problem
from l2l_tf.problems.data import TFDS
from l2l_tf.problems.task_lists import register_task_list
from l2l_tf.problems.task_specs import ConvTask, MLPTask, QuadraticTask, TaskSpec

DEFAULT_STEPS = 200


@dataclasses.dataclass(frozen=True)
class Task:
    """A named task: its spec and its default horizon (optimizee steps per run)."""

    name: str
    spec: TaskSpec
    steps: int = DEFAULT_STEPS

    def build(self, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
        """The task's ``Problem`` (digit data from ``data_source``: ``tfds`` or ``idx`` + ``data_dir``)."""
        return self.spec.build(self.name, data_source, data_dir)


def _tasks(*tasks: Task) -> tuple[Task, ...]:
    for task in tasks:
        task.spec.check(task.name)
    return tasks


TRAINING = _tasks(
    Task("mlp_sigmoid_20", MLPTask((20,), "sigmoid", init_stddev=0.01)),
    Task("mlp_relu_32", MLPTask((32,), "relu")),
    Task("mlp_tanh_32x32_d14", MLPTask((32, 32), "tanh", data="digits14", batch_size=64, init_stddev=0.1)),
    Task("mlp_gelu_64_loss0.1", MLPTask((64,), "gelu", loss_scale=0.1)),
    Task("mlp_relu_16x16x16_d14", MLPTask((16, 16, 16), "relu", data="digits14")),
    Task("mlp_sigmoid_40_d5_loss10",
         MLPTask((40,), "sigmoid", data="digits5", batch_size=32, init_stddev=0.01, loss_scale=10.0)),
    Task("mlp_tanh_32_blobs", MLPTask((32,), "tanh", data="blobs", batch_size=64)),
    Task("mlp_relu_32_regression", MLPTask((32,), "relu", data="regression")),
    Task("mlp_gelu_64x32_blobs", MLPTask((64, 32), "gelu", data="blobs", init_stddev=0.1)),
    Task("mlp_sigmoid_32x32_d14_2", MLPTask((32, 32), "sigmoid", data="digits14_2", batch_size=32)),
    Task("conv_bn_8x8_d14", ConvTask((8, 8), True, data="digits14", batch_size=64)),
    Task("conv_8x8_d14_5", ConvTask((8, 8), False, data="digits14_5", batch_size=64)),
    Task("conv_bn_16_d14_2_loss3", ConvTask((16,), True, data="digits14_2", batch_size=32, loss_scale=3.0)),
    Task("conv_8x16_d14_init0.1", ConvTask((8, 16), False, data="digits14", init_stddev=0.1)),
    Task("quadratic_10", QuadraticTask(10)),
    Task("quadratic_5_loss0.1", QuadraticTask(5, loss_scale=0.1)),
    Task("quadratic_20", QuadraticTask(20, functions=64)),
)

VALIDATION = _tasks(
    Task("val_mlp_relu_24x24_d14", MLPTask((24, 24), "relu", data="digits14", batch_size=64)),
    Task("val_mlp_tanh_48", MLPTask((48,), "tanh", init_stddev=0.01)),
    Task("val_mlp_gelu_32x32_blobs", MLPTask((32, 32), "gelu", data="blobs", batch_size=32)),
    Task("val_conv_bn_12x12_d14_5", ConvTask((12, 12), True, data="digits14_5", batch_size=64)),
    Task("val_conv_8_d14_2", ConvTask((8,), False, data="digits14_2", batch_size=32)),
    Task("val_quadratic_15_loss3", QuadraticTask(15, loss_scale=3.0)),
)

HELDOUT = _tasks(
    Task("mlp_relu_64x32", MLPTask((64, 32), "relu")),
    Task("mlp_relu_128x64_loss0.1", MLPTask((128, 64), "relu", loss_scale=0.1)),
    Task("mlp_tanh_100", MLPTask((100,), "tanh", batch_size=64)),
    Task("mlp_tanh_64x64_blobs_wide_loss10",
         MLPTask((64, 64), "tanh", data="blobs_wide", init_stddev=0.1, loss_scale=10.0)),
    Task("mlp_gelu_32x32x32_d14", MLPTask((32, 32, 32), "gelu", data="digits14")),
    Task("mlp_sigmoid_48x48_d5", MLPTask((48, 48), "sigmoid", data="digits5", batch_size=64, init_stddev=0.01)),
    Task("mlp_relu_64_regression_wide", MLPTask((64,), "relu", data="regression_wide", batch_size=64)),
    Task("conv_bn_16x16_d28", ConvTask((16, 16), True, data="digits", batch_size=64)),
    Task("conv_16x16_d14", ConvTask((16, 16), False, data="digits14")),
    Task("quadratic_30_loss0.3", QuadraticTask(30, functions=32, loss_scale=0.3)),
)

LISTS: dict[str, tuple[Task, ...]] = {"training": TRAINING, "validation": VALIDATION, "heldout": HELDOUT}
TASKS: dict[str, Task] = {task.name: task for tasks in LISTS.values() for task in tasks}


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown task or task list {name!r}; lists: {', '.join(LISTS)}; tasks: {', '.join(TASKS)}"
    )


def tasks_named(name: str) -> tuple[Task, ...]:
    """The tasks of list ``name`` (``training``, ``validation``, ``heldout``), or the one task
    ``name``; a comma-separated ``name`` joins several. A one-line ``ValueError`` otherwise."""
    found: list[Task] = []
    for part in (p.strip() for p in name.split(",")):
        if part in LISTS:
            found += LISTS[part]
        elif part in TASKS:
            found.append(TASKS[part])
        else:
            raise _unknown(part)
    return tuple(found)


def make_task(name: str, data_source: str = TFDS, data_dir: str | None = None) -> Problem:
    """The ``Problem`` of task ``name``."""
    if name not in TASKS:
        raise _unknown(name)
    return TASKS[name].build(data_source, data_dir)


def task_list(name: str, data_source: str = TFDS, data_dir: str | None = None) -> list[Problem]:
    """The ``Problem``s of task list (or task) ``name``, for meta-training or evaluation."""
    return [task.build(data_source, data_dir) for task in tasks_named(name)]


def _register_with_the_meta_trainer() -> None:
    """Every list and task as ``tasks:NAME`` in the meta-trainer's registry (``task_lists``)."""
    for name in (*LISTS, *TASKS):
        register_task_list(name, lambda data_source, data_dir, name=name: task_list(name, data_source, data_dir))


_register_with_the_meta_trainer()
