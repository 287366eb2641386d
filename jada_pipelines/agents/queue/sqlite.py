"""The embedded queue store: one SQLite file on local disk, safe across processes on one host.

It applies the moves of ``transitions.py``; the SQL here only makes each one atomic. A move runs inside one
``BEGIN IMMEDIATE`` transaction: read the row, ask ``transitions`` what to write, write it. BEGIN IMMEDIATE
takes the file's write lock before the read, so no other connection (another process, or the heartbeat
thread) can change the row between the read and the write, and a crash before COMMIT undoes both. We chose
this over generating SQL ``CASE`` expressions from a rule table: the rule stays plain Python that the DynamoDB
store and the unit tests call too, and each statement here is "read this row" or "write these columns".

Why these settings:
- WAL lets the webserver and sensor read while a worker writes; WAL does not work over NFS/EFS, so the file
  must sit on a local disk (use the DynamoDB backend when workers run on several hosts).
- ``synchronous=FULL``: with NORMAL a committed claim or completion can roll back after a power loss.
- Every write runs in ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail with
  SQLITE_BUSY without honouring busy_timeout, and the count of live sessions must not change between the
  check and the claim.
- Every write after a claim first checks the lease (``transitions.lease_holds``, the fence) in the same
  transaction.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jada_pipelines.agents.queue import transitions
from jada_pipelines.agents.queue.protocol import (
    AttemptRecord,
    EnqueueResult,
    Lease,
    QueueError,
    QueueStats,
    Task,
    decode_handoff,
)
from jada_pipelines.agents.queue.store import JudgeMove, MakeMove, QueueStore
from jada_pipelines.agents.queue.transitions import (
    CLAIM_ORDER,
    CLAIMABLE,
    DEFAULT_RETRY_BACKOFF_S,
    LEASED,
    STATUSES,
    Move,
)

# RETURNING arrived in SQLite 3.35.
MIN_SQLITE = (3, 35, 0)
BUSY_TIMEOUT_MS = 30_000

# A tuple's repr is a valid SQL list of string literals.
_LEASED_SQL = f"status IN {LEASED!r}"
_CLAIMABLE_SQL = f"status IN {CLAIMABLE!r}"
_CLAIM_ORDER_SQL = ", ".join(f"{name} DESC" if descending else name for name, descending in CLAIM_ORDER)

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
CREATE INDEX IF NOT EXISTS tasks_claimable ON tasks ({_CLAIM_ORDER_SQL}) WHERE {_CLAIMABLE_SQL};
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
# What a move reads of a row: the task, and what the transitions need beyond it.
_SELECT_ROW = f"SELECT {_TASK_COLUMNS}, attempt_budget, lease_token FROM tasks"


def _task(row: sqlite3.Row) -> Task:
    values = dict(row)
    values["handoff"] = decode_handoff(values["handoff"])
    return Task(**{name: values[name] for name in Task.__dataclass_fields__})


class SQLiteTaskQueue(QueueStore):
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
        super().__init__(clock=clock, retry_backoff_s=retry_backoff_s, continue_delay_s=continue_delay_s)
        self.path = Path(path)
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

    def _insert(self, fields: dict) -> EnqueueResult:
        with self._transaction() as conn:
            row = conn.execute(
                f"INSERT INTO tasks ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
                f" ON CONFLICT (id) DO NOTHING RETURNING {_TASK_COLUMNS}",
                tuple(fields.values()),
            ).fetchone()
            if row is not None:
                return EnqueueResult(task=_task(row), created=True)
            existing = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (fields["id"],)
            ).fetchone()
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
        # The claimable index, read in its order: the first due task, however long the backlog.
        row = conn.execute(
            f"{_SELECT_ROW} WHERE {_CLAIMABLE_SQL} AND available_at <= ? ORDER BY {_CLAIM_ORDER_SQL} LIMIT 1",
            (now,),
        ).fetchone()
        if row is None:
            return None
        token = secrets.token_hex(16)
        move = transitions.claim(
            attempt=row["attempt"], token=token, worker=worker, now=now, lease_seconds=lease_seconds
        )
        task = self._write(conn, row["id"], move)
        conn.execute(
            "INSERT INTO attempts (task_id, attempt, started_at, queued_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (task_id, attempt) DO UPDATE SET started_at = excluded.started_at,"
            " queued_at = excluded.queued_at",
            (task.id, task.attempt, now, task.available_at),
        )
        return Lease(
            task_id=task.id, token=token, attempt=task.attempt, expires_at=now + lease_seconds, task=task
        )

    def _row(self, conn: sqlite3.Connection, task_id: str) -> sqlite3.Row | None:
        return conn.execute(f"{_SELECT_ROW} WHERE id = ?", (task_id,)).fetchone()

    def _write(
        self, conn: sqlite3.Connection, task_id: str, move: Move, *, in_flight_only: bool = False
    ) -> Task:
        """Write ``move`` to the task and its attempt record; the caller's transaction read the row it came from.
        ``in_flight_only``: close the attempt only if nothing recorded its outcome yet."""
        assignments = ", ".join(f"{name} = ?" for name in move.changes)
        row = conn.execute(
            f"UPDATE tasks SET {assignments}, cost_usd = cost_usd + ? WHERE id = ? RETURNING {_TASK_COLUMNS}",
            (*move.changes.values(), move.cost_added, task_id),
        ).fetchone()
        task = _task(row)
        if move.attempt:
            assignments = ", ".join(f"{name} = ?" for name in move.attempt)
            conn.execute(
                f"UPDATE attempts SET {assignments} WHERE task_id = ? AND attempt = ?"
                + (" AND outcome = ''" if in_flight_only else ""),
                (*move.attempt.values(), task.id, task.attempt),
            )
        return task

    def _reap_expired(self, conn: sqlite3.Connection, now: float) -> None:
        """Leases that ran out (a crashed or paused worker) go back to the queue, or to dead letters."""
        expired = conn.execute(
            f"{_SELECT_ROW} WHERE {_LEASED_SQL} AND lease_expires_at < ?", (now,)
        ).fetchall()
        for row in expired:
            move = transitions.expire(
                status=row["status"], attempt=row["attempt"], max_attempts=row["max_attempts"], now=now
            )
            self._write(conn, row["id"], move, in_flight_only=True)

    def _apply_leased(
        self, lease: Lease, make_move: MakeMove, statuses: tuple[str, ...] = LEASED
    ) -> Move | None:
        """Write ``make_move(row, now)`` only while ``lease`` still holds the task (in ``statuses``); None means
        the lease was lost. The fence and the write are one transaction."""
        now = self._clock()
        with self._transaction() as conn:
            row = self._row(conn, lease.task_id)
            if row is None or not transitions.lease_holds(row, token=lease.token, now=now, statuses=statuses):
                return None
            move = make_move(row, now)
            self._write(conn, lease.task_id, move)
        return move

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

    # -- operator side --------------------------------------------------------------------------------------

    def _operate(self, task_id: str, make_move: JudgeMove, *, reap: bool = False) -> bool:
        """Write an operator's move: ``make_move(row, now)`` judges the task as it stands (None: not allowed).
        The read and the write are one transaction, so a claim or a run start cannot slip between them.
        ``reap``: expired leases go first, so a task whose session is gone counts as waiting."""
        now = self._clock()
        with self._transaction() as conn:
            if reap:
                self._reap_expired(conn, now)
            row = self._row(conn, task_id)
            move = make_move(row, now) if row is not None else None
            if move is None:
                return False
            self._write(conn, task_id, move, in_flight_only=True)
        return True

    # -- reading --------------------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._reading() as conn:
            row = conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _task(row) if row is not None else None

    def _list(self, status: str | None, source_prefix: str | None, limit: int) -> list[Task]:
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
