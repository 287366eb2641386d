"""What the two queue stores share: each call of the ``TaskQueue`` protocol picks its transition here, once.

A store (``sqlite.py``, ``dynamodb.py``) subclasses ``QueueStore`` and supplies the primitives that make a
move atomic on its database; the calls below only say which move (``transitions.py``) each one makes:

- ``_insert(fields)``: write a new task unless its id exists;
- ``_apply_leased(lease, make_move, statuses)``: write ``make_move(task, now)`` only while ``lease`` holds the
  task in one of ``statuses`` (the fence); the move written, or None when the lease was lost;
- ``_operate(task_id, make_move, reap=)``: an operator's move, judged on the task as it stands
  (``make_move`` answers None when the move is not allowed from that status); ``reap`` first returns
  expired leases to the queue;
- ``_list(status, source_prefix, limit)``: read tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jada_pipelines.agents.queue import transitions
from jada_pipelines.agents.queue.protocol import EnqueueResult, Lease, Task, new_nonce, validate_enqueue
from jada_pipelines.agents.queue.transitions import (
    COMPLETE_OUTCOMES,
    DEFAULT_MAX_ATTEMPTS,
    FAIL_OUTCOMES,
    LEASED,
    STARTABLE,
    Move,
)

# Reads what a move needs of the task (status, attempt, max_attempts…) and the time; returns the move.
MakeMove = Callable[[Mapping[str, Any], float], Move]
# The same for an operator's move, which answers None when the task's status does not allow it.
JudgeMove = Callable[[Mapping[str, Any], float], Move | None]


class QueueStore:
    def __init__(
        self, *, clock: Callable[[], float], retry_backoff_s: float, continue_delay_s: float
    ) -> None:
        self._clock = clock
        self._retry_backoff_s = retry_backoff_s
        self.continue_delay_s = continue_delay_s

    # -- what a store supplies --------------------------------------------------------------------------------

    def _insert(self, fields: dict[str, Any]) -> EnqueueResult:
        raise NotImplementedError

    def _apply_leased(
        self, lease: Lease, make_move: MakeMove, statuses: tuple[str, ...] = LEASED
    ) -> Move | None:
        raise NotImplementedError

    def _operate(self, task_id: str, make_move: JudgeMove, *, reap: bool = False) -> bool:
        raise NotImplementedError

    def _list(self, status: str | None, source_prefix: str | None, limit: int) -> list[Task]:
        raise NotImplementedError

    # -- producer side ----------------------------------------------------------------------------------------

    def enqueue(
        self,
        task_id: str,
        prompt: str,
        *,
        max_turns: int | None = None,
        workdir: str | None = None,
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        source: str | None = None,
        backend: str | None = None,
        max_cost_usd: float | None = None,
    ) -> EnqueueResult:
        workdir = validate_enqueue(
            task_id, prompt, max_turns, max_attempts, workdir, backend=backend, max_cost_usd=max_cost_usd
        )
        return self._insert(
            transitions.new_task(
                now=self._clock(),
                max_attempts=max_attempts,
                id=task_id,
                prompt=prompt,
                max_turns=max_turns,
                priority=priority,
                workdir=workdir,
                source=source,
                nonce=new_nonce(),
                backend=backend,
                max_cost_usd=max_cost_usd,
            )
        )

    # -- worker side ------------------------------------------------------------------------------------------

    def heartbeat(self, lease: Lease, *, lease_seconds: float) -> bool:
        move = self._apply_leased(
            lease, lambda task, now: transitions.heartbeat(now=now, lease_seconds=lease_seconds)
        )
        return move is not None

    def mark_running(self, lease: Lease, *, run_id: str) -> bool:
        """Only a ``dispatched`` task starts running (``transitions.STARTABLE``): a second run holding the same
        lease (a re-execution from the UI, a launchpad copy of the config) is refused."""
        move = self._apply_leased(
            lease, lambda task, now: transitions.start_run(run_id=run_id, now=now), STARTABLE
        )
        return move is not None

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
    ) -> bool:
        """``done``, or ``incomplete`` with a handoff: claimable again (after ``continue_delay_s``), or a dead
        letter when attempts ran out (``transitions.complete``)."""
        transitions.check_outcome(outcome, COMPLETE_OUTCOMES)  # a bad call is an error even when fenced out
        move = self._apply_leased(
            lease,
            lambda task, now: transitions.complete(
                attempt=task["attempt"],
                max_attempts=task["max_attempts"],
                outcome=outcome,
                turns=turns,
                cost_usd=cost_usd,
                summary=summary,
                handoff=handoff,
                stop_reason=stop_reason,
                now=now,
                continue_delay_s=self.continue_delay_s,
            ),
        )
        return move is not None

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
        handoff: dict | None = None,
    ) -> str | None:
        """Back to ``queued`` (after a back-off if transient), or ``dead`` or ``failed`` (``transitions.fail``);
        the new status, or None when fenced out."""
        transitions.check_outcome(outcome, FAIL_OUTCOMES)
        move = self._apply_leased(
            lease,
            lambda task, now: transitions.fail(
                attempt=task["attempt"],
                max_attempts=task["max_attempts"],
                outcome=outcome,
                error=error,
                retryable=retryable,
                charge_attempt=charge_attempt,
                turns=turns,
                cost_usd=cost_usd,
                handoff=handoff,
                now=now,
                backoff_base_s=self._retry_backoff_s,
            ),
        )
        return move.status if move is not None else None

    # -- operator side ----------------------------------------------------------------------------------------

    def requeue(self, task_id: str, *, reset_attempts: bool = False) -> bool:
        """Put a task back in the queue now, with one more attempt or its whole budget (``transitions.requeue``).
        The attempt number itself never goes back (it names the run). A task holding a live lease is left
        alone: it is running."""
        return self._operate(
            task_id,
            lambda task, now: transitions.requeue(
                status=task["status"],
                attempt=task["attempt"],
                max_attempts=task["max_attempts"],
                attempt_budget=task["attempt_budget"],
                reset_attempts=reset_attempts,
                now=now,
            ),
            reap=True,
        )

    def cancel(self, task_id: str) -> bool:
        return self._operate(
            task_id,
            lambda task, now: transitions.cancel(
                status=task["status"], max_attempts=task["max_attempts"], now=now
            ),
        )

    def cancel_unstarted(self, task_id: str) -> bool:
        return self._operate(
            task_id,
            lambda task, now: transitions.cancel_unstarted(
                status=task["status"], max_attempts=task["max_attempts"], now=now
            ),
        )

    def supersede(self, task_id: str, *, by: str) -> bool:
        return self._operate(
            task_id,
            lambda task, now: transitions.supersede(
                status=task["status"], max_attempts=task["max_attempts"], by=by, now=now
            ),
        )

    # -- reading ----------------------------------------------------------------------------------------------

    def list(
        self, *, status: str | None = None, source_prefix: str | None = None, limit: int = 100
    ) -> list[Task]:
        transitions.check_status(status)
        return self._list(status, source_prefix, limit)
