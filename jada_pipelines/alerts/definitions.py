"""Slack alerts: the webhook resource and the alert sensors (failed checks, failed runs, stale assets)."""

import dagster as dg

from jada_pipelines.alerts.resources import SlackWebhookResource
from jada_pipelines.alerts.sensors import (
    asset_check_alert_sensor,
    freshness_alert_sensor,
    run_failure_alert_sensor,
)

defs = dg.Definitions(
    sensors=[asset_check_alert_sensor, run_failure_alert_sensor, freshness_alert_sensor],
    resources={"slack": SlackWebhookResource()},
)
