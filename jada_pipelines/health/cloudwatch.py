"""The health figures as CloudWatch metrics, so AWS alarms can page on them (``JADA_CLOUDWATCH_NAMESPACE``).

The figures are the ones the health checks judge: the backlog, the oldest waiting task, live sessions,
dead letters, sessions that ended at the turn cap, and the Google token's age. Each datum carries an ``Env``
dimension (``JADA_ENV``, default ``dev``) so staging and production alarms stay apart.

Plain Python; the sensor in ``metrics_definitions.py`` calls :func:`publish_health_metrics` every minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jada_pipelines import settings
from jada_pipelines.agents.queue import CLAIMABLE, open_queue
from jada_pipelines.aws_clients import client

if TYPE_CHECKING:
    from jada_pipelines.agents.queue import TaskQueue

DEFAULT_ENV = "dev"
# attempts() filters on start time; a session that ended in the window may have started long before it.
# No session outlives a day (its lease would have expired), so a day of history finds every one.
_SESSION_LOOKBACK_S = 24 * 3600


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str


def queue_metrics(queue: TaskQueue, *, since: float, now: float) -> list[Metric]:
    """The queue's figures now, and the sessions that ended at the turn cap in ``(since, now]``."""
    stats = queue.stats(now=now)
    turn_capped = sum(
        1
        for record in queue.attempts(since=since - _SESSION_LOOKBACK_S)
        # "incomplete" is the turn-cap outcome: the session left a handoff instead of finishing.
        if record.outcome == "incomplete" and record.ended_at is not None and since < record.ended_at <= now
    )
    return [
        Metric("QueueDepth", sum(stats.depth_by_status[status] for status in CLAIMABLE), "Count"),
        # An empty queue has no oldest task: 0 keeps an "older than N" alarm quiet instead of INSUFFICIENT_DATA.
        Metric("OldestQueuedAgeSeconds", stats.oldest_queued_age_s or 0.0, "Seconds"),
        Metric("LiveSessions", stats.live_sessions, "Count"),
        Metric("DeadLetters", stats.dead_letters, "Count"),
        Metric("TurnCapSessions", turn_capped, "Count"),
    ]


def token_metrics() -> list[Metric]:
    """Whether the Google credentials work, and their age, when a Google source is configured."""
    from jada_pipelines.google_api.credentials import check_credentials

    verdict = check_credentials()
    if verdict.kind == "missing_config":
        return []
    metrics = [Metric("GoogleCredentialsOk", 1.0 if verdict.ok else 0.0, "Count")]
    if verdict.token_age_days is not None:
        metrics.append(Metric("GoogleTokenAgeDays", verdict.token_age_days, "None"))
    return metrics


def put_metrics(namespace: str, metrics: list[Metric], *, env: str, timestamp: float) -> None:
    """One PutMetricData call (the API takes up to 1000 data points per call; we send fewer than ten)."""
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric.name,
                "Dimensions": [{"Name": "Env", "Value": env}],
                "Timestamp": at,
                "Value": float(metric.value),
                "Unit": metric.unit,
            }
            for metric in metrics
        ],
    )


def publish_health_metrics(namespace: str, *, since: float, now: float) -> list[Metric]:
    """Collect every figure and send it to ``namespace``; returns what was sent."""
    metrics = queue_metrics(open_queue(), since=since, now=now) + token_metrics()
    put_metrics(namespace, metrics, env=settings.env("JADA_ENV", DEFAULT_ENV), timestamp=now)
    return metrics
