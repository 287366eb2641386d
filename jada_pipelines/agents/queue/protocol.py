"""The durable agent-task queue's protocol and records: one protocol, two stores (SQLite, and DynamoDB on AWS).

Plain Python, no Dagster. Delivery is at-least-once with leases:
- ``claim`` hands out a lease (a random token with an expiry) and counts the attempt right away, so a worker
  that crashes mid-session has still used an attempt and a poison task cannot loop forever.
- Every write after the claim names the lease token. A worker whose lease expired or was taken over gets
  ``False``/``None`` back and must stop its session: that is what keeps a paused "zombie" worker and its
  replacement from both running the same task.
- The attempt number only ever grows. It is part of the Dagster run key (``task:<id>:<nonce>:attempt:<n>``),
  and a reused run key would make the sensor skip the run; the nonce is drawn at each enqueue, so a queue that
  was reset or moved to another backend cannot reuse a key either.
- A claim whose run never started (it waited in Dagster's run queue, or never got a run) is not charged: its
  attempt number still moves on, but the task gets one more attempt in its budget.

How a task's status moves (the statuses, attempts, retries, dead letters, withdrawals) is in
``transitions.py``; the two stores that apply it are ``sqlite.py`` and ``dynamodb.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jada_pipelines import settings
from jada_pipelines.agents.session import BACKENDS  # the backends a task may name


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    status: str
    attempt: int
    max_attempts: int
    max_turns: int | None
    priority: int
    workdir: str | None
    handoff: dict | None
    last_error: str | None
    turns: int
    cost_usd: float
    summary: str | None
    source: str | None  # e.g. "port_sheet:<row key>"
    run_id: str | None
    created_at: float
    updated_at: float
    available_at: float
    lease_expires_at: float | None
    nonce: str | None = None  # drawn at enqueue; part of the run key (None: enqueued before nonces existed)
    # The session backend ("messages" | "claude-code"); None: JADA_AGENT_BACKEND.
    backend: str | None = None
    # What the task may cost over all its attempts; None: JADA_AGENT_MAX_COST_USD (else no ceiling).
    max_cost_usd: float | None = None

    @property
    def run_key_nonce(self) -> str:
        return self.nonce or f"{self.created_at:.0f}"


def encode_handoff(handoff: dict | None) -> str | None:
    """A task's handoff as both stores keep it: JSON text, or None for none (an empty one included)."""
    return json.dumps(handoff) if handoff else None


def decode_handoff(stored: str | None) -> dict | None:
    return json.loads(stored) if stored else None


@dataclass(frozen=True)
class Lease:
    task_id: str
    token: str
    attempt: int
    expires_at: float
    task: Task


@dataclass(frozen=True)
class EnqueueResult:
    task: Task
    created: bool  # False: the id already existed; nothing was changed


@dataclass(frozen=True)
class QueueStats:
    depth_by_status: dict[str, int]
    oldest_queued_age_s: float | None  # over queued and incomplete tasks
    dead_letters: int
    live_sessions: int  # live leases: claims (dispatched) and sessions (running); what a claim counts
    # Of those, the sessions that started (running): at most 5, while claims made ahead wait in Dagster's queue.
    running_sessions: int = 0


@dataclass(frozen=True)
class AttemptRecord:
    task_id: str
    attempt: int
    run_id: str | None
    outcome: str  # done|incomplete|failed|transient|refused|lost, or "" while the attempt is in flight
    turns: int
    cost_usd: float
    stop_reason: str | None
    started_at: float  # the claim
    ended_at: float | None
    # Dispatch latency: when the task became due (enqueued, or re-queued), when its run's session started
    # (``mark_running``), and when the session sent its first model call. None when not (yet) known.
    queued_at: float | None = None
    run_started_at: float | None = None
    first_call_at: float | None = None


