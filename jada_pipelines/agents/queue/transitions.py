"""How a task's status moves: the queue's rules, written once for both stores.

Pure Python: no I/O, no sqlite3, no boto3. Each function takes what it needs of a task as it stands and
returns a ``Move``: the task's fields to write, the cost to add, and how the attempt record closes.
``store.py`` says which move each protocol call makes; the stores (``sqlite.py``, ``dynamodb.py``) only make
a move atomic, and how each does it is said at the top of its module.
A change to the retry policy, the attempt budget or an error text is made here and nowhere else.

Statuses (``STATUSES``):
- ``queued``: waiting for a claim (maybe not before ``available_at``, after a back-off).
- ``dispatched``: claimed by the sensor, its run not started yet. ``running``: the session has started.
- ``done``: finished. ``incomplete``: the last attempt hit its turn cap and left a handoff; it is claimable
  like ``queued``, so the next attempt continues from the handoff.
- ``failed``: a permanent error (a 400/401/403 from the API); ``dead``: a dead letter, attempts used up,
  the model refused, or the task's cost ceiling was reached (outcome ``over_budget``). Both wait for a person
  (``requeue``).
- ``cancelled``, ``superseded``: withdrawn by an operator or replaced by a newer task (``supersede``).

Attempts: ``claim`` counts the attempt right away, so a worker that crashes mid-session has still used an
attempt and a poison task cannot loop forever. The attempt number only ever grows (it names the Dagster run);
what a person or a never-started claim gives back is budget (``max_attempts``), never the number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jada_pipelines.agents.queue.protocol import QueueError, encode_handoff

STATUSES = (
    "queued",
    "dispatched",
    "running",
    "done",
    "incomplete",
    "failed",
    "dead",
    "cancelled",
    "superseded",
)
# Statuses a claim may pick up.
CLAIMABLE = ("queued", "incomplete")
# Statuses that hold a lease (a live session, or one about to start).
LEASED = ("dispatched", "running")
# The status a run may start from: a second run holding the same lease (a re-execution from the UI, a
# launchpad copy of the config) finds the task ``running`` or finished and is refused.
STARTABLE = ("dispatched",)
# The order in which claims pick due tasks: (field, descending).
CLAIM_ORDER = (("priority", True), ("available_at", False), ("created_at", False))
# The withdrawal rules:
# - ``cancel`` (an operator's) takes a task from any status but an end already reached; a running session is
#   fenced out (its lease is cleared) and stops;
# - ``supersede`` (a newer request replaced the task) takes it from the same statuses but ``running``: a
#   session that started finishes, even if it started after the caller looked;
# - ``cancel_unstarted`` takes a task only while no session has started on it: waiting for a claim, or claimed
#   with its run not started yet (``dispatched``: the claim's lease is cleared, so that run never starts). A
#   claim and a conditional cancel racing on one task end in exactly one of the two: the session starts
#   (``mark_running`` succeeds and the cancel answers False), or the task is cancelled (and ``mark_running``
#   answers False).
WITHDRAWABLE = tuple(status for status in STATUSES if status not in ("done", "cancelled", "superseded"))
SUPERSEDABLE = tuple(status for status in WITHDRAWABLE if status != "running")
CANCELLABLE_UNSTARTED = (*CLAIMABLE, "dispatched")

# What a finished attempt may report: ``complete`` takes the first, ``fail`` the second.
COMPLETE_OUTCOMES = ("done", "incomplete")
FAIL_OUTCOMES = ("failed", "transient", "refused", "lost", "over_budget")
# Outcomes that make the task a dead letter for a person, whatever attempts are left.
DEAD_LETTER_OUTCOMES = ("refused", "over_budget")
# The outcome of an attempt whose lease ended without a report (expired, or withdrawn).
LOST = "lost"

# The texts a task's ``last_error`` takes from the queue itself.
CANCEL_REASON = "cancelled by an operator"
LEASE_LOST = "lease expired: the worker stopped heartbeating (crashed, paused or lost)"
CLAIM_NEVER_STARTED = "the claim expired before its run started (not charged as an attempt)"
TURN_CAP_EXHAUSTED = "turn cap reached on every attempt"


def superseded_reason(by: str) -> str:
    return f"superseded by task {by}"


DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF_S = 60.0
MAX_RETRY_BACKOFF_S = 3600.0


def retry_backoff(attempt: int, base: float) -> float:
    """Exponential back-off after a transient failure: base, 2·base, 4·base…, capped at an hour."""
    return min(base * 2 ** max(attempt - 1, 0), MAX_RETRY_BACKOFF_S)


def check_status(status: str | None) -> None:
    """A status asked for by name (``list``) must be one of ``STATUSES``; None asks for every status."""
    if status is not None and status not in STATUSES:
        raise QueueError(f"Unknown status {status!r}; use one of: {', '.join(STATUSES)}.")


def check_outcome(outcome: str, allowed: tuple[str, ...]) -> None:
    if outcome not in allowed:
        raise QueueError(f"outcome {outcome!r} is not one of {', '.join(allowed)}.")


# Leaving a leased status clears the lease: the token is the fence, so a session still holding it stops.
_RELEASED = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}


@dataclass(frozen=True)
class Move:
    """What one transition writes."""

    changes: dict[str, Any]  # the task's fields, as stored
    cost_added: float = 0.0  # added to the task's cost_usd (an increment, so the store keeps it atomic)
    attempt: dict[str, Any] = field(default_factory=dict)  # fields of the attempt record; empty: untouched

    @property
    def status(self) -> str | None:
        return self.changes.get("status")


def claim_order(task: Mapping[str, Any]) -> tuple:
    """The sort key of a claimable task: the most urgent first."""
    return tuple(-task[name] if descending else task[name] for name, descending in CLAIM_ORDER)


def lease_holds(
    task: Mapping[str, Any], *, token: str, now: float, statuses: tuple[str, ...] = LEASED
) -> bool:
    """The fence: only the holder of an unexpired lease, on a task still in ``statuses``, may write."""
    expires_at = task["lease_expires_at"]
    return (
        task["lease_token"] == token
        and task["status"] in statuses
        and expires_at is not None
        and expires_at >= now
    )


def lease_expired(task: Mapping[str, Any], *, now: float) -> bool:
    expires_at = task["lease_expires_at"]
    return task["status"] in LEASED and expires_at is not None and expires_at < now


def new_task(*, now: float, max_attempts: int, **fields: Any) -> dict[str, Any]:
    """A task as enqueued: ``queued`` and due now, no attempt made, ``max_attempts`` granted (and kept as
    ``attempt_budget``, what ``requeue(reset_attempts=True)`` grants again). ``fields``: id, prompt and the
    caller's other settings, stored as given."""
    return {
        **fields,
        "status": "queued",
        "attempt": 0,
        "max_attempts": max_attempts,
        "attempt_budget": max_attempts,
        "turns": 0,
        "cost_usd": 0.0,
        "created_at": now,
        "updated_at": now,
        "available_at": now,
    }


