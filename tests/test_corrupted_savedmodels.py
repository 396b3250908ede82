"""Corrupted SavedModel directories: each gives a clear RuleLoadError, never a crash or a hang."""

import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2l_tf import export
from l2l_tf.rules import CoordinatewiseLSTM


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pristine") / "rule")
    export.export_rule(CoordinatewiseLSTM(seed=0), path)
    return path


def _files(path):
    return sorted(os.path.relpath(os.path.join(root, f), path) for root, _, files in os.walk(path) for f in files)


def _load_and_run(path):
    frozen = export.load(path)
    update, state = frozen.step(tf.ones([3]), frozen.init_state(3))
    assert update.shape == (3,) and state.shape == (3, frozen.state_size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruptions_are_reported_clearly(pristine, tmp_path_factory, data):
    target = str(tmp_path_factory.mktemp("corrupt") / "rule")
    shutil.copytree(pristine, target)
    victim = os.path.join(target, data.draw(st.sampled_from(_files(target)), label="file"))
    action = data.draw(st.sampled_from(["delete", "truncate", "flip", "empty"]), label="action")
    content = pathlib.Path(victim).read_bytes()
    if action == "delete":
        os.remove(victim)
    elif action == "empty":
        open(victim, "wb").close()
    elif action == "truncate":
        cut = data.draw(st.integers(0, max(len(content) - 1, 0)), label="cut")
        pathlib.Path(victim).write_bytes(content[:cut])
    else:
        offsets = data.draw(st.lists(st.integers(0, max(len(content) - 1, 0)), min_size=1, max_size=8), label="offsets")
        corrupted = bytearray(content)
        for offset in offsets:
            corrupted[offset] ^= 0xFF
        pathlib.Path(victim).write_bytes(bytes(corrupted))
    try:
        _load_and_run(target)  # a harmless corruption (e.g. in a docstring) may still load
    except export.RuleLoadError as error:
        assert target in str(error)


def test_deleted_variables_and_metadata_give_specific_messages(pristine, tmp_path):
    for relative, message in [("saved_model.pb", "not a SavedModel"),
                              (os.path.join("assets", export.METADATA_ASSET), "not an l2l_tf rule"),
                              (os.path.join("variables", "variables.index"), "corrupted")]:
        target = tmp_path / relative.replace(os.sep, "_")
        shutil.copytree(pristine, target)
        os.remove(target / relative)
        with pytest.raises(export.RuleLoadError, match=message):
            _load_and_run(str(target))
    target = tmp_path / "badjson"
    shutil.copytree(pristine, target)
    (target / "assets" / export.METADATA_ASSET).write_text("{not json")
    with pytest.raises(export.RuleLoadError, match="unreadable rule metadata"):
        _load_and_run(str(target))
    np.testing.assert_equal(os.path.isdir(pristine), True)
