"""When tasks wait while session slots are free, or a claim's run never begins its session, the
sessions_starting check and the audit's dispatch section fail and name the likely cause: the daemon, the
tag slots, a run "started" with no worker, or a stopped sensor. Real queue, real Dagster run storage,
an injected clock."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.types import DaemonHeartbeat

from jada_pipelines.agents.jobs import ATTEMPT_TAG, TASK_ID_TAG
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.health import grading, sessions_starting
from jada_pipelines.health.assets import agent_task_queue
from jada_pipelines.settings import AGENT_SESSION_TAG

DEFAULTS = grading.Thresholds()


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def queue():
    return open_queue()


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch):
    """Sessions can start unless a test takes the key away."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-grading")


def beat(instance, at: float) -> None:
    for name in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(at, name, None, None))


def session_run(instance, status: dg.DagsterRunStatus, task_id: str | None = None, attempt: int = 1) -> str:
    tags = {AGENT_SESSION_TAG: "1"}
    if task_id is not None:
        tags |= {TASK_ID_TAG: task_id, ATTEMPT_TAG: str(attempt)}
    run_id = str(uuid.uuid4())
    # Dagster keeps a QUEUED run's origin, so its run queue can launch it.
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="jada_pipelines.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "agent_session_job")
    instance.add_run(
        DagsterRun(
            job_name="agent_session_job", run_id=run_id, status=status, tags=tags, remote_job_origin=origin
        )
    )
    return run_id


