"""The CloudWatch metrics sensor."""

from __future__ import annotations

import time

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.health.cloudwatch import publish_health_metrics

PUBLISH_INTERVAL_S = 60


@dg.sensor(
    minimum_interval_seconds=PUBLISH_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute, sends the queue and Google-token health figures to CloudWatch "
    "(when JADA_CLOUDWATCH_NAMESPACE is set), for AWS alarms.",
)
def cloudwatch_metrics_sensor(context: dg.SensorEvaluationContext):
    # A sensor rather than a schedule: publishing needs no run, and a run a minute would bury the run history.
    namespace = settings.get("JADA_CLOUDWATCH_NAMESPACE")
    if namespace is None:
        return dg.SkipReason(
            "JADA_CLOUDWATCH_NAMESPACE is not set, so no metrics go to CloudWatch; set it (for example to "
            "Jada) on AWS to publish the queue and token figures every minute."
        )

    now = time.time()
    # The cursor is the previous publish time, so each turn-capped session is counted in exactly one minute.
    since = float(context.cursor) if context.cursor else now - PUBLISH_INTERVAL_S
    metrics = publish_health_metrics(namespace, context.instance, since=since, now=now)
    sent = ", ".join(f"{metric.name}={metric.value:g}" for metric in metrics)
    return dg.SensorResult(
        skip_reason=f"Published to CloudWatch namespace {namespace}: {sent}.", cursor=str(now)
    )
