"""The metrics sensor lands the queue and token figures in CloudWatch every minute, with an Env dimension,
counts each turn-capped session once, and says why it does nothing when no namespace is set. The token
figures cost no Google request: the age comes from the token store, and whether the credentials work from
the latest google_credentials_fresh evaluation of a real sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.definitions import defs
from jada_pipelines.health.sensors import cloudwatch_metrics_sensor
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

NAMESPACE = "JadaTest"
LEASE = 600


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _tick(instance, cursor=None):
    return cloudwatch_metrics_sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, instance=instance))


def _sync(google_emulator, instance):
    """A real port_sheet_sync_job run, which evaluates google_credentials_fresh with a real token refresh."""
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [["id", "port", *DEFAULT_OWNED_COLUMNS]])
    defs.resolve_job_def("port_sheet_sync_job").execute_in_process(instance=instance, raise_on_error=False)


def _latest(metric: str, env: str) -> float | None:
    now = datetime.now(UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": "Env", "Value": env}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max(point["Maximum"] for point in points) if points else None


@pytest.fixture
def busy_queue():
    """Two waiting tasks, one live session, one claim made ahead, one dead letter and one session that just hit
    its turn cap."""
    queue = open_queue()
    for task_id in ("capped", "dead", "live", "waiting-1", "waiting-2"):
        queue.enqueue(
            task_id,
            "x",
            max_attempts=1 if task_id == "dead" else 3,
            priority=-1 if "waiting" in task_id else 0,
        )
    leases = {
        lease.task_id: lease for lease in (queue.claim(worker="w", lease_seconds=LEASE) for _ in range(3))
    }
    queue.complete(
        leases["capped"], outcome="incomplete", turns=30, cost_usd=0.4, summary="half", handoff={"next": "y"}
    )
    queue.fail(leases["dead"], error="boom", retryable=True)
    queue.mark_running(leases["live"], run_id="r-live")
    queue.enqueue("claimed-ahead", "x", priority=1)
    queue.claim(worker="w", lease_seconds=LEASE)  # waits in Dagster's run queue: no session yet
    return queue


def test_without_a_namespace_the_sensor_skips_and_says_which_variable_to_set(aws, instance):
    result = _tick(instance)

    assert "JADA_CLOUDWATCH_NAMESPACE is not set" in result.skip_message
    assert boto3.client("cloudwatch").list_metrics()["Metrics"] == []


def test_the_queue_and_token_figures_land_in_cloudwatch_with_the_env_dimension(
    aws, busy_queue, google_emulator, google_token_file, instance, monkeypatch
):
    _sync(google_emulator, instance)
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("JADA_ENV", "prod")
    result = _tick(instance)

    assert result.skip_message.startswith(f"Published to CloudWatch namespace {NAMESPACE}")
    figures = {
        name: _latest(name, "prod")
        for name in ("QueueDepth", "LiveSessions", "DeadLetters", "TurnCapSessions", "GoogleCredentialsOk")
    }
    # QueueDepth counts the two waiting tasks and the turn-capped one, which is claimable again.
    assert figures == {
        "QueueDepth": 3,
        "LiveSessions": 1,
        "DeadLetters": 1,
        "TurnCapSessions": 1,
        "GoogleCredentialsOk": 1,
    }
    assert _latest("OldestQueuedAgeSeconds", "prod") >= 0
    assert 0 <= _latest("GoogleTokenAgeDays", "prod") < 1  # the fixture consented just now
    assert _latest("QueueDepth", "dev") is None


def test_a_metrics_tick_sends_no_request_to_google(
    aws, google_emulator, google_token_file, instance, monkeypatch
):
    _sync(google_emulator, instance)
    google_emulator.reset_counters()
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    for _ in range(3):
        result = _tick(instance)
        assert "GoogleCredentialsOk=1" in result.skip_message
        assert "GoogleTokenAgeDays=" in result.skip_message

    assert google_emulator.calls["token"] == 0
    assert google_emulator.requests == []


def test_a_token_the_sync_found_revoked_is_published_as_not_ok(
    aws, google_emulator, google_token_file, instance, monkeypatch
):
    google_emulator.fail_token("invalid_grant")
    _sync(google_emulator, instance)
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    _tick(instance)

    assert _latest("GoogleCredentialsOk", "dev") == 0
    assert 0 <= _latest("GoogleTokenAgeDays", "dev") < 1


def test_a_token_that_works_but_expires_soon_is_published_as_ok_with_its_age(
    aws, google_emulator, google_token_file, instance, monkeypatch
):
    consented = datetime.now(UTC) - timedelta(days=6.5)
    info = google_emulator.authorized_user_info(
        publishing_status="testing", consented_at=consented.isoformat()
    )
    google_token_file.write_text(json.dumps(info))
    _sync(google_emulator, instance)
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    _tick(instance)

    assert _latest("GoogleCredentialsOk", "dev") == 1  # the check WARNs, but the token still refreshes
    assert _latest("GoogleTokenAgeDays", "dev") == pytest.approx(6.5, abs=0.01)


def test_before_any_credentials_check_only_the_token_age_is_sent(
    aws, google_emulator, google_token_file, instance, monkeypatch
):
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    result = _tick(instance)

    assert "GoogleCredentialsOk" not in result.skip_message
    assert _latest("GoogleCredentialsOk", "dev") is None
    assert 0 <= _latest("GoogleTokenAgeDays", "dev") < 1
    assert google_emulator.calls["token"] == 0


def test_a_turn_capped_session_is_counted_in_one_tick_only(aws, busy_queue, instance, monkeypatch):
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    first = _tick(instance)
    second = _tick(instance, cursor=first.cursor)

    assert "TurnCapSessions=1" in first.skip_message
    assert "TurnCapSessions=0" in second.skip_message
    assert float(second.cursor) >= float(first.cursor)


def test_without_google_credentials_no_token_metric_is_sent(aws, busy_queue, instance, monkeypatch):
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    result = _tick(instance)

    assert "Google" not in result.skip_message
    assert _latest("GoogleCredentialsOk", "dev") is None
    assert _latest("LiveSessions", "dev") == 1