def stop(instance, name: str, kind: InstigatorType) -> None:
    """What turning a schedule or sensor off in the UI stores."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="jada_pipelines.definitions"))
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    data = (
        ScheduleInstigatorData("*/30 * * * *") if kind == InstigatorType.SCHEDULE else SensorInstigatorData()
    )
    instance.add_instigator_state(InstigatorState(origin, kind, InstigatorStatus.STOPPED, data))


def graded(queue, instance, now: float) -> grading.Finding:
    stale = sessions_starting.stale_daemons(
        {n: (b.timestamp if b else None) for n, b in _beats(instance).items()}, now=now, thresholds=DEFAULTS
    )
    return sessions_starting.grade(
        sessions_starting.gather(queue, instance, now=now, stale_daemons=stale), DEFAULTS
    )


def _beats(instance):
    beats = instance.get_daemon_heartbeats()
    return {name: beats.get(name) for name in instance.get_required_daemon_types()}


def test_tasks_that_wait_briefly_or_a_claim_that_is_starting_are_fine(queue, instance):
    created = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, created)

    finding = graded(queue, instance, now=created + 60)

    assert finding.severity == "OK" and finding.name == "sessions_starting"


def test_without_an_anthropic_key_a_waiting_task_is_an_error_at_once_naming_the_key_not_the_sensor(
    queue, instance, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    created = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, created)

    finding = graded(queue, instance, now=created + 1)

    assert finding.severity == "ERROR"
    assert finding.description.startswith("Sessions cannot start: ANTHROPIC_API_KEY is not set")
    assert "1 task waiting" in finding.description
    assert "sensor" not in finding.description.lower()
    assert finding.metadata["cause"] == "configuration"


def test_without_an_anthropic_key_and_nothing_waiting_dispatch_still_is_not_ok(queue, instance, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    beat(instance, time.time())

    finding = graded(queue, instance, now=time.time())

    assert finding.severity == "WARN"
    assert "ANTHROPIC_API_KEY is not set" in finding.description


def test_with_the_daemon_silent_a_waiting_task_fails_the_check_naming_the_daemon(queue, instance):
    due = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, due - 600)  # the daemon's last heartbeat, ten minutes before

    finding = graded(queue, instance, now=due + 301)

    assert finding.severity == "ERROR"
    assert "a task has waited 301 s (limit 300 s) while only 0 of 5 sessions are live" in finding.description
    assert "Likely cause: the daemon: no recent heartbeat from" in finding.description
    assert finding.metadata["cause"] == "the daemon"


def test_five_runs_holding_the_tag_slots_while_the_queue_counts_none_is_named(queue, instance):
    due = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, due + 290)
    holders = [session_run(instance, dg.DagsterRunStatus.STARTED) for _ in range(5)]

    finding = graded(queue, instance, now=due + 301)

    assert "Likely cause: the tag slots: Dagster counts 5 session runs in progress" in finding.description
    assert all(run_id in finding.description for run_id in holders)
    assert "while the queue counts 0 live session(s)" in finding.description


def test_claims_made_ahead_that_wait_queued_behind_five_running_sessions_are_not_stuck(queue, instance):
    for i in range(7):
        queue.enqueue(f"t{i}", "a prompt")
    for i in range(7):
        lease = queue.claim(worker="agent_task_sensor", lease_seconds=3600, max_live=7)
        if i < 5:
            assert queue.mark_running(
                lease, run_id=session_run(instance, dg.DagsterRunStatus.STARTED, lease.task_id)
            )
        else:
            session_run(instance, dg.DagsterRunStatus.QUEUED, lease.task_id)
    now = time.time() + 1800  # the claims have waited half an hour for a slot
    beat(instance, now - 5)

    assert graded(queue, instance, now=now).severity == "OK"
    # With a slot free, the same wait is a claim that does not start.
    queue.cancel("t0")
    assert graded(queue, instance, now=now).severity == "ERROR"


def test_a_claim_whose_run_is_started_but_never_began_its_session_names_the_run_with_no_worker(
    queue, instance
):
    queue.enqueue("t1", "a prompt")
    lease = queue.claim(worker="agent_task_sensor", lease_seconds=900)
    run_id = session_run(instance, dg.DagsterRunStatus.STARTED, task_id="t1", attempt=lease.attempt)
    claimed_at = queue.get("t1").updated_at
    beat(instance, claimed_at + 170)

    finding = graded(queue, instance, now=claimed_at + 181)

    assert finding.severity == "ERROR"
    assert "1 claimed task(s) have not started (task t1 for 181 s, limit 180 s)" in finding.description
    assert f'Likely cause: a run that is "started" with no worker: Dagster shows {run_id} (task t1)' in (
        finding.description
    )


def test_a_stopped_agent_task_sensor_is_named_when_tasks_wait(queue, instance):
    due = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, due + 290)
    stop(instance, "agent_task_sensor", InstigatorType.SENSOR)

    finding = graded(queue, instance, now=due + 301)

    assert "Likely cause: the sensor: agent_task_sensor is stopped" in finding.description


def test_the_thresholds_come_from_the_environment(queue, instance, monkeypatch):
    monkeypatch.setenv("JADA_HEALTH_DISPATCH_WAIT_SECONDS", "30")
    due = queue.enqueue("t1", "a prompt").task.available_at
    beat(instance, due)
    thresholds = grading.Thresholds.from_env()

    finding = sessions_starting.grade(
        sessions_starting.gather(queue, instance, now=due + 31, stale_daemons=[]), thresholds
    )

    assert finding.severity == "ERROR" and "(limit 30 s)" in finding.description


def test_the_health_asset_runs_the_check(queue, instance):
    queue.enqueue("t1", "a prompt")

    result = dg.materialize([agent_task_queue], instance=instance)

    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "sessions_starting"]
    # No daemon beats in a test instance, but the task has not waited long: the check judges dispatch only.
    assert evaluation.passed, evaluation.description


def test_a_stopped_schedule_is_an_error_in_the_audit_that_names_it(instance):
    from jada_pipelines.health.audit import build_audit
    from jada_pipelines.health.cli import code_location_automation

    stop(instance, "port_sheet_sync_schedule", InstigatorType.SCHEDULE)

    section = build_audit(instance, now=time.time(), expected_running=code_location_automation)["sections"][
        "automation"
    ]

    assert section["severity"] == "ERROR" and section["stopped"] == ["port_sheet_sync_schedule"]
    assert "Turned off: port_sheet_sync_schedule" in section["summary"]
