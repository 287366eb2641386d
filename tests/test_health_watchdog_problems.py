"""The watchdog (`jada health --alert`) treats each problem an audit section lists as its own alert: a second
problem in a section that is already red is posted too, and one that clears gets its own recovery while the
section stays red. Posted to the Slack webhook emulator over real HTTP, state in the real state file."""

from __future__ import annotations

from jada_pipelines.alerts.resources import SlackWebhookResource
from jada_pipelines.health import watchdog


def audit(*problems: tuple[str, str, str], daemons: str = "OK") -> dict:
    """An audit as ``build_audit`` gives it: ``configuration`` lists its problems (severity, variable, text)."""
    listed = [{"severity": s, "variable": v, "text": t} for s, v, t in problems]
    severity = "ERROR" if any(s == "ERROR" for s, _, _ in problems) else "WARN" if problems else "OK"
    return {
        "generated_at": "2026-12-05T12:00:00+00:00",
        "overall": "ERROR",
        "sections": {
            "configuration": {
                "severity": severity,
                "summary": listed[0]["text"] if listed else "configured",
                "problems": listed,
            },
            "daemons": {"severity": daemons, "summary": "No heartbeat in 300 s from dagster-daemon."},
        },
    }


NO_KEY = ("ERROR", "ANTHROPIC_API_KEY", "No agent session can start: ANTHROPIC_API_KEY is not set.")
BAD_TURNS = (
    "ERROR",
    "JADA_AGENT_MAX_TURNS",
    "No agent session can start: JADA_AGENT_MAX_TURNS='x' is not a number.",
)
NO_SHEET = ("WARN", "JADA_PORT_SHEET_ID", "JADA_PORT_SHEET_ID is not set.")


def titles(webhook) -> list[str]:
    return [p["text"].split("\n")[0] for p in webhook.payloads]


def test_a_second_problem_in_a_red_section_is_posted_and_each_clears_on_its_own(slack_webhook, tmp_path):
    slack, path = SlackWebhookResource(), tmp_path / "state.json"

    def run(report, now):
        return watchdog.run(report, slack=slack, path=path, now=now)

    run(audit(NO_KEY, NO_SHEET), 1000.0)
    run(audit(NO_KEY, BAD_TURNS, NO_SHEET), 1060.0)  # the section was already red
    run(audit(NO_KEY, BAD_TURNS, NO_SHEET), 1120.0)  # nothing new
    lines, delivered = run(audit(BAD_TURNS, NO_SHEET), 1180.0)  # the key is set; the section stays red

    posted = titles(slack_webhook)
    assert len(posted) == 3, posted
    assert "ERROR: jada health configuration: ANTHROPIC_API_KEY" in posted[0]
    assert "ERROR: jada health configuration: JADA_AGENT_MAX_TURNS" in posted[1]
    assert "Recovered: jada health configuration: ANTHROPIC_API_KEY is no longer ERROR" in posted[2]
    assert "JADA_PORT_SHEET_ID" not in "".join(posted), "a WARN is not posted"
    assert delivered and lines == ["Posted the recovered for configuration: ANTHROPIC_API_KEY."]
    assert list(watchdog.WatchdogState.load(path).problems) == ["configuration: JADA_AGENT_MAX_TURNS"]


def test_a_section_that_lists_no_problems_is_still_one_alert(slack_webhook, tmp_path):
    slack, path = SlackWebhookResource(), tmp_path / "state.json"
    watchdog.run(audit(NO_KEY, daemons="ERROR"), slack=slack, path=path, now=1000.0)
    watchdog.run(audit(daemons="ERROR"), slack=slack, path=path, now=1060.0)
    posted = titles(slack_webhook)
    assert sorted(watchdog.WatchdogState.load(path).problems) == ["daemons"]
    assert len(posted) == 3 and sum("ERROR: jada health daemons" in t for t in posted) == 1
