"""The task distribution: every task builds and steps, the lists are disjoint, seeds reproduce."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.meta import loss_gradient_and_state
from l2l_tf.problems import tasks
from l2l_tf.problems.data import IDX, Split
from l2l_tf.problems.task_data import DATA, downsample, load_data
from l2l_tf.problems.task_specs import ConvTask, MLPTask, QuadraticTask


@pytest.fixture(scope="module")
def built(mnist_data_dir):
    return {name: task.build(IDX, mnist_data_dir) for name, task in tasks.TASKS.items()}


def test_every_task_builds_and_takes_a_finite_step(built):
    for name, problem in built.items():
        params = problem.flatten(problem.initial_params(0))
        losses, gradients, state = loss_gradient_and_state(problem, params, problem.initial_state(0), next(iter(problem.batches(0))))
        assert problem.name == name
        assert np.all(np.isfinite(losses.numpy())) and float(tf.norm(gradients)) > 0, name
        assert state.shape == [problem.state_size]


def test_batch_norm_tasks_carry_state_and_the_others_do_not(built):
    for name, task in tasks.TASKS.items():
        with_state = isinstance(task.spec, ConvTask) and task.spec.batch_norm
        assert (built[name].state_size > 0) == with_state, name


def test_lists_are_disjoint_by_name_and_held_out_configurations_are_unseen():
    names = [{task.name for task in tasks.LISTS[key]} for key in ("training", "validation", "heldout")]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    assert len(tasks.TASKS) == sum(len(n) for n in names)

    def architecture(task):  # the model and data, ignoring batch size and scales
        spec = dataclasses.asdict(task.spec)
        return (type(task.spec).__name__, *(str(spec.get(k)) for k in ("hidden", "activation", "channels", "batch_norm", "dims", "data")))

    seen = {architecture(task) for task in tasks.TRAINING + tasks.VALIDATION}
    assert not [task.name for task in tasks.HELDOUT if architecture(task) in seen]
    def data(task_list):
        return {getattr(task.spec, "data", None) for task in task_list}

    assert data(tasks.HELDOUT) - data(tasks.TRAINING + tasks.VALIDATION) == {"blobs_wide", "regression_wide"}


def test_held_out_suite_covers_the_targets_families():
    specs = [task.spec for task in tasks.HELDOUT]
    assert len(specs) >= 8
    activations = {spec.activation for spec in specs if isinstance(spec, MLPTask)}
    assert {"relu", "tanh"} <= activations
    assert {spec.batch_norm for spec in specs if isinstance(spec, ConvTask)} == {True, False}


def test_seeds_reproduce_parameters_and_batches_and_differ_between_runs(built):
    for name in ("mlp_relu_64x32", "conv_bn_16x16_d28", "quadratic_30_loss0.3", "mlp_relu_64_regression_wide"):
        problem = built[name]
        first, again, other = (problem.flatten(problem.initial_params(seed)).numpy() for seed in (3, 3, 4))
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)
        batches = [tf.nest.flatten(next(iter(problem.batches(seed)))) for seed in (3, 3, 4)]
        for a, b in zip(batches[0], batches[1]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert any(not np.array_equal(a.numpy(), c.numpy()) for a, c in zip(batches[0], batches[2])), name


def test_loss_scale_multiplies_the_loss(mnist_data_dir):
    scaled = MLPTask((8,), "gelu", data="digits14", loss_scale=10.0).build("scaled", IDX, mnist_data_dir)
    plain = MLPTask((8,), "gelu", data="digits14").build("plain", IDX, mnist_data_dir)
    params, batch = plain.initial_params(1), next(iter(plain.batches(1)))
    np.testing.assert_allclose(scaled.loss(params, batch).numpy(), 10 * plain.loss(params, batch).numpy(), rtol=1e-5)
    quadratic = QuadraticTask(4, functions=2, loss_scale=0.5).build("q")
    unscaled = QuadraticTask(4, functions=2).build("q")
    batch = next(iter(quadratic.batches(0)))
    np.testing.assert_allclose(quadratic.loss(quadratic.initial_params(0), batch),
                               0.5 * unscaled.loss(quadratic.initial_params(0), batch), rtol=1e-6)


def test_data_variants(mnist_data_dir):
    split = Split(np.arange(2 * 784, dtype=np.float32).reshape(2, 784), np.array([0, 1]))
    small = downsample(split, 14)
    assert small.images.shape == (2, 196)
    assert small.images[0, 0] == pytest.approx(np.mean([0, 1, 28, 29]))
    train, test = load_data("digits14_5", IDX, mnist_data_dir)
    assert train.images.shape[1] == 196 and set(np.unique(train.labels)) == set(range(5)) and test.labels.max() == 4
    first, second = load_data("blobs"), load_data("blobs")
    np.testing.assert_array_equal(first[0].images, second[0].images)
    assert len(set(first[0].labels)) == DATA["blobs"].classes
    regression, _ = load_data("regression")
    assert regression.labels.shape == (DATA["regression"].examples, DATA["regression"].classes)


def test_registry_resolves_lists_tasks_and_joined_names(mnist_data_dir):
    assert [t.name for t in tasks.tasks_named("heldout")] == [t.name for t in tasks.HELDOUT]
    assert [t.name for t in tasks.tasks_named("quadratic_10, val_quadratic_15_loss3")] == ["quadratic_10", "val_quadratic_15_loss3"]
    problems = tasks.task_list("validation", IDX, mnist_data_dir)
    assert [p.name for p in problems] == [t.name for t in tasks.VALIDATION]
    assert tasks.make_task("quadratic_20").num_coordinates == 20 * 64
    with pytest.raises(ValueError, match="unknown task or task list 'nope'; lists: training, validation, heldout") as error:
        tasks.task_list("heldout,nope")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("spec, message", [
    (MLPTask((8,), "swish"), "activation must be one of"),
    (MLPTask((8,), "relu", data="digitz"), "needs known data"),
    (MLPTask((), "relu"), "hidden sizes must be >= 1"),
    (MLPTask((8,), "relu", init_stddev=0.0), "init_stddev must be > 0"),
    (ConvTask((8,), True, data="blobs"), "conv tasks need digits data"),
    (QuadraticTask(3, loss_scale=-1.0), "loss_scale must be > 0"),
])
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        spec.check("bad")


def test_the_meta_trainer_resolves_every_list_and_task_as_tasks_name(mnist_data_dir):
    from l2l_tf.problems.task_lists import task_list as registered
    from l2l_tf.problems.task_lists import task_list_names

    assert set(tasks.LISTS) | set(tasks.TASKS) <= set(task_list_names())
    problems = registered("tasks:validation", IDX, mnist_data_dir)
    assert [p.name for p in problems] == [t.name for t in tasks.VALIDATION]
    assert [p.name for p in registered("tasks:quadratic_20")] == ["quadratic_20"]
