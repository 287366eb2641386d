"""`jada health` prints every section of the audit, as text or JSON, and exits non-zero when any is at ERROR."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.cli import main

SECTIONS_IN_ORDER = (
    "configuration",
    "instance",
    "daemons",
    "runs_24h",
    "recent_failures",
    "automation",
    "queue",
    "dispatch",
    "sessions",
    "backends",
    "dispatch_24h",
    "cost_24h",
    "sandbox",
    "google_token",
    "disk",
)
SECTIONS = set(SECTIONS_IN_ORDER)


@dg.asset
def port_sheet_rows():
    raise dg.Failure(description="The Google refresh token was revoked: run `jada auth google`.")


@pytest.fixture
def instance():
    """The instance `jada health` reads: the one in this test's DAGSTER_HOME."""
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def healthy(instance, google_token_file, monkeypatch):
    """Live daemons, working Google credentials, a Claude key, a Slack webhook, an empty queue: nothing at
    ERROR."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-audit")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/TEST/AUDIT/hook")
    for name in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), name, None, None))
    return instance


def health(capsys, *args):
    code = main(["health", *args])
    return code, capsys.readouterr().out


def add_dead_letter():
    queue = open_queue()
    queue.enqueue("t-dead", "rebuild the port index", max_attempts=1)
    lease = queue.claim(worker="test", lease_seconds=60)
    queue.fail(lease, error="the tool crashed", retryable=True)


def test_a_healthy_set_up_exits_zero(healthy, capsys):
    code, out = health(capsys, "--json")

    audit = json.loads(out)
    assert code == 0, {
        name: s["summary"] for name, s in audit["sections"].items() if s["severity"] == "ERROR"
    }
    assert audit["overall"] in ("OK", "WARN")


def test_a_dead_letter_makes_it_exit_non_zero_and_its_json_has_every_section(healthy, capsys):
    add_dead_letter()

    code, out = health(capsys, "--json")

    audit = json.loads(out)
    assert code == 1
    assert set(audit["sections"]) == SECTIONS
    queue = audit["sections"]["queue"]
    assert queue["severity"] == "ERROR" and audit["overall"] == "ERROR"
    assert queue["dead_letter_tasks"] == [
        {"id": "t-dead", "attempts": 1, "last_error": "the tool crashed", "source": None}
    ]
    assert [name for name, s in audit["sections"].items() if s["severity"] == "ERROR"] == ["queue"]


def test_failed_runs_of_the_last_day_are_listed_with_their_reasons(healthy, capsys):
    failed = dg.materialize([port_sheet_rows], instance=healthy, raise_on_error=False)

    _, out = health(capsys, "--json")

    audit = json.loads(out)
    assert audit["sections"]["runs_24h"]["by_status"] == {"FAILURE": 1}
    assert audit["sections"]["runs_24h"]["summary"] == "1 run: 1 failed"
    assert audit["sections"]["recent_failures"]["summary"] == "1 failed run in 24 h"
    (latest,) = audit["sections"]["recent_failures"]["latest"]
    assert latest["run_id"] == failed.run_id
    assert latest["reasons"] == [
        "port_sheet_rows: The Google refresh token was revoked: run `jada auth google`."
    ]


def test_the_text_report_gives_one_graded_line_per_section(instance, capsys):
    add_dead_letter()

    code, out = health(capsys)

    assert code == 1
    assert out.splitlines()[0].endswith("overall ERROR")
    graded = [line for line in out.splitlines() if line.startswith("[")]
    assert {line[1:6].strip() for line in graded} <= {"OK", "WARN", "ERROR"}
    assert [line.split("]")[1].split()[0] for line in graded] == list(SECTIONS_IN_ORDER)
    assert "dead letter t-dead after 1 attempt: the tool crashed" in out
    assert "JADA_GOOGLE_TOKEN_FILE" in out  # the unconfigured Google section says what to set


def test_an_unreadable_queue_is_reported_as_an_error_section_not_a_crash(healthy, capsys, monkeypatch):
    monkeypatch.setenv("JADA_TASK_QUEUE_URL", "nosuchscheme://x")

    code, out = health(capsys, "--json")

    audit = json.loads(out)
    assert code == 1
    assert audit["sections"]["queue"]["severity"] == "ERROR"
    assert audit["sections"]["queue"]["summary"].startswith("Could not be read")
    assert audit["sections"]["disk"]["severity"] in ("OK", "WARN")


def test_sessions_their_turn_cap_rate_and_the_cost_of_the_last_day_are_reported(healthy, capsys):
    queue = open_queue()
    for task_id in ("capped", "finished"):
        queue.enqueue(task_id, "port the service")
    for outcome in ("incomplete", "done"):
        lease = queue.claim(worker="test", lease_seconds=60)
        queue.complete(lease, outcome=outcome, turns=30, cost_usd=0.25, summary=None)

    _, out = health(capsys, "--json")

    sections = json.loads(out)["sections"]
    sessions, cost = sections["sessions"], sections["cost_24h"]
    assert sessions["by_outcome"] == {"incomplete": 1, "done": 1} and sessions["turn_capped"] == 1
    assert (cost["usd"], cost["turns"]) == (0.5, 60)


def test_without_an_anthropic_key_the_first_error_line_names_it_and_the_exit_code_is_one(instance, capsys):
    for name in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), name, None, None))
    main(["task", "add", "Summarise the berth schedule", "--id", "t1"])
    capsys.readouterr()

    code, out = health(capsys)

    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("[ERROR")]
    assert errors[0].startswith("[ERROR] configuration")
    assert "ANTHROPIC_API_KEY is not set" in errors[0]
    assert 'docs/agents.md, "Set-up"' in errors[0]
    # The dispatch section names the same cause, at once, and does not blame the sensor.
    (dispatch,) = [line for line in out.splitlines() if line.split("]")[-1].split()[:1] == ["dispatch"]]
    assert dispatch.startswith("[ERROR") and "ANTHROPIC_API_KEY is not set" in dispatch
    assert "sensor" not in dispatch.split("ANTHROPIC_API_KEY")[0].lower()
    assert "Likely cause: the sensor" not in out


def test_the_configuration_section_warns_about_slack_and_google_naming_the_variable_and_the_doc(
    instance, capsys, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-audit")

    _, out = health(capsys, "--json")

    section = json.loads(out)["sections"]["configuration"]
    assert section["severity"] == "WARN"
    by_variable = {p["variable"]: p for p in section["problems"]}
    assert set(by_variable) == {"SLACK_WEBHOOK_URL", "JADA_GOOGLE_TOKEN_FILE", "JADA_PORT_SHEET_ID"}
    assert all(p["severity"] == "WARN" for p in section["problems"])
    assert 'docs/alerts_health.md, "Set-up"' in by_variable["SLACK_WEBHOOK_URL"]["text"]
    assert 'docs/google.md, "Set-up"' in by_variable["JADA_GOOGLE_TOKEN_FILE"]["text"]


def test_a_configured_set_up_has_an_ok_configuration_section(healthy, capsys):
    _, out = health(capsys, "--json")

    section = json.loads(out)["sections"]["configuration"]
    assert (section["severity"], section["problems"]) == ("OK", [])
