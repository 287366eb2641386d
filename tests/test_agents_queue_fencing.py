"""On every backend: only a dispatched task starts running, so a second run holding the same lease is
refused; the run worker finds its lease by task id and attempt (the token is never in run config); a claim
whose run never started is not charged an attempt; every enqueue draws a fresh run-key nonce; and each
attempt records when it was queued, claimed, started and first called the model."""

from __future__ import annotations

import sqlite3

from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue

LEASE = 60.0


def test_a_second_run_holding_the_same_lease_is_refused(task_queue_backend):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert task_queue_backend.mark_running(lease, run_id="run-1")
    assert not task_queue_backend.mark_running(lease, run_id="run-2")
    task = task_queue_backend.get("t1")
    assert (task.status, task.run_id) == ("running", "run-1")
    task_queue_backend.complete(lease, outcome="done", turns=1, cost_usd=0.0, summary="ok")
    assert not task_queue_backend.mark_running(lease, run_id="run-3")


def test_the_worker_finds_the_lease_of_its_own_attempt_only(task_queue_backend):
    task_queue_backend.enqueue("t1", "x")
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    found = task_queue_backend.lease_for("t1", 1)
    assert (found.token, found.attempt) == (lease.token, 1)
    assert task_queue_backend.lease_for("t1", 2) is None
    assert task_queue_backend.lease_for("missing", 1) is None
    task_queue_backend.cancel("t1")
    assert task_queue_backend.lease_for("t1", 1) is None


def test_a_claim_that_expires_before_its_run_starts_is_not_charged(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x", max_attempts=1)
    task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    queue_clock.advance(LEASE + 1)
    again = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    assert again is not None and again.attempt == 2
    assert task_queue_backend.get("t1").max_attempts == 2
    # A session that started and then lost its lease is charged as before: attempts ran out.
    assert task_queue_backend.mark_running(again, run_id="run-2")
    queue_clock.advance(LEASE + 1)
    assert task_queue_backend.claim(worker="w", lease_seconds=LEASE) is None
    assert task_queue_backend.get("t1").status == "dead"


def test_failing_an_unstarted_run_uncharged_queues_it_with_one_more_attempt(task_queue_backend):
    task_queue_backend.enqueue("t1", "x", max_attempts=1)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    status = task_queue_backend.fail(
        lease, error="run never started", retryable=True, outcome="lost", charge_attempt=False
    )
    assert status == "queued"
    task = task_queue_backend.get("t1")
    assert (task.status, task.attempt, task.max_attempts) == ("queued", 1, 2)


def test_each_enqueue_draws_a_new_nonce(task_queue_backend):
    first = task_queue_backend.enqueue("t1", "x").task
    assert first.nonce and task_queue_backend.enqueue("t1", "x").task.nonce == first.nonce
    task_queue_backend.enqueue("t2", "x")
    assert task_queue_backend.get("t2").nonce != first.nonce


def test_an_attempt_records_its_dispatch_times(task_queue_backend, queue_clock):
    task_queue_backend.enqueue("t1", "x")
    enqueued = queue_clock.now
    queue_clock.advance(3)
    lease = task_queue_backend.claim(worker="w", lease_seconds=LEASE)
    queue_clock.advance(4)
    task_queue_backend.mark_running(lease, run_id="run-1")
    task_queue_backend.record_first_call("t1", 1, at=queue_clock.now + 2)
    (record,) = task_queue_backend.attempts(since=0)
    assert record.queued_at == enqueued and record.started_at == enqueued + 3
    assert (record.run_started_at, record.first_call_at) == (enqueued + 7, enqueued + 9)


def test_a_queue_file_from_before_nonces_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE tasks (id TEXT PRIMARY KEY, prompt TEXT NOT NULL, status TEXT NOT NULL,"
        " attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, attempt_budget INTEGER NOT NULL,"
        " max_turns INTEGER, priority INTEGER NOT NULL DEFAULT 0, workdir TEXT, handoff TEXT, last_error TEXT,"
        " turns INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, summary TEXT, source TEXT,"
        " run_id TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, available_at REAL NOT NULL,"
        " lease_token TEXT, lease_owner TEXT, lease_expires_at REAL);"
        "CREATE TABLE attempts (task_id TEXT NOT NULL, attempt INTEGER NOT NULL, run_id TEXT,"
        " outcome TEXT NOT NULL DEFAULT '', turns INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,"
        " stop_reason TEXT, started_at REAL NOT NULL, ended_at REAL, PRIMARY KEY (task_id, attempt));"
        "INSERT INTO tasks (id, prompt, status, max_attempts, attempt_budget, created_at, updated_at,"
        " available_at) VALUES ('old', 'x', 'queued', 3, 3, 1, 1, 1);"
    )
    conn.commit()
    conn.close()
    queue = SQLiteTaskQueue(path)
    assert queue.get("old").nonce
    lease = queue.claim(worker="w", lease_seconds=LEASE)
    assert queue.mark_running(lease, run_id="r")
    assert queue.attempts(since=0)[0].run_started_at is not None
