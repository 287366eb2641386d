"""The Slack incoming-webhook resource (key ``slack``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from jada_pipelines import settings

if TYPE_CHECKING:
    from jada_pipelines.alerts.messages import SlackMessage
    from jada_pipelines.alerts.webhook import Pacer

WEBHOOK_VARIABLE = "SLACK_WEBHOOK_URL"


class SlackWebhookResource(dg.ConfigurableResource):
    """Posts alerts to a Slack incoming webhook, with Slack's retry contract and at most one message a second.

    The URL comes from ``SLACK_WEBHOOK_URL``, read when a message is sent rather than through ``dg.EnvVar``:
    an unset ``EnvVar`` fails resource initialisation with a config stack trace, while an unset webhook is a
    supported set-up here (the alert sensors then skip with a sentence saying to set it). The URL is a
    secret, so it never enters run config, logs, metadata or exceptions.

    Example::

        defs = dg.Definitions(sensors=[asset_check_alert_sensor], resources={"slack": SlackWebhookResource()})

        @dg.sensor
        def my_sensor(context, slack: SlackWebhookResource):
            if slack.configured():
                slack.post(message)
    """

    max_retries: int = Field(
        default=3,
        description="Retries for 429 (after Retry-After), 5xx and connection errors; 4xx is never retried.",
    )
    max_retry_after_seconds: float = Field(
        default=30.0,
        description="Longest Retry-After honoured; a longer one is cut so a sensor tick cannot hang.",
    )
    timeout_seconds: int = Field(default=10, description="HTTP timeout for each POST to the webhook.")
    min_interval_seconds: float = Field(
        default=1.0,
        description="Minimum spacing between posts (Slack allows one message per second per webhook).",
    )

    def configured(self) -> bool:
        return settings.env(WEBHOOK_VARIABLE) is not None

    def post(self, message: SlackMessage) -> None:
        """Send ``message``; raises ``SlackDeliveryError`` if Slack did not take it after retries."""
        from jada_pipelines.alerts.webhook import WebhookSender

        url = settings.env(WEBHOOK_VARIABLE)
        if url is None:
            raise settings.ConfigError(
                f"{WEBHOOK_VARIABLE} is not set: set it to a Slack incoming-webhook URL."
            )
        sender = WebhookSender(
            url,
            max_retries=self.max_retries,
            max_retry_after=self.max_retry_after_seconds,
            timeout=self.timeout_seconds,
            pacer=_shared_pacer(self.min_interval_seconds),
        )
        sender.send(message)


# One pacer per process and interval: every sensor tick in the daemon shares it, so Slack's
# one-message-per-second limit holds across ticks and both sensors, not just within one send loop.
@functools.cache
def _shared_pacer(interval: float) -> Pacer:
    from jada_pipelines.alerts.webhook import Pacer

    return Pacer(interval)
