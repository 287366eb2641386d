"""The health figures as CloudWatch metrics, so AWS alarms can page on them (``JADA_CLOUDWATCH_NAMESPACE``).

The figures are the ones the health checks judge: the backlog, the oldest waiting task, live sessions,
dead letters, sessions that ended at the turn cap, the Google token's age and whether the Google credentials
work. Each datum carries an ``Env`` dimension (``JADA_ENV``, default ``dev``) so staging and production alarms
stay apart.

Plain Python apart from reading one check result from the Dagster instance; the sensor in
``sensors.py`` calls :func:`publish_health_metrics` every minute. No figure costs a Google request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jada_pipelines import settings
from jada_pipelines.agents.queue import CLAIMABLE, open_queue
from jada_pipelines.aws_clients import client
from jada_pipelines.google_api.credentials import stored_token_age
from jada_pipelines.google_api.errors import CredentialsError

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from jada_pipelines.agents.queue import TaskQueue

DEFAULT_ENV = settings.default("JADA_ENV")
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
        # Sessions that started, not claims made ahead that wait in Dagster's run queue: the over-cap alarm's figure.
        Metric("LiveSessions", stats.running_sessions, "Count"),
        Metric("DeadLetters", stats.dead_letters, "Count"),
        Metric("TurnCapSessions", turn_capped, "Count"),
    ]


def token_metrics(instance: DagsterInstance) -> list[Metric]:
    """The Google token's age and whether the credentials work, when a Google source is configured.

    Nothing here calls Google: a refresh every minute only to publish a figure would be 1,440 token
    requests a day. The age is read from the token store; whether the credentials work is the latest
    evaluation of the ``google_credentials_fresh`` check, which every port-sheet sync runs for real.
    """

    try:
        age_days = stored_token_age().age_days
    except CredentialsError as error:
        if error.kind == "missing_config":
            return []
        age_days = None  # the store cannot be read; the credentials check says why
    metrics = []
    ok = _credentials_check_ok(instance)
    if ok is not None:
        metrics.append(Metric("GoogleCredentialsOk", 1.0 if ok else 0.0, "Count"))
    if age_days is not None:
        metrics.append(Metric("GoogleTokenAgeDays", age_days, "None"))
    return metrics


def _credentials_check_ok(instance: DagsterInstance) -> bool | None:
    """Whether the latest ``google_credentials_fresh`` evaluation found working credentials; None before any."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import (
        COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    )

    from jada_pipelines.port_sheet.checks import CREDENTIALS_CHECK

    key = dg.AssetCheckKey(dg.AssetKey("port_sheet_rows"), CREDENTIALS_CHECK)
    # Completed evaluations only: the execution a running sync has planned carries no result yet.
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
    )
    evaluation = records[0].evaluation if records else None
    if evaluation is None:
        return None
    # A WARN failure is a token that works but expires soon (see port_sheet/checks.py); ERROR is one that failed.
    return evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN


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


def publish_health_metrics(
    namespace: str, instance: DagsterInstance, *, since: float, now: float
) -> list[Metric]:
    """Collect every figure and send it to ``namespace``; returns what was sent."""
    metrics = queue_metrics(open_queue(), since=since, now=now) + token_metrics(instance)
    put_metrics(namespace, metrics, env=settings.get("JADA_ENV"), timestamp=now)
    return metrics
