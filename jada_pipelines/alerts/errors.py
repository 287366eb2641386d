"""The error a Slack post ends in. Its own module so the sensors can catch it without importing slack_sdk
when the definitions load."""

from __future__ import annotations


class SlackDeliveryError(RuntimeError):
    """Slack did not take the message. ``permanent`` means retrying the same post cannot help."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        body: str | None,
        permanent: bool,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = body
        self.permanent = permanent
        # Set when Slack asked for a wait longer than a tick may sleep: post nothing before it is over.
        self.retry_after = retry_after
