"""The embedded queue backend: one SQLite file on local disk, safe across processes on one host.

Why these settings:
- WAL lets the webserver and sensor read while a worker writes; WAL does not work over NFS/EFS, so the file
  must sit on a local disk (use the DynamoDB backend when workers run on several hosts).
- ``synchronous=FULL``: with NORMAL a committed claim or completion can roll back after a power loss.
- Claims run in ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail with
  SQLITE_BUSY without honouring busy_timeout, and the count of live sessions must not change between the
  check and the claim.
- Every write after a claim carries ``lease_token = ?`` in its WHERE clause (the fence).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jada_pipelines.agents.queue import (
    CANCEL_REASON,
    CANCELLABLE_UNSTARTED,
    CLAIMABLE,
    DEAD_LETTER_OUTCOMES,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_S,
    LEASED,
    STATUSES,
    SUPERSEDABLE,
    WITHDRAWABLE,
    AttemptRecord,
    EnqueueResult,
    Lease,
    QueueError,
    QueueStats,
    Task,
    check_outcome,
    new_nonce,
    retry_backoff,
    validate_enqueue,
)

# RETURNING arrived in SQLite 3.35.
MIN_SQLITE = (3, 35, 0)
BUSY_TIMEOUT_MS = 30_000

# A tuple's repr is a valid SQL list of string literals.
_LEASED_SQL = f"status IN {LEASED!r}"
_CLAIMABLE_SQL = f"status IN {CLAIMABLE!r}"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    -- The attempts granted at enqueue; requeue(reset_attempts=True) grants this many again.
    attempt_budget INTEGER NOT NULL,
    max_turns INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    workdir TEXT,
    handoff TEXT,
    last_error TEXT,
    turns INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    summary TEXT,
    source TEXT,
    run_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    available_at REAL NOT NULL,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    nonce TEXT,
    backend TEXT,
    max_cost_usd REAL
);
-- The claim reads this index in its ORDER BY order and stops at the first due task, however long the backlog.
CREATE INDEX IF NOT EXISTS tasks_claimable ON tasks (priority DESC, available_at, created_at) WHERE {_CLAIMABLE_SQL};
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (lease_expires_at) WHERE {_LEASED_SQL};
CREATE INDEX IF NOT EXISTS tasks_source ON tasks (source);
CREATE TABLE IF NOT EXISTS attempts (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    run_id TEXT,
    outcome TEXT NOT NULL DEFAULT '',
    turns INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    stop_reason TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    queued_at REAL,
    run_started_at REAL,
    first_call_at REAL,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at);
"""

_TASK_COLUMNS = (
    "id, prompt, status, attempt, max_attempts, max_turns, priority, workdir, handoff, last_error, turns, "
    "cost_usd, summary, source, run_id, created_at, updated_at, available_at, lease_expires_at, nonce, backend, "
    "max_cost_usd"
)
# Columns added after the first release: a queue file created before them gets them in init().
_ADDED_COLUMNS = {
    "tasks": {"nonce": "TEXT", "backend": "TEXT", "max_cost_usd": "REAL"},
    "attempts": {"queued_at": "REAL", "run_started_at": "REAL", "first_call_at": "REAL"},
}
# A claim that never reached its session (never marked running) is not charged: its budget grows by one.
_UNCHARGED_BUDGET = "max_attempts + CASE WHEN status = 'dispatched' THEN 1 ELSE 0 END"


def _task(row: sqlite3.Row) -> Task:
    values = dict(row)
    values["handoff"] = json.loads(values["handoff"]) if values["handoff"] else None
    return Task(**{name: values[name] for name in Task.__dataclass_fields__})


