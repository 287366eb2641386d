"""Posting to a Slack incoming webhook the way Slack's contract asks (plain Python, no Dagster).

Slack answers 200 ``ok`` on success and a plain-string error otherwise. 429 carries ``Retry-After``;
5xx and dropped connections are worth a few retries; any other 4xx (``invalid_payload``, ``no_service``,
``channel_is_archived``...) will fail the same way every time, so it is not retried. Slack asks for at most
one message per second per webhook and may disable a webhook that keeps posting after a 429.

The webhook URL is a secret (anyone holding it can post): nothing here logs or raises it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from http.client import RemoteDisconnected
from urllib.error import URLError

from slack_sdk.http_retry.handler import RetryHandler

from jada_pipelines.alerts.errors import SlackDeliveryError
from jada_pipelines.alerts.messages import SlackMessage

__all__ = ["Pacer", "SlackContractRetryHandler", "SlackDeliveryError", "WebhookSender"]

log = logging.getLogger(__name__)

# slack_sdk logs the full request URL (the secret) at INFO when its logger's own level is NOTSET or
# DEBUG; a client logger pinned at WARNING keeps it quiet while still reporting connection errors.
_client_log = logging.getLogger("jada_pipelines.alerts.slack_sdk")
_client_log.setLevel(logging.WARNING)

_CONNECTION_ERRORS = (URLError, ConnectionError, RemoteDisconnected, TimeoutError)


class SlackContractRetryHandler(RetryHandler):
    """One bounded budget of retries for 429 (after Retry-After), 5xx and connection errors.

    slack_sdk's built-in handlers sleep with ``time.sleep`` and retry only 500/503; this one retries every
    5xx and takes ``sleep`` so tests do not wait. A Retry-After longer than ``max_retry_after`` is not slept
    (a sensor tick must not hang) and not cut short either (Slack may disable a webhook that posts early):
    the 429 comes back to the caller, which stores the wait and honours it on a later tick.
    """

    def __init__(self, *, max_retries: int, max_retry_after: float, sleep: Callable[[float], None]):
        super().__init__(max_retry_count=max_retries)
        self._max_retry_after = max_retry_after
        self._sleep = sleep

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if response is not None:
            if response.status_code == 429:
                return _retry_after(response.headers) <= self._max_retry_after
            return response.status_code >= 500
        return isinstance(error, _CONNECTION_ERRORS)

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        state.next_attempt_requested = True
        if response is not None and response.status_code == 429:
            delay = _retry_after(response.headers)
        else:
            # Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... as slack_sdk's own calculator does.
            delay = 0.5 * 2**state.current_attempt * (0.5 + random.random() / 2)
        log.warning("Slack webhook: retrying after %.1f s (attempt %d).", delay, state.current_attempt + 1)
        self._sleep(delay)
        state.increment_current_attempt()


def _retry_after(headers: dict) -> float:
    # The retry handler sees header values as lists; a finished WebhookResponse has them as strings.
    for name, values in headers.items():
        if name.lower() == "retry-after":
            try:
                return float(values if isinstance(values, str) else values[0])
            except (ValueError, IndexError, TypeError):
                break
    return 1.0


class Pacer:
    """Spaces sends at least ``interval`` seconds apart (Slack: no more than one message per second)."""

    def __init__(
        self,
        interval: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            if self._last is not None:
                remaining = self._last + self.interval - self._clock()
                if remaining > 0:
                    self._sleep(remaining)
            self._last = self._clock()


class WebhookSender:
    """Sends ``SlackMessage``s to one webhook URL, paced, with Slack's retry contract."""

    def __init__(
        self,
        url: str,
        *,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        timeout: int = 10,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from slack_sdk.webhook import WebhookClient

        self._client = WebhookClient(
            url,
            timeout=timeout,
            logger=_client_log,
            retry_handlers=[
                SlackContractRetryHandler(
                    max_retries=max_retries, max_retry_after=max_retry_after, sleep=sleep
                )
            ],
        )
        self._pacer = pacer or Pacer(sleep=sleep)

    def send(self, message: SlackMessage) -> None:
        """Deliver ``message`` or raise ``SlackDeliveryError`` (never with the URL in it)."""
        response = self._post(message.text, message.blocks, message.dedup_key)
        if response.status_code == 400 and response.body == "invalid_payload" and message.blocks:
            # Blocks Slack will not take would hold every later alert behind this one; the plain-text
            # fallback carries the whole alert, so it goes out alone (and the rejection is still logged).
            log.error(
                "Slack rejected the Block Kit of alert [%s]; sending its plain text.", message.dedup_key
            )
            response = self._post(message.text, None, message.dedup_key)
        if response.status_code == 200:
            return
        if response.status_code == 429:
            wait = _retry_after(response.headers)
            raise SlackDeliveryError(
                f"Slack webhook answered HTTP 429 for alert [{message.dedup_key}] and asked for {wait:.0f} s of quiet"
                " (Retry-After); nothing is posted before then, and the alert goes out after it.",
                status=429,
                body=response.body,
                permanent=False,
                retry_after=wait,
            )
        permanent = 400 <= response.status_code < 500 and response.status_code != 429
        error = SlackDeliveryError(
            _explain(response.status_code, response.body, message.dedup_key),
            status=response.status_code,
            body=response.body,
            permanent=permanent,
        )
        if permanent:
            log.error("SLACK WEBHOOK REJECTED AN ALERT: %s", error)
        raise error

    def _post(self, text: str, blocks: list[dict] | None, dedup_key: str):
        self._pacer.wait()
        try:
            return self._client.send(text=text, blocks=blocks)
        except _CONNECTION_ERRORS as exc:
            raise SlackDeliveryError(
                f"Could not reach the Slack webhook ({_reason(exc)}) after retries; the alert "
                f"[{dedup_key}] will be retried on the next sensor tick.",
                status=None,
                body=None,
                permanent=False,
            ) from None


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc.__class__.__name__)


_FIXES = {
    "invalid_payload": "even the plain-text message was rejected; this is a bug in jada_pipelines.alerts.messages.",
    "no_service": "the webhook was disabled or revoked: create a new incoming webhook and set SLACK_WEBHOOK_URL to it.",
    "channel_is_archived": "the webhook's channel is archived: unarchive it or create a webhook for another channel.",
    "channel_not_found": "the webhook's channel was deleted: create a webhook for an existing channel.",
    "action_prohibited": "a workspace admin restricted posting to the channel: ask them, or use another channel.",
}


def _explain(status: int, body: str, dedup_key: str) -> str:
    what = f"Slack webhook answered HTTP {status} {body!r} for alert [{dedup_key}]"
    if status >= 500:
        return f"{what}: Slack is failing; it will be retried on the next sensor tick."
    fix = _FIXES.get(body, "check SLACK_WEBHOOK_URL and the webhook's settings in Slack.")
    return f"{what}, not retried: {fix} Alerts are held until a post succeeds."