def claim(*, attempt: int, token: str, worker: str, now: float, lease_seconds: float) -> Move:
    """A claimable task is leased: ``dispatched``, its attempt counted now."""
    return Move(
        {
            "status": "dispatched",
            "attempt": attempt + 1,
            "lease_token": token,
            "lease_owner": worker,
            "lease_expires_at": now + lease_seconds,
            "run_id": None,
            "updated_at": now,
        }
    )


def heartbeat(*, now: float, lease_seconds: float) -> Move:
    """The lease holder moves its expiry on; the status stays."""
    return Move({"lease_expires_at": now + lease_seconds, "updated_at": now})


def start_run(*, run_id: str, now: float) -> Move:
    """A ``dispatched`` task's run started its session: ``running``."""
    return Move(
        {"status": "running", "run_id": run_id, "updated_at": now},
        attempt={"run_id": run_id, "run_started_at": now},
    )


def _closed_attempt(outcome: str, turns: int, cost_usd: float, stop_reason: str | None, now: float) -> dict:
    return {
        "outcome": outcome,
        "turns": turns,
        "cost_usd": cost_usd,
        "stop_reason": stop_reason,
        "ended_at": now,
    }


def complete(
    *,
    attempt: int,
    max_attempts: int,
    outcome: str,
    turns: int,
    cost_usd: float,
    summary: str | None,
    handoff: dict | None,
    stop_reason: str | None,
    now: float,
    continue_delay_s: float,
) -> Move:
    """``done``; or ``incomplete`` with a handoff, claimable again after ``continue_delay_s``, or a dead letter
    (keeping its handoff for a person) when that was the last attempt."""
    check_outcome(outcome, COMPLETE_OUTCOMES)
    exhausted = attempt >= max_attempts
    if outcome == "done":
        status, due = "done", now
    else:
        status, due = ("dead" if exhausted else "incomplete"), now + continue_delay_s
    changes = {
        "status": status,
        "turns": turns,
        "summary": summary,
        "handoff": encode_handoff(handoff),
        "last_error": TURN_CAP_EXHAUSTED if outcome == "incomplete" and exhausted else None,
        **_RELEASED,
        "available_at": due,
        "updated_at": now,
    }
    return Move(changes, cost_usd, _closed_attempt(outcome, turns, cost_usd, stop_reason, now))


