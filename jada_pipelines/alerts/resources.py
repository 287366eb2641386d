"""The Slack incoming-webhook resource (key ``slack``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from jada_pipelines import settings

if TYPE_CHECKING:
    from jada_pipelines.alerts.messages import SlackMessage
    from jada_pipelines.alerts.webhook import Pacer

WEBHOOK_VARIABLE = "SLACK_WEBHOOK_URL"
# Plain http is allowed to these hosts only: the local Slack emulator of the tests and `make demo`. Anywhere
# else the URL (a secret that lets anyone post) would cross the network in clear.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def webhook_url() -> str | None:
    """``SLACK_WEBHOOK_URL``, or None when unset; a value that is not an https:// URL is refused.

    The refusal never repeats the value: it is a secret, and a typo in it is still most of the secret.
    """
    url = settings.get(WEBHOOK_VARIABLE)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    secure = parts is not None and parts.scheme == "https"
    local = parts is not None and parts.scheme == "http" and host in _LOOPBACK_HOSTS
    if not host or not (secure or local):
        raise settings.ConfigError(
            f"{WEBHOOK_VARIABLE} is not an https:// URL with a host, so no alert is sent to it: set it to the "
            "incoming-webhook URL Slack shows (https://hooks.slack.com/services/…). The value is not repeated "
            "here because it is a secret."
        )
    return url


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
        """Whether a webhook is set; raises ``ConfigError`` (without the value) when it is set but not https."""
        return webhook_url() is not None

    def post(self, message: SlackMessage) -> None:
        """Send ``message``; raises ``SlackDeliveryError`` if Slack did not take it after retries.

        Whatever goes wrong, the error that leaves here cannot carry the URL: an unexpected exception (from
        slack_sdk, urllib or http.client, whose texts can quote the URL) is replaced by one that names only its
        class, and it is raised outside the ``except`` so no traceback chains back to the original.
        """
        from jada_pipelines.alerts.webhook import SlackDeliveryError, WebhookSender

        url = webhook_url()
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
        unexpected = None
        try:
            sender.send(message)
        except SlackDeliveryError:
            raise
        except Exception as exc:
            unexpected = exc.__class__.__name__
        if unexpected is not None:
            raise SlackDeliveryError(
                f"Posting alert [{message.dedup_key}] to the Slack webhook failed with {unexpected}; its text is "
                f"withheld because it can contain the webhook URL. Check {WEBHOOK_VARIABLE} (a URL Slack gave, "
                "with no spaces or stray characters); the alert is retried on the next tick.",
                status=None,
                body=None,
                permanent=False,
            )


# One pacer per process and interval: every sensor tick in the daemon shares it, so Slack's
# one-message-per-second limit holds across ticks and both sensors, not just within one send loop.
@functools.cache
def _shared_pacer(interval: float) -> Pacer:
    from jada_pipelines.alerts.webhook import Pacer

    return Pacer(interval)
