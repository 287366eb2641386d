"""CloudWatch alarms on the health metrics (``jada aws alarms``), one call per alarm, safe to re-run.

``cloudwatch_metrics_sensor`` publishes every figure once a minute from inside the daemon, so when the
daemon dies the metrics simply stop. CloudWatch treats missing data as "missing" by default, which leaves
an alarm in its last state, so a dead publisher would page no one. The ``metrics-silent`` alarm therefore
counts data points of a figure that is always sent (``LiveSessions``) and treats missing data as
breaching: five silent minutes and it fires. The other alarms judge the figures themselves and treat
missing data as not breaching, so one outage pages once, not six times.

Thresholds match the health checks' ERROR levels (``JADA_HEALTH_*``) so CloudWatch and Dagster agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from jada_pipelines.aws_clients import client
from jada_pipelines.health.grading import Thresholds
from jada_pipelines.settings import MAX_CONCURRENT_SESSIONS

# The sensor publishes every 60 s; five minutes without a data point is a dead publisher, not a late one.
SILENT_MINUTES = 5


@dataclass(frozen=True)
class Alarm:
    suffix: str
    metric: str
    statistic: str
    period: int
    evaluation_periods: int
    comparison: str
    threshold: float
    treat_missing_data: str
    description: str


def alarms(thresholds: Thresholds) -> list[Alarm]:
    return [
        Alarm(
            "metrics-silent",
            "LiveSessions",
            "SampleCount",
            60,
            SILENT_MINUTES,
            "LessThanThreshold",
            1,
            "breaching",
            f"No health metrics for {SILENT_MINUTES} minutes: dagster-daemon (whose cloudwatch_metrics_sensor "
            "publishes every minute) is down or the sensor is off. Check the daemon service and `jada health`.",
        ),
        Alarm(
            "dead-letters",
            "DeadLetters",
            "Maximum",
            300,
            1,
            "GreaterThanThreshold",
            0,
            "notBreaching",
            "A task ran out of attempts and waits for a person: `jada health` lists it with its last error.",
        ),
        Alarm(
            "oldest-queued",
            "OldestQueuedAgeSeconds",
            "Maximum",
            300,
            1,
            "GreaterThanThreshold",
            thresholds.queued_age_error_minutes * 60,
            "notBreaching",
            f"A task has waited more than {thresholds.queued_age_error_minutes} minutes for a session: "
            "see the sessions_starting check and `jada health`.",
        ),
        Alarm(
            "sessions-over-cap",
            "LiveSessions",
            "Maximum",
            60,
            1,
            "GreaterThanThreshold",
            MAX_CONCURRENT_SESSIONS,
            "notBreaching",
            f"More than {MAX_CONCURRENT_SESSIONS} agent sessions at once: the session cap is broken. This must never fire.",
        ),
        Alarm(
            "google-credentials",
            "GoogleCredentialsOk",
            "Minimum",
            300,
            2,
            "LessThanThreshold",
            1,
            "notBreaching",
            "The port-sheet sync's Google credentials fail: the failed run's Slack message has the fix "
            "(usually `jada auth google`).",
        ),
        Alarm(
            "turn-cap",
            "TurnCapSessions",
            "Sum",
            3600,
            1,
            "GreaterThanThreshold",
            5,
            "notBreaching",
            "More than 5 agent sessions stopped at their turn cap in an hour: tasks are too big for one session.",
        ),
    ]


def put_alarms(
    namespace: str, *, env: str, prefix: str, actions: list[str], thresholds: Thresholds
) -> list[str]:
    """Create or update every alarm (PutMetricAlarm replaces an alarm of the same name); returns their names."""
    cloudwatch = client("cloudwatch")
    names = []
    for alarm in alarms(thresholds):
        name = f"{prefix}-{env}-{alarm.suffix}"
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=alarm.description,
            Namespace=namespace,
            MetricName=alarm.metric,
            Dimensions=[{"Name": "Env", "Value": env}],
            Statistic=alarm.statistic,
            Period=alarm.period,
            EvaluationPeriods=alarm.evaluation_periods,
            DatapointsToAlarm=alarm.evaluation_periods,
            ComparisonOperator=alarm.comparison,
            Threshold=float(alarm.threshold),
            TreatMissingData=alarm.treat_missing_data,
            ActionsEnabled=bool(actions),
            AlarmActions=actions,
            OKActions=actions,
        )
        names.append(name)
    return names
