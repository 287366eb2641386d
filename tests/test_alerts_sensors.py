"""Every failed check and failed run in a real instance reaches the webhook once; recoveries too; nothing is lost."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from jada_pipelines.alerts import history, sensors
from jada_pipelines.alerts.resources import SlackWebhookResource
from jada_pipelines.alerts.sensors import asset_check_alert_sensor, run_failure_alert_sensor
from jada_pipelines.alerts.webhook import SlackDeliveryError

CREDENTIALS_FIX = "The Google refresh token was revoked or expired (invalid_grant): run `jada auth google` to consent again."


@dg.asset
def ports():
    return 1


@dg.asset_check(
    asset=ports, description="Stands in for a data-quality check; fails while JADA_TEST_PORTS_BAD is set."
)
def ports_complete():
    bad = os.environ.get("JADA_TEST_PORTS_BAD")
    return dg.AssetCheckResult(
        passed=bad is None, severity=dg.AssetCheckSeverity.WARN, description=f"{bad} rows are missing a key"
    )


@dg.asset
def routes():
    return 1


@dg.asset_check(asset=routes, blocking=True, description="A blocking ERROR check that always fails.")
def routes_reachable():
    return dg.AssetCheckResult(passed=False, description="no route answers")


@dg.asset
def sheet_rows():
    """Stands in for port_sheet_rows when its Google credentials are revoked."""
    raise dg.Failure(description=CREDENTIALS_FIX, allow_retries=False)


@dg.asset
def crashing():
    raise ValueError("sheet API answered 403")


SLACK = SlackWebhookResource(min_interval_seconds=0, max_retries=1)
DEFS = dg.Definitions(
    assets=[ports, routes, sheet_rows, crashing],
    asset_checks=[ports_complete, routes_reachable],
    sensors=[asset_check_alert_sensor, run_failure_alert_sensor],
    resources={"slack": SLACK},
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def materialize(instance, *assets, checks=()):
    return dg.materialize([*assets, *checks], instance=instance, raise_on_error=False)


def tick(sensor, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=DEFS, resources={"slack": SLACK}
    )
    return sensor(context)


def tick_both(instance, cursors):
    """One tick of each alert sensor, as the daemon would run them; returns the new cursors."""
    return {
        sensor.name: tick(sensor, instance, cursors.get(sensor.name)).cursor
        for sensor in (asset_check_alert_sensor, run_failure_alert_sensor)
    }


def dedup_keys(webhook) -> list[str]:
    return [p["text"].rsplit("(dedup ", 1)[1].rstrip(")") for p in webhook.payloads]


def test_a_failing_blocking_and_a_failing_non_blocking_check_each_give_one_message_with_the_run_link(
    slack_webhook, instance, monkeypatch
):
    monkeypatch.setenv("JADA_WEBSERVER_URL", "http://dagster.example:3000")
    monkeypatch.setenv("JADA_TEST_PORTS_BAD", "2")
    warn_run = materialize(instance, ports, checks=[ports_complete])
    error_run = materialize(instance, routes, checks=[routes_reachable])
    assert warn_run.success and not error_run.success

    cursors = tick_both(instance, {})

    assert sorted(dedup_keys(slack_webhook)) == sorted(
        [f"check-failed:ports:ports_complete:{warn_run.run_id}", f"run-failed:{error_run.run_id}"]
    )
    texts = " ".join(p["text"] for p in slack_webhook.payloads)
    assert f"http://dagster.example:3000/runs/{warn_run.run_id}" in texts
    assert f"http://dagster.example:3000/runs/{error_run.run_id}" in texts
    assert "2 rows are missing a key" in texts and "no route answers" in texts

    tick_both(instance, cursors)
    assert len(slack_webhook.payloads) == 2


def test_a_recovery_message_follows_once_the_check_passes_again(slack_webhook, instance, monkeypatch):
    monkeypatch.setenv("JADA_TEST_PORTS_BAD", "1")
    materialize(instance, ports, checks=[ports_complete])
    cursor = tick(asset_check_alert_sensor, instance).cursor
    monkeypatch.delenv("JADA_TEST_PORTS_BAD")
    passing = materialize(instance, ports, checks=[ports_complete])

    cursor = tick(asset_check_alert_sensor, instance, cursor).cursor
    tick(asset_check_alert_sensor, instance, cursor)

    assert [k.split(":")[0] for k in dedup_keys(slack_webhook)] == ["check-failed", "check-recovered"]
    assert dedup_keys(slack_webhook)[1] == f"check-recovered:ports:ports_complete:{passing.run_id}"


def test_a_check_that_keeps_failing_at_the_same_severity_is_not_posted_again_within_the_reminder_window(
    slack_webhook, instance, monkeypatch
):
    monkeypatch.setenv("JADA_TEST_PORTS_BAD", "1")
    materialize(instance, ports, checks=[ports_complete])
    cursor = tick(asset_check_alert_sensor, instance).cursor
    materialize(instance, ports, checks=[ports_complete])

    result = tick(asset_check_alert_sensor, instance, cursor)

    assert len(slack_webhook.payloads) == 1
    assert "no new failure" in result.skip_reason.skip_message


def test_a_failed_credentials_run_gives_one_message_that_contains_the_fix(slack_webhook, instance):
    failed = materialize(instance, sheet_rows)

    cursors = tick_both(instance, {})
    tick_both(instance, cursors)

    (payload,) = slack_webhook.payloads
    assert CREDENTIALS_FIX in payload["text"]
    assert f"run-failed:{failed.run_id}" in payload["text"]


def test_an_agent_session_that_stopped_incomplete_at_the_turn_cap_gives_no_message(
    slack_webhook, anthropic_emulator, instance
):
    from jada_pipelines.agents.jobs import agent_session_job
    from jada_pipelines.agents.queue import open_queue
    from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
    from jada_pipelines.agents.sensors import agent_task_sensor
    from jada_pipelines.emulators.anthropic import end_turn, tool_use

    agents = {"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()}
    open_queue().enqueue("t1", "Big job", max_turns=2)
    anthropic_emulator.script(tool_use(), tool_use(), end_turn('{"done": ["half"], "next_steps": ["rest"]}'))
    (request,) = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=agents)).run_requests
    session = agent_session_job.execute_in_process(
        run_config=request.run_config,
        tags={**agent_session_job.tags, **request.tags},
        instance=instance,
        resources=agents,
        raise_on_error=False,
    )
    assert session.success and open_queue().get("t1").status == "incomplete"

    tick_both(instance, {})

    assert slack_webhook.requests == 0


def test_a_404_no_service_fails_the_tick_and_holds_the_cursor_until_the_webhook_works(
    slack_webhook, instance
):
    failed = materialize(instance, sheet_rows)
    slack_webhook.fail_next("no_service")

    with pytest.raises(SlackDeliveryError, match="no_service"):
        tick(run_failure_alert_sensor, instance)
    assert slack_webhook.requests == 1  # not retried

    tick(run_failure_alert_sensor, instance)  # the cursor did not move, so the alert is still due
    assert dedup_keys(slack_webhook) == [f"run-failed:{failed.run_id}"]


def test_connection_refused_fails_the_tick_and_the_alert_goes_out_on_the_next_tick(slack_webhook, instance):
    failed = materialize(instance, sheet_rows)
    slack_webhook.refuse_connections()

    with pytest.raises(SlackDeliveryError, match="Could not reach the Slack webhook"):
        tick(run_failure_alert_sensor, instance)

    slack_webhook.accept_connections()
    tick(run_failure_alert_sensor, instance)
    assert dedup_keys(slack_webhook) == [f"run-failed:{failed.run_id}"]


def test_without_a_webhook_both_sensors_skip_with_a_sentence_that_names_the_variable(instance):
    materialize(instance, sheet_rows)

    for sensor in (asset_check_alert_sensor, run_failure_alert_sensor):
        result = tick(sensor, instance)
        assert "SLACK_WEBHOOK_URL is not set" in result.skip_message


def test_both_alert_sensors_run_by_default():
    for sensor in (asset_check_alert_sensor, run_failure_alert_sensor):
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_revoked_google_token_in_the_real_sync_job_gives_exactly_one_post_with_the_fix(
    slack_webhook, google_emulator, google_token_file, instance
):
    from jada_pipelines.definitions import defs

    google_emulator.fail_token("invalid_grant")
    run = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not run.success
    context = {"instance": instance, "definitions": defs, "resources": {"slack": SLACK}}

    for sensor in (asset_check_alert_sensor, run_failure_alert_sensor):
        sensor(dg.build_sensor_context(**context))

    (payload,) = slack_webhook.payloads
    check = next(e for e in run.get_asset_check_evaluations() if e.check_name == "google_credentials_fresh")
    assert check.description and check.description in payload["text"]
    assert "jada auth google" in payload["text"]
    assert payload["text"].count(check.description) == 1


def test_a_step_that_raised_a_plain_exception_is_posted_with_the_exception_not_dagster_s_wrapper(
    slack_webhook, instance
):
    materialize(instance, crashing)

    tick(run_failure_alert_sensor, instance)

    (payload,) = slack_webhook.payloads
    assert "crashing: ValueError: sheet API answered 403" in payload["text"]
    assert "DagsterExecutionStepExecutionError" not in payload["text"]


def test_a_tick_posts_at_most_its_cap_and_the_next_tick_posts_the_rest(slack_webhook, instance, monkeypatch):
    monkeypatch.setattr(sensors, "MAX_POSTS_PER_TICK", 1)
    first = materialize(instance, sheet_rows)
    second = materialize(instance, sheet_rows)

    cursor = tick(run_failure_alert_sensor, instance).cursor
    assert dedup_keys(slack_webhook) == [f"run-failed:{first.run_id}"]
    tick(run_failure_alert_sensor, instance, cursor)

    assert dedup_keys(slack_webhook) == [f"run-failed:{first.run_id}", f"run-failed:{second.run_id}"]


def test_runs_of_one_status_beyond_a_page_are_not_skipped_by_a_later_run_of_another_status(
    slack_webhook, instance, monkeypatch
):
    monkeypatch.setattr(history, "RUNS_PER_TICK", 1)
    monkeypatch.setenv("JADA_TEST_PORTS_BAD", "1")
    materialize(instance, ports, checks=[ports_complete])  # succeeds, check fails
    monkeypatch.delenv("JADA_TEST_PORTS_BAD")
    recovered = materialize(instance, ports, checks=[ports_complete])  # succeeds, check passes
    materialize(instance, sheet_rows)  # a failed run, stored after both

    cursor = None
    for _ in range(4):
        cursor = tick(asset_check_alert_sensor, instance, cursor).cursor

    assert [k.split(":")[0] for k in dedup_keys(slack_webhook)] == ["check-failed", "check-recovered"]
    assert dedup_keys(slack_webhook)[1].endswith(recovered.run_id)


def test_a_long_retry_after_is_kept_in_the_cursor_and_no_post_goes_out_before_it(slack_webhook, instance):
    import json

    failed = materialize(instance, sheet_rows)
    slack_webhook.script(429, "rate_limited", retry_after=3600)

    held = tick(run_failure_alert_sensor, instance)  # not a failed tick: the wait is known and recorded
    waited = tick(run_failure_alert_sensor, instance, held.cursor)

    assert slack_webhook.requests == 1
    assert "quiet" in held.skip_reason.skip_message and "Retry-After" in waited.skip_message
    cursor = json.loads(held.cursor)
    assert cursor["not_before"] >= time.time() + 3500

    cursor["not_before"] = time.time() - 1  # the hour has passed
    tick(run_failure_alert_sensor, instance, json.dumps(cursor))
    assert dedup_keys(slack_webhook) == [f"run-failed:{failed.run_id}"]


def test_a_tick_that_fails_half_way_keeps_what_it_delivered_so_nothing_is_posted_twice(
    slack_webhook, instance
):
    first = materialize(instance, sheet_rows)
    second = materialize(instance, sheet_rows)
    slack_webhook.script(200, "ok")  # the first post is taken (scripted answers are not recorded)...
    slack_webhook.fail_next("server_error", times=2)  # ...the second fails through its retry

    partial = tick(run_failure_alert_sensor, instance)
    tick(run_failure_alert_sensor, instance, partial.cursor)

    assert "Delivered 1 alert(s)" in partial.skip_reason.skip_message
    assert slack_webhook.requests == 4
    assert dedup_keys(slack_webhook) == [f"run-failed:{second.run_id}"]  # the first is not sent again
    assert first.run_id != second.run_id


def test_a_tick_stops_posting_at_its_time_budget_and_commits_what_went_out(
    slack_webhook, instance, monkeypatch
):
    monkeypatch.setattr(sensors, "TICK_BUDGET_SECONDS", -1)  # already spent after the first post
    first = materialize(instance, sheet_rows)
    second = materialize(instance, sheet_rows)

    cursor = tick(run_failure_alert_sensor, instance).cursor
    assert dedup_keys(slack_webhook) == [f"run-failed:{first.run_id}"]
    tick(run_failure_alert_sensor, instance, cursor)
    assert dedup_keys(slack_webhook) == [f"run-failed:{first.run_id}", f"run-failed:{second.run_id}"]


def test_a_webhook_url_that_is_not_https_fails_every_sensor_tick_without_repeating_it(instance, monkeypatch):
    from jada_pipelines.settings import ConfigError

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://hooks.slack.com/services/T0/B0/cleartext-secret")
    materialize(instance, sheet_rows)

    for sensor in (asset_check_alert_sensor, run_failure_alert_sensor):
        with pytest.raises(ConfigError) as raised:
            tick(sensor, instance)
        assert "cleartext-secret" not in str(raised.value)
