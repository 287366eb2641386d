"""One attempt of one task, from a lease to an outcome recorded in the queue. Plain Python, no Dagster.

The run worker holds the lease for the whole session: a thread heartbeats it, and the moment a heartbeat
comes back False (the lease expired and someone else may own the task, or an operator cancelled it) the
session is told to stop and its running command is killed. That is what stops a paused-and-resumed worker
and its replacement from both running one task.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jada_pipelines.agents.handoff import handoff_for
from jada_pipelines.agents.queue import Lease, TaskQueue
from jada_pipelines.agents.session import SessionResult, SessionSpec

# A lease three heartbeats long survives one missed heartbeat (a slow disk, a busy box).
SESSION_LEASE_SECONDS = 90.0
HEARTBEAT_SECONDS = 30.0
# Two failed heartbeat writes in a row (not a lost lease: an error) also stop the session.
MAX_HEARTBEAT_ERRORS = 2


class LeaseLost(RuntimeError):
    """The task is no longer this worker's: reclaimed after expiry, cancelled or superseded."""


class LeaseKeeper:
    """Heartbeats ``lease`` from a thread until stopped; sets ``lost`` when the lease is gone."""

    def __init__(
        self,
        queue: TaskQueue,
        lease: Lease,
        *,
        lease_seconds: float = SESSION_LEASE_SECONDS,
        every_seconds: float = HEARTBEAT_SECONDS,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.queue = queue
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.every_seconds = every_seconds
        self.on_error = on_error
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{lease.task_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        # The first beat comes at once: it swaps the claim's long dispatch lease for the session lease.
        errors = 0
        while True:
            try:
                alive = self.queue.heartbeat(self.lease, lease_seconds=self.lease_seconds)
                errors = 0
            # Any queue error (a locked or full disk, a throttled table): report it, and give the lease up
            # after MAX_HEARTBEAT_ERRORS in a row rather than run on without knowing whether it is still ours.
            except Exception as exc:
                errors += 1
                alive = errors < MAX_HEARTBEAT_ERRORS
                if self.on_error is not None:
                    self.on_error(exc)
            if not alive:
                self.lost.set()
                return
            if self._done.wait(self.every_seconds):
                return


@dataclass(frozen=True)
class AttemptOutcome:
    result: SessionResult
    task_status: str | None  # the task's status after recording; None when the lease was lost


def record_outcome(queue: TaskQueue, lease: Lease, result: SessionResult) -> str | None:
    """Write the session's outcome to the queue (fenced by the lease) and return the task's new status."""
    cost = result.cost_usd
    if result.outcome in ("done", "incomplete"):
        recorded = queue.complete(
            lease,
            outcome=result.outcome,
            turns=result.turns,
            cost_usd=cost,
            summary=result.summary,
            handoff=result.handoff,
            stop_reason=result.stop_reason,
        )
        task = queue.get(lease.task_id) if recorded else None
        return task.status if task is not None else None
    if result.outcome == "lost":
        return None
    # failed (400/401/403), refused and over_budget are for a person; transient goes back to the queue with a
    # back-off.
    return queue.fail(
        lease,
        error=result.error or result.outcome,
        retryable=result.outcome == "transient",
        turns=result.turns,
        cost_usd=cost,
        outcome=result.outcome,
        handoff=result.handoff,
    )


def execute_attempt(
    queue: TaskQueue,
    lease: Lease,
    spec: SessionSpec,
    *,
    run_id: str,
    run_session: Callable[[SessionSpec, threading.Event], SessionResult],
    lease_seconds: float = SESSION_LEASE_SECONDS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    on_heartbeat_error: Callable[[Exception], None] | None = None,
    already_running: bool = False,
) -> AttemptOutcome:
    """Mark the task running (unless the caller did), run the session under a heartbeated lease, and record
    its outcome and when it first called the model."""
    if not already_running and not queue.mark_running(lease, run_id=run_id):
        raise LeaseLost(
            f"Task {lease.task_id} attempt {lease.attempt} is no longer this run's: its lease expired, or it was "
            "cancelled or superseded before the run started. Nothing was sent to the model."
        )
    keeper = LeaseKeeper(
        queue,
        lease,
        lease_seconds=lease_seconds,
        every_seconds=heartbeat_seconds,
        on_error=on_heartbeat_error,
    )
    with keeper:
        result = run_session(spec, keeper.lost)
    # Every unfinished attempt leaves the next one what its transcript shows, whichever backend ran it.
    result.handoff = handoff_for(result, spec.workdir)
    first_call = first_call_at(result.transcript_path)
    if first_call is not None:
        queue.record_first_call(lease.task_id, lease.attempt, at=first_call)
    return AttemptOutcome(result=result, task_status=record_outcome(queue, lease, result))


def first_call_at(transcript: Path | None) -> float | None:
    """When the session sent its first model call: the first ``request`` line of its transcript."""
    if transcript is None:
        return None
    try:
        with transcript.open() as lines:
            for line in lines:
                entry = json.loads(line)
                if entry.get("kind") == "request":
                    return float(entry["ts"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None