def fail(
    *,
    attempt: int,
    max_attempts: int,
    outcome: str,
    error: str,
    retryable: bool,
    charge_attempt: bool,
    turns: int,
    cost_usd: float,
    handoff: dict | None,
    now: float,
    backoff_base_s: float,
) -> Move:
    """Retryable: back to ``queued``, or ``dead`` when that was the last attempt. Not retryable: ``failed``,
    except a refusal or a cost ceiling reached (``DEAD_LETTER_OUTCOMES``), a dead letter for a person to read.
    Only a ``transient`` failure (the API overloaded or unreachable) waits out a back-off; a lost attempt is
    due again at once. ``charge_attempt=False`` (a run that never started) gives the attempt back: queued,
    with one more in the budget. ``handoff`` replaces the task's; None keeps the one it has."""
    check_outcome(outcome, FAIL_OUTCOMES)
    if not charge_attempt:
        status = "queued"
    elif retryable:
        status = "dead" if attempt >= max_attempts else "queued"
    else:
        status = "dead" if outcome in DEAD_LETTER_OUTCOMES else "failed"
    changes = {
        "status": status,
        "max_attempts": max_attempts if charge_attempt else max_attempts + 1,
        "last_error": error,
        "turns": turns,
        **_RELEASED,
        "available_at": now + retry_backoff(attempt, backoff_base_s) if outcome == "transient" else now,
        "updated_at": now,
    }
    if handoff:
        changes["handoff"] = encode_handoff(handoff)
    return Move(changes, cost_usd, _closed_attempt(outcome, turns, cost_usd, None, now))


def expire(*, status: str, attempt: int, max_attempts: int, now: float) -> Move:
    """A lease ran out (a crashed or paused worker): back to the queue, or a dead letter when that was the
    last attempt; the attempt is recorded lost. A claim that never reached its session (still ``dispatched``)
    is not charged: its budget grows by one."""
    never_started = status == "dispatched"
    budget = max_attempts + (1 if never_started else 0)
    changes = {
        "status": "dead" if attempt >= budget else "queued",
        "max_attempts": budget,
        "last_error": CLAIM_NEVER_STARTED if never_started else LEASE_LOST,
        **_RELEASED,
        "available_at": now,
        "updated_at": now,
    }
    return Move(changes, attempt={"outcome": LOST, "ended_at": now})


def requeue(
    *, status: str, attempt: int, max_attempts: int, attempt_budget: int, reset_attempts: bool, now: float
) -> Move | None:
    """A person puts a task back in the queue, due now. One whose attempts ran out gets one more, or its whole
    budget again (``attempt_budget``, granted at enqueue) with ``reset_attempts``. A task holding a lease is
    left alone (None): it is running."""
    if status in LEASED:
        return None
    budget = attempt + attempt_budget if reset_attempts else max(max_attempts, attempt + 1)
    return Move({"status": "queued", "max_attempts": budget, "available_at": now, "updated_at": now})


def _withdraw(
    status: str, max_attempts: int, new_status: str, reason: str, allowed: tuple[str, ...], now: float
) -> Move | None:
    if status not in allowed:
        return None
    changes = {"status": new_status, "last_error": reason, **_RELEASED, "updated_at": now}
    if (
        status == "dispatched"
    ):  # a claim withdrawn before its run started is not charged: the budget grows by one
        changes["max_attempts"] = max_attempts + 1
    # A leased task's attempt ends here: its session is fenced out, or its run never starts.
    return Move(changes, attempt={"outcome": LOST, "ended_at": now} if status in LEASED else {})


def cancel(*, status: str, max_attempts: int, now: float) -> Move | None:
    """An operator's cancel: from ``WITHDRAWABLE`` (None otherwise); a running session is fenced out."""
    return _withdraw(status, max_attempts, "cancelled", CANCEL_REASON, WITHDRAWABLE, now)


def cancel_unstarted(*, status: str, max_attempts: int, now: float) -> Move | None:
    """Cancel only while no session has started: from ``CANCELLABLE_UNSTARTED`` (None otherwise)."""
    return _withdraw(status, max_attempts, "cancelled", CANCEL_REASON, CANCELLABLE_UNSTARTED, now)


def supersede(*, status: str, max_attempts: int, by: str, now: float) -> Move | None:
    """A newer task replaced this one: from ``SUPERSEDABLE`` (None otherwise); a started session finishes."""
    return _withdraw(status, max_attempts, "superseded", superseded_reason(by), SUPERSEDABLE, now)
