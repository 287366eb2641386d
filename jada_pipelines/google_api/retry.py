"""The Google client's retry policy: transient failures retried with backoff, a 429 waited out as Google asks.

Plain Python (no Dagster). Backoff follows Google's recipe (exponential with jitter, "Usage limits",
https://developers.google.com/sheets/api/limits#exponential); a revoked token or a 403 is never retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from jada_pipelines.google_api.errors import CredentialsError

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")


# Google's Sheets quotas are per minute ("Usage limits": requests work again after a minute), so a 429
# without Retry-After is waited out for one whole window.
QUOTA_WINDOW_S = 60.0


def pause(seconds: float) -> None:
    """The one place the Google client waits; a test swaps it for a clock it controls."""
    time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """A bounded retry: transient failures with backoff, ``attempts`` times at most; a 429 (quota) waited
    out as Google asks, up to ``quota_wait_s`` in all; never a revoked token or a 403."""

    attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 32.0
    quota_wait_s: float = 150.0
    sleep: Callable[[float], None] = field(default=lambda seconds: pause(seconds))

    def delay(self, retry: int) -> float:
        # Google's recipe: 2^n seconds plus up to a second of jitter, capped.
        return min(self.base_delay_s * (2**retry + random.random()), self.max_delay_s)

    def quota_delay(self, error: CredentialsError) -> float:
        """How long a 429 asks to wait: its Retry-After, else the rest of Google's per-minute window."""
        return error.retry_after_s if error.retry_after_s is not None else QUOTA_WINDOW_S + random.random()

    def call(
        self,
        fn: Callable[[], T],
        *,
        on_attempt: Callable[[], None] | None = None,
        quota: QuotaBudget | None = None,
    ) -> T:
        """``fn()``, retried while it raises a retryable :class:`CredentialsError`: transient failures
        ``attempts`` times at most, a quota as long as the waits fit in the budget (``quota_wait_s``)."""
        quota = quota or QuotaBudget(self.quota_wait_s)
        retry = 0
        while True:
            if on_attempt is not None:
                on_attempt()
            try:
                return fn()
            except CredentialsError as error:
                if not error.retryable:
                    raise
                if error.kind == "quota":
                    self.sleep(quota.take(error, self.quota_delay(error)))
                    continue
                if retry + 1 >= self.attempts:
                    error.metadata["attempts"] = self.attempts
                    raise
            self.sleep(self.delay(retry))
            retry += 1


@dataclass
class QuotaBudget:
    """What one session may still spend waiting out 429s, so a run's quota waits stay bounded."""

    limit_s: float
    waited_s: float = 0.0

    def take(self, error: CredentialsError, wait: float) -> float:
        """``wait`` if it fits in what is left, else the "quota" failure for the run."""
        if self.waited_s + wait > self.limit_s:
            raise quota_exhausted(error, self.waited_s) from None
        self.waited_s += wait
        return wait


def quota_exhausted(error: CredentialsError, waited: float) -> CredentialsError:
    """The run's failure once a 429 outlasted the wait it may spend on quota."""
    final = CredentialsError(
        "quota",
        f"The Google Sheets API quota is exhausted (HTTP 429 RESOURCE_EXHAUSTED): the per-minute limit of the "
        f"account or Cloud project was still reached after waiting {waited:.0f} s, so this run stopped before "
        "finishing (nothing was skipped silently; the next scheduled run syncs again). If it keeps happening, "
        "another program shares the quota: spread its calls, or ask for more quota in the Google Cloud "
        "console (IAM & Admin > Quotas, service sheets.googleapis.com).",
        {**error.metadata, "quota_waited_s": round(waited, 1)},
    )
    final.retry_after_s = error.retry_after_s
    return final
