"""A run worker keeps its lease alive while the session runs, stops the session the moment the lease is lost,
and records each outcome in the queue under its lease."""

from __future__ import annotations

import threading

import pytest

from jada_pipelines.agents.attempt import LeaseKeeper, LeaseLost, execute_attempt, record_outcome
from jada_pipelines.agents.prices import Usage
from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue
from jada_pipelines.agents.session import SessionResult, SessionSpec


@pytest.fixture
def queue(tmp_path, queue_clock):
    queue = SQLiteTaskQueue(tmp_path / "tasks.db", clock=queue_clock)
    queue.enqueue("t1", "x", max_attempts=2)
    return queue


def result(outcome, **extra) -> SessionResult:
    return SessionResult(
        outcome=outcome,
        stop_reason=None,
        turns=3,
        usage=Usage(),
        cost_usd=0.02,
        duration_s=1.0,
        api_retries=0,
        request_ids=[],
        transcript_path=None,
        **extra,
    )


def spec(tmp_path) -> SessionSpec:
    return SessionSpec("t1", 1, "x", tmp_path / "work", max_turns=5, model="claude-sonnet-5-5")


def test_a_heartbeat_that_finds_the_lease_gone_stops_the_session(queue, queue_clock, tmp_path):
    lease = queue.claim(worker="a", lease_seconds=10)
    seen_stop = threading.Event()

    def session(spec, stop):
        queue_clock.advance(11)  # the worker stalls past its lease…
        queue.claim(worker="b", lease_seconds=10)  # …and another worker takes the task over
        if stop.wait(5):
            seen_stop.set()
        return result("lost")

    outcome = execute_attempt(
        queue,
        lease,
        spec(tmp_path),
        run_id="r1",
        run_session=session,
        lease_seconds=10,
        heartbeat_seconds=0.01,
    )
    assert seen_stop.is_set()
    assert outcome.task_status is None
    assert queue.get("t1").attempt == 2  # the replacement's attempt is untouched


def test_repeated_heartbeat_errors_also_stop_the_session(queue):
    lease = queue.claim(worker="a", lease_seconds=60)

    class BrokenQueue:
        def heartbeat(self, lease, *, lease_seconds):
            raise OSError("disk I/O error")

    errors = []
    with LeaseKeeper(BrokenQueue(), lease, every_seconds=0.01, on_error=errors.append) as keeper:
        assert keeper.lost.wait(5)
    assert len(errors) == 2


def test_a_run_that_starts_after_its_lease_was_taken_raises_lease_lost(queue, tmp_path):
    lease = queue.claim(worker="a", lease_seconds=60)
    queue.cancel("t1")
    with pytest.raises(LeaseLost, match="no longer this run's"):
        execute_attempt(queue, lease, spec(tmp_path), run_id="r1", run_session=lambda s, e: result("done"))


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("done", "done"),
        ("incomplete", "incomplete"),
        ("failed", "failed"),
        ("transient", "queued"),
        ("refused", "dead"),
    ],
)
def test_each_outcome_leaves_the_task_in_its_status(queue, outcome, status):
    lease = queue.claim(worker="a", lease_seconds=60)
    queue.mark_running(lease, run_id="r1")
    assert record_outcome(queue, lease, result(outcome, error="why")) == status
    task = queue.get("t1")
    assert (task.status, task.turns, task.cost_usd) == (status, 3, pytest.approx(0.02))
    (attempt,) = queue.attempts(since=0)
    assert (attempt.outcome, attempt.run_id) == (outcome, "r1")
