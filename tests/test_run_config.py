"""The typed run configuration: one serialisation, old files read, what may change on resume."""

import dataclasses
import json
import pathlib

import pytest
from conftest import REPO

from l2l_tf.run_config import (
    SCHEMA_VERSION,
    Computation,
    RunConfig,
    RunConfigError,
    Schedule,
)
from l2l_tf.training import RUN_CONFIG_FILE, IncompatibleResumeError, check_run_config

OLD_RUN = pathlib.Path(REPO, "experiments", "mnist", "run_momentum_stage8")


def test_a_run_config_written_before_the_schema_reads_and_round_trips():
    stored = json.loads((OLD_RUN / RUN_CONFIG_FILE).read_text())
    assert "schema_version" not in stored  # written by the code before this refactor
    config = RunConfig.from_dict(stored)
    assert config.computation.momentum_decays == (0.5, 0.9, 0.99)  # stored as the flag's strings
    assert config.computation.meta_learning_rate == 5e-5 and config.schedule.coordinate_shards == 2
    assert config.computation.num_replicas == 1 and config.schedule.distribution == "none"  # added later: defaults
    assert config.command == stored["command"] and config.problem_description == stored["problem_description"]
    written = config.to_dict()
    assert written["schema_version"] == SCHEMA_VERSION
    assert RunConfig.from_dict(json.loads(json.dumps(written))) == config
    # Every key the old file had is written back under the same name (exports and reports read them).
    assert set(stored) <= set(written)


def test_built_by_field_name_and_unreadable_configs_refused():
    defaults = {**dataclasses.asdict(Computation()), **dataclasses.asdict(Schedule())}
    values = {**defaults, "problem": "mnist", "num_epochs": 7, "momentum_decays": ["0.9"]}
    config = RunConfig.from_settings(values.__getitem__, command="c")  # e.g. FLAGS[name].value
    assert config.computation.problem == "mnist" and config.schedule.num_epochs == 7
    assert config.computation.momentum_decays == (0.9,) and config.command == "c"
    with pytest.raises(RunConfigError, match="schema_version 3; this l2l_tf reads 1 to 2"):
        RunConfig.from_dict({"schema_version": 3})
    with pytest.raises(RunConfigError, match="momentum_decays must be numbers"):
        RunConfig.from_dict({"momentum_decays": ["fast"]})
    with pytest.raises(RunConfigError, match="JSON object"):
        RunConfig.from_dict([1])


def test_schedule_may_change_on_resume_computation_may_not(tmp_path):
    old = json.loads((OLD_RUN / RUN_CONFIG_FILE).read_text())
    (tmp_path / RUN_CONFIG_FILE).write_text(json.dumps(old))
    config = RunConfig.from_dict(old)
    rescheduled = dataclasses.replace(config, schedule=dataclasses.replace(
        config.schedule, num_epochs=5, jit_compile=True, coordinate_shards=1, recompute_segment=10))
    check_run_config(str(tmp_path), rescheduled)  # accepted, and written in the current schema
    assert json.loads((tmp_path / RUN_CONFIG_FILE).read_text())["schema_version"] == SCHEMA_VERSION
    changed = dataclasses.replace(config, computation=dataclasses.replace(config.computation, hidden_size=8))
    with pytest.raises(IncompatibleResumeError, match=r"other settings \(hidden_size: 20 -> 8\)"):
        check_run_config(str(tmp_path), changed)
    (tmp_path / RUN_CONFIG_FILE).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(IncompatibleResumeError, match="schema_version 99.*delete it to resume"):
        check_run_config(str(tmp_path), config)
