"""The task queue hands each task to one worker at a time, fences out workers that lost their lease, counts
attempts at claim time and keeps every task (done, re-queued or dead-lettered), on every backend."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import pytest

from jada_pipelines.agents.queue import STATUSES, QueueError, open_queue
from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue
from jada_pipelines.settings import ConfigError

LEASE = 60.0


def test_a_duplicate_enqueue_is_a_no_op_that_says_so(task_queue_backend):
    first = task_queue_backend.enqueue("t1", "do the thing", max_turns=12, priority=2)
    second = task_queue_backend.enqueue("t1", "a different prompt")
    assert first.created and not second.created
    assert second.task.prompt == "do the thing"
    assert second.task.max_turns == 12
    assert [t.id for t in task_queue_backend.list()] == ["t1"]


def test_bad_input_is_refused_with_a_reason(task_queue_backend):
    with pytest.raises(QueueError, match="empty prompt"):
        task_queue_backend.enqueue("t1", "  ")
    # Ids become a directory, a transcript path and part of the run key: nothing that could name another path.
    for bad_id in ("a:b", "../../x", "/etc/x", "a/b", "a b", "-x", ".hidden", "x" * 129, "é"):
        with pytest.raises(QueueError, match=r"not allowed: use 1 to 128 letters, digits"):
            task_queue_backend.enqueue(bad_id, "x")
    with pytest.raises(QueueError, match="max_turns"):
        task_queue_backend.enqueue("t2", "x", max_turns=0)
    assert task_queue_backend.list() == []


def test_a_claim_counts_the_attempt_and_takes_the_highest_priority_first(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("low", "x")
    queue_clock.advance(1)
    task_queue_backend.enqueue("high", "x", priority=5)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert (lease.task_id, lease.attempt) == ("high", 1)
    task = task_queue_backend.get("high")
    assert task.status == "dispatched" and task.attempt == 1
    assert task.lease_expires_at == pytest.approx(queue_clock.now + LEASE)


def test_claims_stop_at_the_cap_of_live_sessions(task_queue_backend):
    for i in range(7):
        task_queue_backend.enqueue(f"t{i}", "x")
    leases = [task_queue_backend.claim(worker="w", lease_seconds=LEASE, max_live=5) for _ in range(7)]
    assert sum(lease is not None for lease in leases) == 5
    assert task_queue_backend.stats().live_sessions == 5
    task_queue_backend.complete(leases[0], outcome="done", turns=1, cost_usd=0.0, summary="ok")
    assert task_queue_backend.claim(worker="w", lease_seconds=LEASE, max_live=5) is not None


def test_an_empty_queue_claims_nothing(task_queue_backend):
    assert task_queue_backend.claim(worker="w", lease_seconds=LEASE) is None


def test_an_expired_lease_is_reclaimed_with_the_next_attempt(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x")
    first = task_queue_backend.claim(worker="a", lease_seconds=LEASE)
    queue_clock.advance(LEASE + 1)
    second = task_queue_backend.claim(worker="b", lease_seconds=LEASE)
    assert (second.task_id, second.attempt) == ("t1", 2)
    assert second.token != first.token
    outcomes = [(r.attempt, r.outcome) for r in task_queue_backend.attempts(since=0)]
    assert outcomes == [(1, "lost"), (2, "")]


def test_a_zombie_past_its_lease_can_neither_heartbeat_nor_complete(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x")
    zombie = task_queue_backend.claim(worker="a", lease_seconds=LEASE)
    assert task_queue_backend.heartbeat(zombie, lease_seconds=LEASE)
    queue_clock.advance(LEASE + 1)  # the worker was paused (GC, laptop lid) past its lease
    replacement = task_queue_backend.claim(worker="b", lease_seconds=LEASE)
    assert not task_queue_backend.heartbeat(zombie, lease_seconds=LEASE)
    assert not task_queue_backend.mark_running(zombie, run_id="old")
    assert not task_queue_backend.complete(zombie, outcome="done", turns=3, cost_usd=1.0, summary="stale")
    assert task_queue_backend.fail(zombie, error="stale", retryable=True) is None
    assert task_queue_backend.complete(replacement, outcome="done", turns=2, cost_usd=0.5, summary="fresh")
    task = task_queue_backend.get("t1")
    assert (task.status, task.summary, task.turns) == ("done", "fresh", 2)


def test_a_lapsed_lease_is_fenced_even_before_anyone_reclaims_it(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="a", lease_seconds=LEASE)
    queue_clock.advance(LEASE + 1)
    assert not task_queue_backend.heartbeat(lease, lease_seconds=LEASE)


def test_retryable_failures_back_off_and_end_in_dead_letters_after_max_attempts(
    task_queue_backend, queue_clock
):
    task_queue_backend.enqueue("t1", "x", max_attempts=3)
    statuses = []
    for _ in range(3):
        queue_clock.advance(10_000)  # past any back-off
        lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
        statuses.append(
            task_queue_backend.fail(lease, error="HTTP 529 overloaded", retryable=True, outcome="transient")
        )
        if statuses[-1] == "queued":
            assert task_queue_backend.claim(worker="w", lease_seconds=LEASE) is None  # still backing off
    assert statuses == ["queued", "queued", "dead"]
    task = task_queue_backend.get("t1")
    assert (task.attempt, task.last_error) == (3, "HTTP 529 overloaded")
    assert task_queue_backend.stats().dead_letters == 1
    queue_clock.advance(10_000)
    assert task_queue_backend.claim(worker="w", lease_seconds=LEASE) is None


def test_only_a_transient_failure_waits_out_a_back_off_and_a_lost_attempt_is_due_again_at_once(
    task_queue_backend,
):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    error = "run ended FAILURE before the session recorded an outcome"
    assert task_queue_backend.fail(lease, error=error, retryable=True, outcome="lost") == "queued"
    again = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert (again.task_id, again.attempt) == ("t1", 2)


def test_a_requeued_dead_letter_runs_again_without_reusing_an_attempt_number(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x", max_attempts=1)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.fail(lease, error="boom", retryable=True) == "dead"
    assert task_queue_backend.requeue("t1", reset_attempts=True)
    again = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert again.attempt == 2
    assert task_queue_backend.get("t1").max_attempts == 2


def test_a_permanent_error_fails_the_task_and_a_refusal_is_a_dead_letter(task_queue_backend):
    task_queue_backend.enqueue("bad-key", "x")
    task_queue_backend.enqueue("refused", "x")
    first = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    second = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.fail(first, error="401 invalid x-api-key", retryable=False) == "failed"
    assert (
        task_queue_backend.fail(second, error="refused: cyber", retryable=False, outcome="refused") == "dead"
    )


def test_a_failed_attempt_replaces_the_handoff_only_when_it_leaves_one(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x", max_attempts=5)
    first = {"files_touched": ["a.py"], "last_text": "half way"}
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    task_queue_backend.fail(lease, error="overloaded", retryable=True, outcome="transient", handoff=first)
    assert task_queue_backend.get("t1").handoff == first
    queue_clock.advance(4000)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert lease.task.handoff == first
    task_queue_backend.fail(lease, error="no reply at all", retryable=True, outcome="transient")
    assert task_queue_backend.get("t1").handoff == first


def test_an_incomplete_attempt_keeps_its_handoff_and_is_claimable_again(task_queue_backend):
    task_queue_backend.enqueue("t1", "x", max_attempts=2)
    handoff = {
        "done": ["read the code"],
        "next_steps": ["fix it"],
        "failed_approaches": [],
        "files_touched": [],
    }
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.complete(
        lease,
        outcome="incomplete",
        turns=30,
        cost_usd=0.25,
        summary=None,
        handoff=handoff,
        stop_reason="tool_use",
    )
    task = task_queue_backend.get("t1")
    assert (task.status, task.turns, task.handoff) == ("incomplete", 30, handoff)
    second = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert second.attempt == 2 and second.task.handoff == handoff
    task_queue_backend.complete(
        second, outcome="incomplete", turns=30, cost_usd=0.25, summary=None, handoff=handoff
    )
    task = task_queue_backend.get("t1")
    assert (task.status, task.handoff, task.cost_usd) == ("dead", handoff, pytest.approx(0.5))


def test_an_incomplete_task_waits_out_the_continue_delay_before_its_next_attempt(
    task_queue_backend, queue_clock
):
    task_queue_backend.continue_delay_s = 90  # what open_queue reads from JADA_AGENT_CONTINUE_DELAY_SECONDS
    task_queue_backend.enqueue("t1", "x", max_attempts=3)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    task_queue_backend.complete(lease, outcome="incomplete", turns=30, cost_usd=0.0, summary=None)
    queue_clock.advance(89)
    assert task_queue_backend.claim(worker="w", lease_seconds=LEASE) is None
    assert task_queue_backend.get("t1").status == "incomplete"
    queue_clock.advance(2)
    second = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert (second.task_id, second.attempt) == ("t1", 2)
    # Only a continuation waits: a lost attempt is due again at once.
    task_queue_backend.fail(second, error="run lost", retryable=True, outcome="lost")
    third = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert (third.task_id, third.attempt) == ("t1", 3)


def test_the_continue_delay_comes_from_the_environment_and_a_negative_one_is_refused(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    assert open_queue(url).continue_delay_s == 0
    monkeypatch.setenv("JADA_AGENT_CONTINUE_DELAY_SECONDS", "90")
    assert open_queue(url).continue_delay_s == 90
    monkeypatch.setenv("JADA_AGENT_CONTINUE_DELAY_SECONDS", "-1")
    with pytest.raises(ConfigError, match="JADA_AGENT_CONTINUE_DELAY_SECONDS=-1 must be 0 or more"):
        open_queue(url)


def test_cancel_fences_out_the_running_session(task_queue_backend):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.mark_running(lease, run_id="run-1")
    assert task_queue_backend.cancel("t1")
    assert not task_queue_backend.heartbeat(lease, lease_seconds=LEASE)
    assert task_queue_backend.get("t1").status == "cancelled"
    assert not task_queue_backend.cancel("t1")
    assert not task_queue_backend.cancel("no-such-task")


def test_a_conditional_cancel_takes_a_task_only_before_its_session_starts(task_queue_backend):
    queue = task_queue_backend
    for task_id in ("waiting", "claimed", "started"):
        queue.enqueue(task_id, "x")
    assert queue.cancel_unstarted("waiting")
    claimed = queue.claim(worker="w", lease_seconds=LEASE)
    started = queue.claim(worker="w", lease_seconds=LEASE)
    assert (claimed.task_id, started.task_id) == ("claimed", "started")
    assert queue.mark_running(started, run_id="run-1")
    # Claimed, its run not started: cancelled, and that run can no longer start.
    assert queue.cancel_unstarted("claimed")
    assert not queue.mark_running(claimed, run_id="run-2")
    # A session runs: the conditional cancel leaves it alone, lease and all.
    assert not queue.cancel_unstarted("started")
    assert queue.heartbeat(started, lease_seconds=LEASE)
    assert [queue.get(t).status for t in ("waiting", "claimed", "started")] == [
        "cancelled",
        "cancelled",
        "running",
    ]
    assert not queue.cancel_unstarted("waiting") and not queue.cancel_unstarted("no-such-task")


def test_a_superseded_task_says_what_replaced_it(task_queue_backend):
    task_queue_backend.enqueue("old", "x", source="port_sheet:P1")
    task_queue_backend.enqueue("new", "y", source="port_sheet:P1")
    task_queue_backend.enqueue("other", "z", source="cli")
    assert task_queue_backend.supersede("old", by="new")
    assert task_queue_backend.get("old").last_error == "superseded by task new"
    assert sorted(t.id for t in task_queue_backend.list(source_prefix="port_sheet:")) == ["new", "old"]
    assert [t.id for t in task_queue_backend.list(status="superseded")] == ["old"]


def test_a_running_task_cannot_be_requeued_under_its_session(task_queue_backend):
    task_queue_backend.enqueue("t1", "x")
    task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert not task_queue_backend.requeue("t1")


def test_stats_report_depth_oldest_age_dead_letters_and_live_sessions(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("a", "x")
    queue_clock.advance(100)
    task_queue_backend.enqueue("b", "x")
    task_queue_backend.enqueue("c", "x")
    task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    stats = task_queue_backend.stats(now=queue_clock.now + 20)
    assert set(stats.depth_by_status) == set(STATUSES)
    assert (stats.depth_by_status["queued"], stats.depth_by_status["dispatched"]) == (2, 1)
    assert stats.oldest_queued_age_s == pytest.approx(20)  # "a" was claimed; "b" is the oldest left
    assert (stats.dead_letters, stats.live_sessions, stats.running_sessions) == (0, 1, 0)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.mark_running(lease, run_id="r1")
    stats = task_queue_backend.stats(now=queue_clock.now + 20)
    assert (stats.live_sessions, stats.running_sessions) == (2, 1)


def test_attempt_history_records_run_outcome_turns_and_cost(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    task_queue_backend.mark_running(lease, run_id="run-1")
    queue_clock.advance(5)
    task_queue_backend.complete(
        lease, outcome="done", turns=4, cost_usd=0.01, summary="ok", stop_reason="end_turn"
    )
    (record,) = task_queue_backend.attempts(since=0)
    assert (record.run_id, record.outcome, record.turns, record.stop_reason) == (
        "run-1",
        "done",
        4,
        "end_turn",
    )
    assert record.ended_at - record.started_at == pytest.approx(5)
    assert task_queue_backend.attempts(since=queue_clock.now + 1) == []


# --- SQLite only -------------------------------------------------------------------------------------------
# The claim race runs on SQLite alone: moto's DynamoDB conditional writes are not atomic under concurrent
# threads (several racers can win one conditional update), so a race there would test moto, not our code.


def _claim_until_empty(path: str, worker: str, results) -> None:
    queue = SQLiteTaskQueue(path)
    claimed = []
    while (lease := queue.claim(worker=worker, lease_seconds=LEASE, max_live=1000)) is not None:
        claimed.append((lease.task_id, lease.attempt))
    results.put(claimed)


def test_processes_racing_to_claim_never_claim_a_task_twice(tmp_path):
    path = str(tmp_path / "tasks.db")
    queue = SQLiteTaskQueue(path)
    for i in range(40):
        queue.enqueue(f"t{i:02}", "x")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [ctx.Process(target=_claim_until_empty, args=(path, f"w{n}", results)) for n in range(4)]
    for worker in workers:
        worker.start()
    claims = [claim for _ in workers for claim in results.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(claims) == [(f"t{i:02}", 1) for i in range(40)]


def _crash_inside_claim(path: str) -> None:
    queue = SQLiteTaskQueue(path)
    conn = queue._connect()
    conn.execute("BEGIN IMMEDIATE")
    assert (
        queue._claim_in(conn, worker="doomed", lease_seconds=LEASE, max_live=5, now=queue._clock())
        is not None
    )
    os._exit(1)  # the process dies after the claim's UPDATE, before COMMIT


def test_a_crash_between_claim_and_commit_loses_nothing(tmp_path):
    path = str(tmp_path / "tasks.db")
    queue = SQLiteTaskQueue(path)
    queue.enqueue("t1", "x")
    crasher = multiprocessing.get_context("fork").Process(target=_crash_inside_claim, args=(path,))
    crasher.start()
    crasher.join(timeout=60)
    assert crasher.exitcode == 1
    task = queue.get("t1")
    assert (task.status, task.attempt) == ("queued", 0)
    assert queue.attempts(since=0) == []
    assert queue.claim(worker="next", lease_seconds=LEASE).attempt == 1


def test_a_worker_that_dies_after_claiming_gets_its_task_back_via_lease_expiry(tmp_path, queue_clock):
    queue = SQLiteTaskQueue(tmp_path / "tasks.db", clock=queue_clock)
    queue.enqueue("t1", "x")
    queue.claim(worker="dies", lease_seconds=LEASE)  # and is never heard from again
    queue_clock.advance(LEASE + 1)
    assert queue.stats().live_sessions == 0
    assert queue.claim(worker="next", lease_seconds=LEASE).attempt == 2


def test_the_database_is_in_wal_mode_and_survives_reopening(tmp_path):
    SQLiteTaskQueue(tmp_path / "tasks.db").enqueue("t1", "x")
    conn = sqlite3.connect(tmp_path / "tasks.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert SQLiteTaskQueue(tmp_path / "tasks.db").get("t1").prompt == "x"


def test_open_queue_defaults_to_sqlite_in_the_data_dir_and_rejects_unknown_urls(monkeypatch, tmp_path):
    queue = open_queue()
    assert queue.path == tmp_path / "jada_data" / "tasks.db"
    monkeypatch.setenv("JADA_TASK_QUEUE_URL", f"sqlite:///{tmp_path}/other.db")
    assert open_queue().path == tmp_path / "other.db"
    with pytest.raises(ConfigError, match="JADA_TASK_QUEUE_URL"):
        open_queue("redis://localhost")


def test_a_task_keeps_its_own_backend_and_cost_ceiling_and_bad_ones_are_refused(task_queue_backend):
    task = task_queue_backend.enqueue("t1", "x", backend="claude-code", max_cost_usd=2.5).task
    assert (task.backend, task.max_cost_usd) == ("claude-code", 2.5)
    assert task_queue_backend.get("t1").max_cost_usd == 2.5
    plain = task_queue_backend.enqueue("t2", "x").task
    assert (plain.backend, plain.max_cost_usd) == (None, None)
    with pytest.raises(QueueError, match=r"backend='codex'.*messages, claude-code"):
        task_queue_backend.enqueue("t3", "x", backend="codex")
    with pytest.raises(QueueError, match="max_cost_usd=0"):
        task_queue_backend.enqueue("t4", "x", max_cost_usd=0)


def test_an_sqlite_file_from_before_backend_and_max_cost_gains_them_on_open_and_keeps_its_tasks(tmp_path):
    from jada_pipelines.agents.queue.sqlite import SCHEMA

    path = tmp_path / "old.db"
    old_schema = SCHEMA.replace(",\n    backend TEXT,\n    max_cost_usd REAL", "")
    assert old_schema != SCHEMA
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute(
        "INSERT INTO tasks (id, prompt, status, max_attempts, attempt_budget, created_at, updated_at, available_at)"
        " VALUES ('old', 'from before', 'queued', 3, 3, 1, 1, 1)"
    )
    conn.commit()
    conn.close()
    queue = SQLiteTaskQueue(path)
    task = queue.get("old")
    assert (task.prompt, task.backend, task.max_cost_usd) == ("from before", None, None)
    queue.enqueue("new", "x", backend="messages", max_cost_usd=1.0)
    assert queue.get("new").backend == "messages"
    SQLiteTaskQueue(path)  # opening again is a no-op
    assert queue.claim(worker="w", lease_seconds=LEASE).task_id == "old"


def test_over_budget_is_a_dead_letter_whatever_attempts_are_left(task_queue_backend):
    task_queue_backend.enqueue("t1", "x", max_attempts=5)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    status = task_queue_backend.fail(
        lease, error="the task reached its cost ceiling", retryable=False, cost_usd=0.7, outcome="over_budget"
    )
    task = task_queue_backend.get("t1")
    assert (status, task.status, task.cost_usd) == ("dead", "dead", pytest.approx(0.7))
    assert task.last_error == "the task reached its cost ceiling"
    (record,) = task_queue_backend.attempts(since=0)
    assert record.outcome == "over_budget"


def test_a_supersede_leaves_a_session_that_started_to_finish(task_queue_backend):
    task_queue_backend.enqueue("old", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.mark_running(lease, run_id="run-1")
    assert not task_queue_backend.supersede("old", by="new")
    assert task_queue_backend.heartbeat(lease, lease_seconds=LEASE)
    assert task_queue_backend.get("old").status == "running"
