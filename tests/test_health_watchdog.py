"""`jada health --alert`, the watchdog outside the daemon, posts each ERROR section of the audit once, a
reminder every JADA_ALERT_REMIND_HOURS, and a recovery when it clears; its memory is one small state file,
written after each post Slack took. Here the daemon's liveness is its heartbeats in a real instance;
tests/test_health_daemon.py kills a real daemon."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from jada_pipelines.cli import main
from jada_pipelines.health import watchdog


@pytest.fixture
def instance(google_token_file, monkeypatch):
    """The instance `jada health` reads, with working Google credentials and a Claude key: only the daemons
    can be at ERROR."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-watchdog")
    with dg.DagsterInstance.get() as instance:
        yield instance


def daemons_beat(instance, at: float | None = None) -> None:
    for name in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(at or time.time(), name, None, None))


def alert(capsys) -> tuple[int, str]:
    code = main(["health", "--alert", "--json"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def posts(webhook, kind: str | None = None) -> list[dict]:
    return [p for p in webhook.payloads if kind is None or f"watchdog:{kind}:" in p["text"]]


def test_a_silent_daemon_is_posted_once_not_again_and_its_recovery_once(slack_webhook, instance, capsys):
    daemons_beat(instance, time.time() - 600)

    first, _ = alert(capsys)
    second, said = alert(capsys)

    (problem,) = posts(slack_webhook)
    assert first == second == 1
    assert problem["text"].startswith(":red_circle: ERROR: jada health daemons.")
    assert "No heartbeat in 300 s from" in problem["text"] and "dagster-daemon" in problem["text"]
    assert "Nothing new to post. Known problems: daemons." in said

    daemons_beat(instance)
    recovered, _ = alert(capsys)
    alert(capsys)

    assert recovered == 0
    assert [p["text"].split(".")[0] for p in posts(slack_webhook)] == [
        ":red_circle: ERROR: jada health daemons",
        ":large_green_circle: Recovered: jada health daemons is no longer ERROR",
    ]


def test_a_problem_that_lasts_is_posted_again_every_remind_hours(
    slack_webhook, instance, capsys, monkeypatch
):
    monkeypatch.setenv("JADA_ALERT_REMIND_HOURS", "1")
    start = time.time()
    daemons_beat(instance, start - 600)
    alert(capsys)

    monkeypatch.setattr(watchdog, "current_time", lambda: start + 1800)
    alert(capsys)
    monkeypatch.setattr(watchdog, "current_time", lambda: start + 3601)
    alert(capsys)

    assert [p["text"].split(":")[2].strip() for p in posts(slack_webhook)] == ["ERROR", "Still ERROR"]


def test_a_post_slack_refuses_is_kept_for_the_next_run(slack_webhook, instance, capsys):
    daemons_beat(instance, time.time() - 600)
    slack_webhook.fail_next("no_service")

    code, said = alert(capsys)
    assert code == 3 and "Could not post the problem for daemons" in said
    assert posts(slack_webhook) == []

    alert(capsys)
    assert len(posts(slack_webhook, "problem")) == 1


def test_a_long_retry_after_is_kept_in_the_state_file_and_honoured(slack_webhook, instance, capsys, tmp_path):
    daemons_beat(instance, time.time() - 600)
    slack_webhook.script(429, "rate_limited", retry_after=3600)

    alert(capsys)
    _, said = alert(capsys)

    assert slack_webhook.requests == 1 and "Slack asked for quiet until" in said
    state = json.loads(watchdog.state_path().read_text())
    assert state["not_before"] > time.time() + 3500 and state["problems"] == {}


def test_the_state_file_can_be_placed_with_a_variable_and_a_broken_one_starts_afresh(
    slack_webhook, instance, capsys, monkeypatch, tmp_path
):
    path = tmp_path / "state" / "watchdog.json"
    monkeypatch.setenv("JADA_WATCHDOG_STATE_FILE", str(path))
    daemons_beat(instance, time.time() - 600)
    alert(capsys)
    assert set(json.loads(path.read_text())["problems"]) == {"daemons"}

    path.write_text("{not json")
    _, said = alert(capsys)

    assert "is not a watchdog state file; starting afresh" in said
    assert len(posts(slack_webhook, "problem")) == 2


def test_an_instance_that_cannot_be_opened_is_itself_posted(slack_webhook, capsys, monkeypatch, tmp_path):
    home = tmp_path / "broken_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  no_such_storage: {}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    code, _ = alert(capsys)

    (problem,) = posts(slack_webhook)
    assert code == 1 and "jada health instance" in problem["text"]
    assert "The Dagster instance could not be opened" in problem["text"]


def test_alert_without_a_webhook_is_a_configuration_error_that_names_the_variable(instance, capsys):
    code = main(["health", "--alert"])

    assert code == 2 and "SLACK_WEBHOOK_URL is not set" in capsys.readouterr().err