class TaskQueue(Protocol):
    def init(self) -> None: ...  # create the schema or table; idempotent (`jada queue init`)

    def enqueue(
        self,
        task_id: str,
        prompt: str,
        *,
        max_turns: int | None = None,
        workdir: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        source: str | None = None,
        backend: str | None = None,
        max_cost_usd: float | None = None,
    ) -> EnqueueResult: ...

    def claim(self, *, worker: str, lease_seconds: float, max_live: int = 5) -> Lease | None: ...

    def heartbeat(self, lease: Lease, *, lease_seconds: float) -> bool: ...  # False: lease lost

    def mark_running(self, lease: Lease, *, run_id: str) -> bool: ...  # only from dispatched

    def lease_for(self, task_id: str, attempt: int) -> Lease | None: ...  # the live lease of that attempt

    def record_first_call(self, task_id: str, attempt: int, *, at: float) -> None: ...

    def complete(
        self,
        lease: Lease,
        *,
        outcome: str,
        turns: int,
        cost_usd: float,
        summary: str | None,
        handoff: dict | None = None,
        stop_reason: str | None = None,
    ) -> bool: ...  # outcome done|incomplete

    def fail(
        self,
        lease: Lease,
        *,
        error: str,
        retryable: bool,
        turns: int = 0,
        cost_usd: float = 0.0,
        outcome: str = "failed",
        charge_attempt: bool = True,
        handoff: dict | None = None,  # replaces the task's handoff; None keeps the one it has
    ) -> str | None: ...  # the new status ("queued"/"dead"/"failed"), or None when fenced out

    def requeue(self, task_id: str, *, reset_attempts: bool = False) -> bool: ...

    def cancel(self, task_id: str) -> bool: ...  # from WITHDRAWABLE: fences out a running session

    def cancel_unstarted(self, task_id: str) -> bool: ...  # from CANCELLABLE_UNSTARTED only, atomically

    def supersede(self, task_id: str, *, by: str) -> bool: ...  # from SUPERSEDABLE only, atomically

    def get(self, task_id: str) -> Task | None: ...

    def list(
        self, *, status: str | None = None, source_prefix: str | None = None, limit: int = 100
    ) -> list[Task]: ...

    def stats(self, *, now: float | None = None) -> QueueStats: ...

    def attempts(self, *, since: float) -> list[AttemptRecord]: ...


class QueueError(ValueError):
    """A bad argument or queue URL; the message says what is wrong and what to do."""


# Task ids become a directory name, a transcript path and part of a Dagster run key: letters and digits
# first, then letters, digits, '.', '_' or '-', 128 characters at most.
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_task_id(task_id: str) -> None:
    if not task_id or not task_id.strip():
        raise QueueError(
            "The task id is empty: give an id such as 'fix-login-bug', or leave it out to get one."
        )
    if not TASK_ID_PATTERN.fullmatch(task_id):
        raise QueueError(
            f"The task id {task_id!r} is not allowed: use 1 to 128 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (no '/', ':' or spaces), e.g. 'fix-login-bug'."
        )


def resolve_workdir(workdir: str | None) -> str | None:
    """The absolute working directory for a task, checked when it is added: an existing directory under one of
    ``JADA_AGENT_WORKDIR_ROOTS`` (default: the data directory's ``workdirs/``). ``None`` stays ``None`` (the
    session then works in ``workdirs/<id>``)."""
    if workdir is None:
        return None
    path = Path(workdir).expanduser().resolve()  # a relative path is taken from where the task is added
    roots = settings.workdir_roots()
    if not any(path.is_relative_to(root.resolve()) for root in roots):
        raise QueueError(
            f"The working directory {path} is outside the allowed roots ({', '.join(map(str, roots))}): move "
            "it under one of them, or add its parent to JADA_AGENT_WORKDIR_ROOTS (':'-separated)."
        )
    if not path.is_dir():
        raise QueueError(
            f"The working directory {path} does not exist: create it first, or leave --workdir out."
        )
    return str(path)


def validate_enqueue(
    task_id: str,
    prompt: str,
    max_turns: int | None,
    max_attempts: int,
    workdir: str | None = None,
    *,
    backend: str | None = None,
    max_cost_usd: float | None = None,
) -> str | None:
    """Reject input no backend should store; shared so both backends say the same thing. Returns the
    task's working directory resolved (see ``resolve_workdir``)."""
    validate_task_id(task_id)
    if backend is not None and backend not in BACKENDS:
        raise QueueError(
            f"backend={backend!r} for task {task_id!r} is not a session backend: use one of "
            f"{', '.join(BACKENDS)} (or leave it empty for JADA_AGENT_BACKEND)."
        )
    if max_cost_usd is not None and not max_cost_usd > 0:
        raise QueueError(
            f"max_cost_usd={max_cost_usd} for task {task_id!r} must be a positive number of dollars (or unset "
            "for JADA_AGENT_MAX_COST_USD)."
        )
    if not prompt or not prompt.strip():
        raise QueueError(f"Task {task_id!r} has an empty prompt: say what the agent should do.")
    if max_turns is not None and max_turns < 1:
        raise QueueError(
            f"max_turns={max_turns} for task {task_id!r} must be 1 or more (or unset for the default)."
        )
    if max_attempts < 1:
        raise QueueError(f"max_attempts={max_attempts} for task {task_id!r} must be 1 or more.")
    try:
        return resolve_workdir(workdir)
    except settings.ConfigError as exc:
        raise QueueError(str(exc)) from None


def new_nonce() -> str:
    import secrets

    return secrets.token_hex(4)
