"""`jada health` (the audit report, and with --alert the watchdog outside the daemon) and `jada aws alarms`.

Keep imports inside the handlers: every `jada` command loads this."""

from __future__ import annotations

import argparse
import sys

from jada_pipelines import settings
from jada_pipelines.aws_clients import error_code
from jada_pipelines.health import watchdog
from jada_pipelines.health.alarms import put_alarms
from jada_pipelines.health.grading import Thresholds
from jada_pipelines.settings import ConfigError, dagster_home


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

    aws = subparsers.add_parser("aws", help="set up the AWS side: CloudWatch alarms on the health metrics")
    aws_commands = aws.add_subparsers(dest="aws_command", required=True, metavar="COMMAND")
    alarms = aws_commands.add_parser(
        "alarms",
        help="create or update the CloudWatch alarms on the health metrics (safe to re-run)",
        description="Create or update the CloudWatch alarms on the metrics cloudwatch_metrics_sensor publishes. "
        "The alarm on silence (no metric for 5 minutes) treats missing data as breaching, so a dead daemon alarms.",
    )
    alarms.add_argument(
        "--namespace", help="the metrics' namespace (default: JADA_CLOUDWATCH_NAMESPACE, as the daemon uses)"
    )
    alarms.add_argument("--env", help="the Env dimension the alarms watch (default: JADA_ENV, else dev)")
    alarms.add_argument(
        "--prefix", default="jada", help="alarm names are <prefix>-<env>-<alarm> (default: jada)"
    )
    alarms.add_argument(
        "--sns-topic-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="notify this SNS topic on ALARM and on OK (repeatable); without one the alarms only show in the console",
    )
    alarms.set_defaults(func=run_aws_alarms)


def run_health(args: argparse.Namespace) -> int:
    import json

    import dagster as dg

    from jada_pipelines.health.audit import build_audit, render_text

    dagster_home()  # a clear ConfigError before Dagster's own message about DAGSTER_HOME
    slack = _watchdog_slack() if args.alert else None
    now = watchdog.current_time()
    try:
        with dg.DagsterInstance.get() as instance:
            audit = build_audit(instance, now=now, expected_running=code_location_automation)
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


def code_location_automation() -> set[str]:
    """The code location's schedules and sensors meant to run, for the audit's "automation" section. The CLI
    is the layer above the code location, so it is the one that imports ``definitions.py``."""
    from jada_pipelines.definitions import defs
    from jada_pipelines.health.automation import running_by_default

    return running_by_default(defs)


def _watchdog_slack():
    from jada_pipelines.alerts.resources import WEBHOOK_VARIABLE, SlackWebhookResource

    slack = SlackWebhookResource()
    if not slack.configured():  # raises ConfigError, without the value, for a URL that is not https
        raise ConfigError(
            f"jada health --alert posts to Slack, but {WEBHOOK_VARIABLE} is not set: set it to the incoming-webhook "
            "URL (in the environment file the watchdog's unit or task reads)."
        )
    return slack


def run_aws_alarms(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    namespace = args.namespace or settings.get("JADA_CLOUDWATCH_NAMESPACE")
    if namespace is None:
        raise settings.ConfigError(
            "No metrics namespace: pass --namespace or set JADA_CLOUDWATCH_NAMESPACE to the namespace the daemon "
            "publishes to (for example Jada)."
        )
    env = args.env or settings.get("JADA_ENV")
    try:
        names = put_alarms(
            namespace,
            env=env,
            prefix=args.prefix,
            actions=args.sns_topic_arn,
            thresholds=Thresholds.from_env(),
        )
    except (ClientError, BotoCoreError) as error:
        code = error_code(error) or error.__class__.__name__
        print(f"jada aws alarms: CloudWatch refused the alarms ({code}): {error}", file=sys.stderr)
        return 1
    for name in names:
        print(f"alarm {name}: {namespace} Env={env}")
    if not args.sns_topic_arn:
        print("No --sns-topic-arn given: the alarms change state in the console but notify no one.")
    return 0
