"""The agent_task_queue checks grade backlog, dead letters, turn-cap rate and daemon heartbeat at their thresholds."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.health import grading
from jada_pipelines.health.assets import agent_task_queue
from jada_pipelines.health.audit import daemon_heartbeats
from jada_pipelines.health.schedules import agent_task_queue_schedule
from jada_pipelines.settings import ConfigError

DEFAULTS = grading.Thresholds()


@pytest.fixture
def queue():
    return open_queue()


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def make_dead_letter(queue, task_id="t-dead"):
    queue.enqueue(task_id, "fix the port sheet", max_attempts=1)
    lease = queue.claim(worker="test", lease_seconds=60)
    assert queue.fail(lease, error="tool crashed", retryable=True) == "dead"


def run_session(queue, task_id, outcome):
    # One attempt only, so an incomplete task is not claimable again and the next claim gets the next task.
    queue.enqueue(task_id, f"work on {task_id}", max_attempts=1)
    lease = queue.claim(worker="test", lease_seconds=60)
    assert lease.task_id == task_id
    queue.complete(
        lease, outcome=outcome, turns=30, cost_usd=0.25, summary="partial", handoff={"next": "go on"}
    )


def test_the_backlog_goes_warn_then_error_as_the_oldest_task_ages_on_an_injected_clock(queue):
    created = queue.enqueue("t1", "a prompt").task.created_at

    def severity_after(minutes):
        return grading.grade_backlog(queue.stats(now=created + minutes * 60), DEFAULTS).severity

    assert [severity_after(10), severity_after(31), severity_after(121)] == ["OK", "WARN", "ERROR"]


def test_the_backlog_depth_thresholds_come_from_the_environment(queue, monkeypatch):
    monkeypatch.setenv("JADA_HEALTH_BACKLOG_WARN_DEPTH", "2")
    monkeypatch.setenv("JADA_HEALTH_BACKLOG_ERROR_DEPTH", "4")
    thresholds = grading.Thresholds.from_env()
    for n in range(3):
        queue.enqueue(f"t{n}", "a prompt")
    warn = grading.grade_backlog(queue.stats(), thresholds)
    for n in range(3, 5):
        queue.enqueue(f"t{n}", "a prompt")
    error = grading.grade_backlog(queue.stats(), thresholds)

    assert (warn.severity, warn.metadata["depth"]) == ("WARN", 3)
    assert (error.severity, error.metadata["depth"]) == ("ERROR", 5)
    assert "agent_task_sensor" in error.description


def test_a_warn_threshold_above_its_error_threshold_is_refused_naming_both_variables(monkeypatch):
    monkeypatch.setenv("JADA_HEALTH_QUEUED_AGE_WARN_MINUTES", "500")

    with pytest.raises(
        ConfigError,
        match="JADA_HEALTH_QUEUED_AGE_WARN_MINUTES=500 is above JADA_HEALTH_QUEUED_AGE_ERROR_MINUTES=120",
    ):
        grading.Thresholds.from_env()


def test_a_dead_letter_is_an_error_that_says_what_to_do(queue):
    assert grading.grade_dead_letters(queue.stats()).severity == "OK"
    make_dead_letter(queue)

    finding = grading.grade_dead_letters(queue.stats())

    assert finding.severity == "ERROR"
    assert finding.metadata == {"dead_letters": 1, "failed": 0}
    assert "requeue" in finding.description


def test_a_failed_task_waits_for_a_person_too_and_is_counted_with_the_dead_letters(queue):
    queue.enqueue("t-failed", "fix the port sheet")
    lease = queue.claim(worker="test", lease_seconds=60)
    assert queue.fail(lease, error="ANTHROPIC_API_KEY is not set", retryable=False) == "failed"

    finding = grading.grade_dead_letters(queue.stats())

    assert finding.severity == "ERROR"
    assert finding.metadata == {"dead_letters": 0, "failed": 1}
    assert finding.description.startswith("1 task waits for a person (0 out of attempts, 1 failed)")
    make_dead_letter(queue)
    assert grading.grade_dead_letters(queue.stats()).description.startswith("2 tasks wait for a person")


def test_the_turn_cap_rate_grades_the_sessions_of_the_last_day(queue):
    run_session(queue, "a", "incomplete")
    run_session(queue, "b", "done")
    assert grading.grade_turn_cap(queue.attempts(since=0), DEFAULTS).severity == "OK"  # too few to judge
    run_session(queue, "c", "incomplete")

    finding = grading.grade_turn_cap(queue.attempts(since=0), DEFAULTS)

    assert finding.severity == "ERROR"  # 2 of 3 is past the default 60 %
    assert finding.metadata == {"sessions": 3, "turn_capped": 2, "percent": 66.7}
    assert grading.grade_turn_cap(queue.attempts(since=time.time() + 1), DEFAULTS).metadata["sessions"] == 0


def test_the_daemon_heartbeat_is_an_error_when_any_required_daemon_is_silent(instance):
    beat_at = 1_800_000_000.0
    required = sorted(instance.get_required_daemon_types())
    for name in required[1:]:
        instance.add_daemon_heartbeat(DaemonHeartbeat(beat_at, name, None, None))
    missing_one = grading.grade_daemon(daemon_heartbeats(instance), now=beat_at + 10, thresholds=DEFAULTS)
    instance.add_daemon_heartbeat(DaemonHeartbeat(beat_at, required[0], None, None))

    fresh = grading.grade_daemon(daemon_heartbeats(instance), now=beat_at + 10, thresholds=DEFAULTS)
    stale = grading.grade_daemon(daemon_heartbeats(instance), now=beat_at + 301, thresholds=DEFAULTS)

    assert (missing_one.severity, fresh.severity, stale.severity) == ("ERROR", "OK", "ERROR")
    assert f"from: {required[0]}." in missing_one.description
    assert "dagster-daemon" in stale.description


def test_materializing_agent_task_queue_records_its_figures_and_grades_each_check(instance, queue):
    make_dead_letter(queue)
    queue.enqueue("waiting", "a prompt")

    result = dg.materialize([agent_task_queue], instance=instance)

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "backlog",
        "dead_letters",
        "turn_cap_rate",
        "daemon_heartbeat",
        "sessions_starting",
        "sandbox",
    }
    assert checks["backlog"].passed and checks["turn_cap_rate"].passed and checks["sandbox"].passed
    assert (
        not checks["dead_letters"].passed and checks["dead_letters"].severity == dg.AssetCheckSeverity.ERROR
    )
    assert not checks["daemon_heartbeat"].passed  # no daemon runs in this test
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dead_letters"].value == 1 and metadata["depth_queued"].value == 1


def test_the_health_asset_has_its_own_schedule_running_every_five_minutes_by_default():
    assert agent_task_queue_schedule.cron_schedule == "*/5 * * * *"
    assert agent_task_queue_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
