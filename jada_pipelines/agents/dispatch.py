"""How long a task waits before its session talks to the model, split in three (plain Python, no Dagster):

- enqueue → claim: from the moment the task was due (enqueued, or re-queued) to the sensor's claim; a
  backlog, the sensor's interval and full slots all show here.
- claim → run start: Dagster's run queue, the run launch and the run worker's start-up, to the moment the
  session's op marks the task running.
- run start → first call: what the worker does before its first Messages API call (importing the SDK,
  building the client and the toolbox).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from jada_pipelines.agents.queue import AttemptRecord

SPANS = {
    "enqueue_to_claim": ("queued_at", "started_at"),
    "claim_to_run_start": ("started_at", "run_started_at"),
    "run_start_to_first_call": ("run_started_at", "first_call_at"),
}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def dispatch_latencies(attempts: Iterable[AttemptRecord]) -> dict[str, dict]:
    """Per span: how many attempts measured it, and the median and p95 in seconds (None when none did)."""
    attempts = list(attempts)
    result = {}
    for name, (start, end) in SPANS.items():
        values = [
            getattr(a, end) - getattr(a, start)
            for a in attempts
            if getattr(a, start) is not None and getattr(a, end) is not None
        ]
        result[name] = {
            "count": len(values),
            "median_s": round(statistics.median(values), 2) if values else None,
            "p95_s": round(percentile(values, 0.95), 2) if values else None,
        }
    return result


def describe_latencies(latencies: dict[str, dict]) -> str:
    parts = [
        f"{name.replace('_', ' ')} median {span['median_s']} s, p95 {span['p95_s']} s"
        for name, span in latencies.items()
        if span["count"]
    ]
    return "; ".join(parts) + "." if parts else "No session started in the last 24 h."


def latency_metadata(latencies: dict[str, dict]) -> dict[str, float]:
    """Flat figures for asset metadata (the UI plots each over time)."""
    return {
        f"{name}_{stat}": span[stat]
        for name, span in latencies.items()
        for stat in ("median_s", "p95_s")
        if span[stat] is not None
    }