class SQLiteTaskQueue:
    """The task queue in one SQLite file. Each call opens its own short transaction, so one instance may be
    shared by threads (the heartbeat thread and the session) and several processes may use the same file.

    Example::

        queue = SQLiteTaskQueue("/var/lib/jada/tasks.db")
        queue.enqueue("fix-login", "Fix the login bug in app/login.py")
        lease = queue.claim(worker="sensor", lease_seconds=600)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
        continue_delay_s: float = 0.0,
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise QueueError(
                f"SQLite {sqlite3.sqlite_version} is too old for the task queue (it needs 3.35+ for RETURNING); "
                "use a Python built against a newer SQLite."
            )
        self.path = Path(path)
        self._clock = clock
        self._retry_backoff_s = retry_backoff_s
        self.continue_delay_s = continue_delay_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The queue holds every prompt and lease token: readable by its owner only, created that way.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.init()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so the claim can be BEGIN IMMEDIATE.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def init(self) -> None:
        """Create the schema (idempotent) and switch the file to WAL, which is a persistent setting."""
        with self._reading() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in present:
                        # Two processes may open an old file at once: the loser's ALTER finds the column there.
                        with contextlib.suppress(sqlite3.OperationalError):
                            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            conn.execute("UPDATE tasks SET nonce = lower(hex(randomblob(4))) WHERE nonce IS NULL")

    # -- producer side --------------------------------------------------------------------------------------

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
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO tasks (id, prompt, status, max_attempts, attempt_budget, max_turns, priority, workdir,"
                " source, created_at, updated_at, available_at, nonce, backend, max_cost_usd)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" ON CONFLICT (id) DO NOTHING RETURNING {_TASK_COLUMNS}",
                (
                    task_id,
                    prompt,
                    max_attempts,
                    max_attempts,
                    max_turns,
                    priority,
                    workdir,
                    source,
                    now,
                    now,
                    now,
                    new_nonce(),
                    backend,
                    max_cost_usd,
                ),
            ).fetchone()
            if row is not None:
                return EnqueueResult(task=_task(row), created=True)
            existing = conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return EnqueueResult(task=_task(existing), created=False)

    # -- worker side ----------------------------------------------------------------------------------------

    def claim(self, *, worker: str, lease_seconds: float, max_live: int = 5) -> Lease | None:
        """Lease the most urgent claimable task, unless ``max_live`` sessions already hold leases."""
        now = self._clock()
        with self._transaction() as conn:
            return self._claim_in(
                conn, worker=worker, lease_seconds=lease_seconds, max_live=max_live, now=now
            )

    def _claim_in(
        self, conn: sqlite3.Connection, *, worker: str, lease_seconds: float, max_live: int, now: float
    ) -> Lease | None:
        """The claim's statements, run inside the caller's BEGIN IMMEDIATE (a crash before COMMIT undoes all)."""
        self._reap_expired(conn, now)
        live = conn.execute(f"SELECT count(*) FROM tasks WHERE {_LEASED_SQL}").fetchone()[0]
        if live >= max_live:
            return None
        token = secrets.token_hex(16)
        row = conn.execute(
            "UPDATE tasks SET status = 'dispatched', attempt = attempt + 1, lease_token = ?, lease_owner = ?,"
            " lease_expires_at = ?, run_id = NULL, updated_at = ?"
            f" WHERE id = (SELECT id FROM tasks WHERE {_CLAIMABLE_SQL} AND available_at <= ?"
            "              ORDER BY priority DESC, available_at, created_at LIMIT 1)"
            f" RETURNING {_TASK_COLUMNS}",
            (token, worker, now + lease_seconds, now, now),
        ).fetchone()
        if row is None:
            return None
        task = _task(row)
        conn.execute(
            "INSERT INTO attempts (task_id, attempt, started_at, queued_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (task_id, attempt) DO UPDATE SET started_at = excluded.started_at,"
            " queued_at = excluded.queued_at",
            (task.id, task.attempt, now, task.available_at),
        )
        return Lease(
            task_id=task.id, token=token, attempt=task.attempt, expires_at=now + lease_seconds, task=task
        )

    def _reap_expired(self, conn: sqlite3.Connection, now: float) -> None:
        """Leases that ran out (a crashed or paused worker) go back to the queue, or to dead letters. A claim
        that never reached its session (still ``dispatched``) is not charged the attempt."""
        expired = conn.execute(
            f"UPDATE tasks SET status = CASE WHEN attempt >= {_UNCHARGED_BUDGET} THEN 'dead' ELSE 'queued' END,"
            f" max_attempts = {_UNCHARGED_BUDGET},"
            " last_error = CASE WHEN status = 'dispatched'"
            "  THEN 'the claim expired before its run started (not charged as an attempt)'"
            "  ELSE 'lease expired: the worker stopped heartbeating (crashed, paused or lost)' END,"
            " lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, available_at = ?, updated_at = ?"
            f" WHERE {_LEASED_SQL} AND lease_expires_at < ? RETURNING id, attempt",
            (now, now, now),
        ).fetchall()
        conn.executemany(
            "UPDATE attempts SET outcome = 'lost', ended_at = ? WHERE task_id = ? AND attempt = ? AND outcome = ''",
            [(now, row["id"], row["attempt"]) for row in expired],
        )

    def _fenced_update(
        self, conn: sqlite3.Connection, lease: Lease, assignments: str, params: tuple
    ) -> Task | None:
        """Apply ``assignments`` only while ``lease`` still owns the task; None means the lease was lost."""
        row = conn.execute(
            f"UPDATE tasks SET {assignments} WHERE id = ? AND lease_token = ? AND {_LEASED_SQL}"
            f" AND lease_expires_at >= ? RETURNING {_TASK_COLUMNS}",
            (*params, lease.task_id, lease.token, self._clock()),
        ).fetchone()
        return _task(row) if row is not None else None

    def heartbeat(self, lease: Lease, *, lease_seconds: float) -> bool:
        now = self._clock()
        with self._transaction() as conn:
            task = self._fenced_update(
                conn, lease, "lease_expires_at = ?, updated_at = ?", (now + lease_seconds, now)
            )
        return task is not None

    def mark_running(self, lease: Lease, *, run_id: str) -> bool:
        """Only a ``dispatched`` task starts running: a second run holding the same lease (a re-execution
        from the UI, a launchpad copy of the config) finds it ``running`` or finished and is refused."""
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE tasks SET status = 'running', run_id = ?, updated_at = ?"
                " WHERE id = ? AND lease_token = ? AND status = 'dispatched' AND lease_expires_at >= ?"
                " RETURNING id",
                (run_id, now, lease.task_id, lease.token, now),
            ).fetchone()
            if row is not None:
                self._update_attempt(conn, lease, "run_id = ?, run_started_at = ?", (run_id, now))
        return row is not None

    def lease_for(self, task_id: str, attempt: int) -> Lease | None:
        """The live lease of ``attempt`` of the task, looked up by the run worker (the token is never in run
        config); None when that attempt no longer holds the task."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_TASK_COLUMNS}, lease_token FROM tasks WHERE id = ? AND attempt = ? AND {_LEASED_SQL}"
                " AND lease_token IS NOT NULL",
                (task_id, attempt),
            ).fetchone()
        if row is None:
            return None
        task = _task(row)
        return Lease(task.id, row["lease_token"], task.attempt, task.lease_expires_at or 0.0, task)

    def record_first_call(self, task_id: str, attempt: int, *, at: float) -> None:
        """When the attempt's session sent its first model call (a measurement, so not fenced)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE attempts SET first_call_at = ? WHERE task_id = ? AND attempt = ?",
                (at, task_id, attempt),
            )

    def _update_attempt(
        self, conn: sqlite3.Connection, lease: Lease, assignments: str, params: tuple
    ) -> None:
        conn.execute(
            f"UPDATE attempts SET {assignments} WHERE task_id = ? AND attempt = ?",
            (*params, lease.task_id, lease.attempt),
        )

    def _close_attempt(
        self,
        conn: sqlite3.Connection,
        lease: Lease,
        *,
        outcome: str,
        turns: int,
        cost_usd: float,
        stop_reason: str | None,
        now: float,
    ) -> None:
        self._update_attempt(
            conn,
            lease,
            "outcome = ?, turns = ?, cost_usd = ?, stop_reason = ?, ended_at = ?",
            (outcome, turns, cost_usd, stop_reason, now),
        )

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
        letter when attempts ran out."""
        check_outcome(outcome, ("done", "incomplete"))
        now = self._clock()
        # An incomplete task with no attempts left keeps its handoff in dead letters for a person.
        status = (
            "CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'incomplete' END"
            if outcome == "incomplete"
            else "'done'"
        )
        last_error = "turn cap reached on every attempt" if outcome == "incomplete" else None
        due = now + self.continue_delay_s if outcome == "incomplete" else now
        with self._transaction() as conn:
            task = self._fenced_update(
                conn,
                lease,
                f"status = {status}, turns = ?, cost_usd = cost_usd + ?, summary = ?, handoff = ?,"
                " last_error = CASE WHEN attempt >= max_attempts THEN ? ELSE NULL END,"
                " lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, available_at = ?, updated_at = ?",
                (turns, cost_usd, summary, json.dumps(handoff) if handoff else None, last_error, due, now),
            )
            if task is not None:
                self._close_attempt(
                    conn,
                    lease,
                    outcome=outcome,
                    turns=turns,
                    cost_usd=cost_usd,
                    stop_reason=stop_reason,
                    now=now,
                )
        return task is not None

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
        """Retryable: back to ``queued``, or ``dead`` when attempts ran out. Not retryable: ``failed``, except a
        refusal, which is a dead letter for a person to read. Only a ``transient`` failure (the API overloaded
        or unreachable) waits out a back-off; a lost attempt is due again at once. ``charge_attempt=False``
        (a run that never started) gives the attempt back: the task is queued with one more in its budget.
        ``handoff`` (what the attempt's transcript shows) replaces the task's; None keeps the one it has."""
        check_outcome(outcome, ("failed", "transient", "refused", "lost", "over_budget"))
        now = self._clock()
        due = now + retry_backoff(lease.attempt, self._retry_backoff_s) if outcome == "transient" else now
        budget = "max_attempts" if charge_attempt else "max_attempts + 1"
        if not charge_attempt:
            status = "'queued'"
        elif retryable:
            status = "CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'queued' END"
        else:
            status = "'dead'" if outcome in DEAD_LETTER_OUTCOMES else "'failed'"
        with self._transaction() as conn:
            task = self._fenced_update(
                conn,
                lease,
                f"status = {status}, max_attempts = {budget}, last_error = ?, turns = ?, cost_usd = cost_usd + ?,"
                " handoff = COALESCE(?, handoff), lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,"
                " available_at = ?, updated_at = ?",
                (error, turns, cost_usd, json.dumps(handoff) if handoff else None, due, now),
            )
            if task is None:
                return None
            self._close_attempt(
                conn, lease, outcome=outcome, turns=turns, cost_usd=cost_usd, stop_reason=None, now=now
            )
        return task.status

    # -- operator side --------------------------------------------------------------------------------------

    def requeue(self, task_id: str, *, reset_attempts: bool = False) -> bool:
        """Put a task back in the queue now. A task whose attempts ran out gets one more attempt, or its whole
        budget again with ``reset_attempts``. The attempt number itself never goes back (it names the run).
        A task holding a live lease is left alone: it is running."""
        now = self._clock()
        budget = "attempt + attempt_budget" if reset_attempts else "max(max_attempts, attempt + 1)"
        with self._transaction() as conn:
            self._reap_expired(conn, now)
            row = conn.execute(
                f"UPDATE tasks SET status = 'queued', max_attempts = {budget}, available_at = ?, updated_at = ?"
                f" WHERE id = ? AND NOT {_LEASED_SQL} RETURNING id",
                (now, now, task_id),
            ).fetchone()
        return row is not None

    def _withdraw(self, task_id: str, status: str, reason: str, *, allowed: tuple[str, ...]) -> bool:
        """Cancel or supersede a task whose status is one of ``allowed`` (the rules are in ``queue.py``).
        Clearing the lease token fences out a session, which then stops or never starts. The status test and
        the write are one statement, so a claim or a run start cannot slip between them."""
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute(
                # A claim withdrawn before its run started is not charged (the budget reads the old status).
                f"UPDATE tasks SET status = ?, last_error = ?, max_attempts = {_UNCHARGED_BUDGET},"
                " lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
                f" WHERE id = ? AND status IN ({', '.join('?' * len(allowed))}) RETURNING id, attempt",
                (status, reason, now, task_id, *allowed),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE attempts SET outcome = 'lost', ended_at = ? WHERE task_id = ? AND attempt = ? AND outcome = ''",
                    (now, row["id"], row["attempt"]),
                )
        return row is not None

    def cancel(self, task_id: str) -> bool:
        return self._withdraw(task_id, "cancelled", CANCEL_REASON, allowed=WITHDRAWABLE)

    def cancel_unstarted(self, task_id: str) -> bool:
        return self._withdraw(task_id, "cancelled", CANCEL_REASON, allowed=CANCELLABLE_UNSTARTED)

    def supersede(self, task_id: str, *, by: str) -> bool:
        return self._withdraw(task_id, "superseded", f"superseded by task {by}", allowed=SUPERSEDABLE)

    # -- reading --------------------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._reading() as conn:
            row = conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _task(row) if row is not None else None

    def list(
        self, *, status: str | None = None, source_prefix: str | None = None, limit: int = 100
    ) -> list[Task]:
        if status is not None and status not in STATUSES:
            raise QueueError(f"Unknown status {status!r}; use one of: {', '.join(STATUSES)}.")
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if source_prefix is not None:
            # substr rather than LIKE: a '%' or '_' in a row key must not act as a wildcard.
            clauses.append("substr(source, 1, ?) = ?")
            params += [len(source_prefix), source_prefix]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks {where} ORDER BY created_at, id LIMIT ?", (*params, limit)
            ).fetchall()
        return [_task(row) for row in rows]

    def stats(self, *, now: float | None = None) -> QueueStats:
        now = self._clock() if now is None else now
        with self._reading() as conn:
            depth = dict.fromkeys(STATUSES, 0)
            depth.update(conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
            oldest = conn.execute(f"SELECT min(created_at) FROM tasks WHERE {_CLAIMABLE_SQL}").fetchone()[0]
            live, running = conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE status = 'running') FROM tasks"
                f" WHERE {_LEASED_SQL} AND lease_expires_at >= ?",
                (now,),
            ).fetchone()
        return QueueStats(
            depth_by_status=depth,
            oldest_queued_age_s=None if oldest is None else max(now - oldest, 0.0),
            dead_letters=depth["dead"],
            live_sessions=live,
            running_sessions=running,
        )

    def attempts(self, *, since: float) -> list[AttemptRecord]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT * FROM attempts WHERE started_at >= ? ORDER BY started_at, task_id, attempt", (since,)
            ).fetchall()
        return [AttemptRecord(**dict(row)) for row in rows]
