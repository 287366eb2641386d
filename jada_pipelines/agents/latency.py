"""How long a task waits before its session talks to the model, split in three (plain Python, no Dagster):

- enqueue → claim: from the moment the task was due (enqueued, or re-queued) to the sensor's claim; a
  backlog, the sensor's interval and full slots all show here.
- claim → run start: Dagster's run queue, the run launch and the run worker's start-up, to the moment the
  session's op marks the task running.
- run start → first call: what the worker does before its first Messages API call (importing the SDK,
  building the client and the toolbox).

And the hand-over, what a backlog feels: per session slot, from one session's end (its last model answer,
when the worker records the outcome) to the next session's first model call, counted only when that next
task was already waiting as the slot freed. Dagster does not name its slots, so slots are matched in order:
each first call takes the slot that freed earliest and is still unclaimed (a slot free before the window,
or never used, has no hand-over).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
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


def handovers(attempts: Iterable[AttemptRecord]) -> list[float]:
    """The hand-over of each session that took a slot another session freed while its task waited, in
    seconds (see the module's docstring)."""
    sessions = [a for a in attempts if a.first_call_at is not None]
    # At one instant an end comes before a start: the slot is free before it is taken.
    events = sorted(
        [(a.ended_at, 0, a) for a in sessions if a.ended_at is not None]
        + [(a.first_call_at, 1, a) for a in sessions],
        key=lambda event: event[:2],
    )
    freed: deque[float] = deque()
    result = []
    for at, kind, attempt in events:
        if kind == 0:
            freed.append(at)
        elif freed:
            slot_freed_at = freed.popleft()
            if attempt.queued_at is not None and attempt.queued_at <= slot_freed_at:
                result.append(at - slot_freed_at)
    return result


def _figures(values: list[float]) -> dict:
    return {
        "count": len(values),
        "median_s": round(statistics.median(values), 2) if values else None,
        "p95_s": round(percentile(values, 0.95), 2) if values else None,
    }


def dispatch_latencies(attempts: Iterable[AttemptRecord]) -> dict[str, dict]:
    """Per span, and for the hand-over: how many attempts measured it, and the median and p95 in seconds
    (None when none did)."""
    attempts = list(attempts)
    result = {}
    for name, (start, end) in SPANS.items():
        values = [
            getattr(a, end) - getattr(a, start)
            for a in attempts
            if getattr(a, start) is not None and getattr(a, end) is not None
        ]
        result[name] = _figures(values)
    result["handover"] = _figures(handovers(attempts))
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
