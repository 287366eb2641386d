"""`jada health` (the audit report, and with --alert the watchdog outside the daemon) and `jada aws alarms`.

Keep imports inside the handlers: every `jada` command loads this."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `jada health` and `jada aws` to the `jada` parser."""
    parser = subparsers.add_parser(
        "health",
        help="print the health audit (daemon, runs, failures, automation, queue, dispatch, sessions, cost, "
        "Google token, disk)",
        description="Print the health audit. Exits 1 when any section is at ERROR, else 0; with --alert, 3 when "
        "a post to Slack failed (it is tried again on the next run).",
    )
    parser.add_argument("--json", action="store_true", help="print the audit as JSON instead of text")
    parser.add_argument(
        "--alert",
        action="store_true",
        help="also post each ERROR section to SLACK_WEBHOOK_URL once, a reminder every JADA_ALERT_REMIND_HOURS, "
        "and a recovery when it clears (the watchdog outside the daemon; its state is in JADA_WATCHDOG_STATE_FILE)",
    )
    parser.set_defaults(func=run_health)


def run_health(args: argparse.Namespace) -> int:
    import json

    import dagster as dg

    from jada_pipelines.health import watchdog
    from jada_pipelines.health.audit import build_audit, render_text
    from jada_pipelines.settings import dagster_home

    dagster_home()  # a clear ConfigError before Dagster's own message about DAGSTER_HOME
    slack = _watchdog_slack() if args.alert else None
    now = watchdog.current_time()
    try:
        with dg.DagsterInstance.get() as instance:
            audit = build_audit(instance, now=now)
    except Exception as error:
        if not args.alert:
            raise
        # The watchdog exists for the day the instance itself is broken: that is a problem to post.
        audit = watchdog.failed_audit(error, now=now)
    print(json.dumps(audit, indent=2, default=str) if args.json else render_text(audit))
    delivered = True
    if slack is not None:
        lines, delivered = watchdog.run(audit, slack=slack, path=watchdog.state_path(), now=now)
        for line in lines:
            print(f"watchdog: {line}", file=sys.stderr if not delivered else sys.stdout)
    if not delivered:
        return 3  # Slack did not take a post: the one failure a timer's unit must show as failed
    return 1 if audit["overall"] == "ERROR" else 0


def _watchdog_slack():
    from jada_pipelines.alerts.resources import WEBHOOK_VARIABLE, SlackWebhookResource
    from jada_pipelines.settings import ConfigError

    slack = SlackWebhookResource()
    if not slack.configured():  # raises ConfigError, without the value, for a URL that is not https
        raise ConfigError(
            f"jada health --alert posts to Slack, but {WEBHOOK_VARIABLE} is not set: set it to the incoming-webhook "
            "URL (in the environment file the watchdog's unit or task reads)."
        )
    return slack
