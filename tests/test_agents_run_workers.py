"""A started run whose worker process is gone is named by `jada health` and the daemon_heartbeat check, and
lost_run_worker_sensor fails it with a message saying the run worker was lost; live workers are left alone."""

from __future__ import annotations

import os
import subprocess
import time

import dagster as dg
import pytest
from dagster._core.events import EngineEventData

from jada_pipelines.agents.jobs import agent_session_job
from jada_pipelines.agents.run_workers import fail_lost_runs
from jada_pipelines.agents.sensors import lost_run_worker_sensor
from jada_pipelines.definitions import defs
from jada_pipelines.health import grading
from jada_pipelines.health.audit import build_audit, daemon_finding
from jada_pipelines.health.cli import code_location_automation


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


CONFIG = {"ops": {"agent_session": {"config": {"task_id": "t1", "attempt": 1}}}}


def started_run(instance, pid: int) -> dg.DagsterRun:
    run = instance.create_run_for_job(
        agent_session_job, run_config=CONFIG, status=dg.DagsterRunStatus.STARTED
    )
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def test_the_sensor_fails_only_the_run_whose_worker_is_gone(instance):
    dead = started_run(instance, _dead_pid())
    live = started_run(instance, os.getpid())
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    result = lost_run_worker_sensor(context)
    assert f"run {dead.run_id}" in result.skip_message
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
    (failure,) = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "The run worker was lost" in failure.message
    assert lost_run_worker_sensor(context).skip_message.startswith("Every started run")


def test_a_run_executed_in_process_has_no_recorded_worker_and_is_never_failed(instance):
    run = instance.create_run_for_job(
        agent_session_job, run_config=CONFIG, status=dg.DagsterRunStatus.STARTED
    )
    assert fail_lost_runs(instance) == []
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED


def test_jada_health_and_the_heartbeat_check_name_a_started_run_with_no_live_worker(instance):
    dead = started_run(instance, _dead_pid())
    now = time.time()
    finding = daemon_finding(instance, now, grading.Thresholds())
    assert finding.severity == "ERROR" and dead.run_id in finding.description
    assert finding.metadata["lost_run_workers"] == [dead.run_id]
    section = build_audit(instance, now=now, expected_running=code_location_automation)["sections"]["daemons"]
    assert section["severity"] == "ERROR" and dead.run_id in section["summary"]


def test_runs_under_another_launcher_are_left_to_dagsters_run_monitoring():
    overrides = {
        "run_launcher": {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        }
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        run = started_run(instance, _dead_pid())
        assert fail_lost_runs(instance) == []
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
