"""Every scheduled asset declares how fresh it must be, and an asset that fails its freshness policy reaches
Slack once, with how late it is, then again only as a reminder, and once more when it is fresh again.

The freshness states here are written the way Dagster's freshness daemon writes them (a FreshnessStateChange
event); tests/test_health_daemon.py has the daemon compute one for real."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

from jada_pipelines.alerts.resources import SlackWebhookResource
from jada_pipelines.alerts.sensors import freshness_alert_sensor
from jada_pipelines.definitions import defs

ROWS = dg.AssetKey("port_sheet_rows")
SLACK = SlackWebhookResource(min_interval_seconds=0, max_retries=1)


def materialized_minutes_ago(instance: dg.DagsterInstance, asset: str, minutes: float) -> None:
    """A materialization stored with a past timestamp: the sync that last landed ``minutes`` ago."""
    instance.report_dagster_event(
        run_id=RUNLESS_RUN_ID,
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset)),
            job_name=RUNLESS_JOB_NAME,
        ),
        timestamp=time.time() - minutes * 60,
    )


def freshness_is(instance: dg.DagsterInstance, key: dg.AssetKey, state: FreshnessState) -> None:
    previous = instance.get_freshness_state_records([key]).get(key)
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=key,
            previous_state=previous.freshness_state if previous else FreshnessState.UNKNOWN,
            new_state=state,
            state_change_timestamp=time.time(),
        )
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"slack": SLACK}
    )
    return freshness_alert_sensor(context)


def said(result) -> str:
    """The sentence a tick shows in the UI (a SkipReason, or a SensorResult's skip reason)."""
    return result.skip_reason.skip_message if isinstance(result, dg.SensorResult) else result.skip_message


def test_every_asset_a_schedule_materializes_declares_a_freshness_policy():
    repo = defs.get_repository_def()
    # A schedule's job, or a job a sensor starts after it (the push follows each pull).
    jobs = [schedule.job_name for schedule in repo.schedule_defs] + [
        repo.get_sensor_def("port_sheet_push_sensor").job_name
    ]
    scheduled = {key for job in jobs for key in repo.get_job(job).asset_layer.executable_asset_keys}

    assert {key.to_user_string() for key in scheduled} == {
        "agent_task_queue",
        "port_sheet_rows",
        "port_sheet_status",
        "port_sheet_tasks",
    }
    windows = {
        key.to_user_string(): repo.asset_graph.get(key)
        .freshness_policy.fail_window.to_timedelta()
        .total_seconds()
        / 60
        for key in scheduled
    }
    assert windows == {
        "agent_task_queue": 12,
        "port_sheet_rows": 45,
        "port_sheet_status": 45,
        "port_sheet_tasks": 45,
    }


def test_a_stale_asset_is_posted_once_with_how_late_it_is_and_once_more_when_fresh(slack_webhook, instance):
    materialized_minutes_ago(instance, "port_sheet_rows", 52)
    freshness_is(instance, ROWS, FreshnessState.FAIL)

    first = tick(instance)
    second = tick(instance, first.cursor)

    (stale,) = slack_webhook.payloads
    assert stale["text"].startswith(":red_circle: ERROR: Stale: port_sheet_rows is not fresh")
    assert "52 min ago" in stale["text"] and "within 45 min" in stale["text"]
    assert "/assets/port_sheet_rows" in stale["text"]
    assert "Stale now: port_sheet_rows" in said(second)

    materialized_minutes_ago(instance, "port_sheet_rows", 0)
    freshness_is(instance, ROWS, FreshnessState.PASS)
    third = tick(instance, second.cursor)
    tick(instance, third.cursor)

    assert len(slack_webhook.payloads) == 2
    assert slack_webhook.payloads[1]["text"].startswith(
        ":large_green_circle: Recovered: port_sheet_rows is fresh"
    )


def test_an_asset_still_stale_after_the_reminder_window_is_posted_again_as_a_reminder(
    slack_webhook, instance, monkeypatch
):
    monkeypatch.setenv("JADA_ALERT_REMIND_HOURS", "2")
    materialized_minutes_ago(instance, "port_sheet_rows", 200)
    freshness_is(instance, ROWS, FreshnessState.FAIL)
    cursor = json.loads(tick(instance).cursor)
    cursor["stale"]["port_sheet_rows"]["alerted_at"] -= 2 * 3600 + 1  # two hours have passed

    reminded = tick(instance, json.dumps(cursor))
    tick(instance, reminded.cursor)

    assert [p["text"].split(":")[3].strip() for p in slack_webhook.payloads] == ["Stale", "Still stale"]


def test_a_warn_is_shown_in_the_ui_but_not_posted(slack_webhook, instance):
    materialized_minutes_ago(instance, "port_sheet_rows", 40)
    freshness_is(instance, ROWS, FreshnessState.WARN)

    result = tick(instance)

    assert slack_webhook.requests == 0 and "Stale now: none" in said(result)


def test_without_a_webhook_the_sensor_skips_and_names_the_variable(instance):
    freshness_is(instance, ROWS, FreshnessState.FAIL)

    assert "SLACK_WEBHOOK_URL is not set" in said(tick(instance))
