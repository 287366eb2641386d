"""The durable agent-task queue:

- ``protocol.py``: the ``TaskQueue`` protocol, its records (``Task``, ``Lease``, ``QueueStats``…) and the
  checks every enqueue goes through;
- ``transitions.py``: how a task's status moves (claim, heartbeat, complete, fail, back-off, dead letter,
  cancel, lease expiry), pure Python, written once;
- ``store.py``: which transition each protocol call makes, shared by both stores;
- ``sqlite.py`` and ``dynamodb.py`` (with ``dynamodb_table.py``, the table's layout): the two stores, which
  make each move atomic on their database.

``open_queue`` picks the store from ``JADA_TASK_QUEUE_URL``; the stores are imported only then, so importing
this package stays light (no sqlite3 connection, no boto3).
"""

from __future__ import annotations

from jada_pipelines import settings
from jada_pipelines.agents.queue.protocol import (
    BACKENDS,
    TASK_ID_PATTERN,
    AttemptRecord,
    EnqueueResult,
    Lease,
    QueueError,
    QueueStats,
    Task,
    TaskQueue,
    new_nonce,
    resolve_workdir,
    validate_enqueue,
    validate_task_id,
)
from jada_pipelines.agents.queue.transitions import (
    CANCEL_REASON,
    CANCELLABLE_UNSTARTED,
    CLAIMABLE,
    DEAD_LETTER_OUTCOMES,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_S,
    LEASED,
    MAX_RETRY_BACKOFF_S,
    STATUSES,
    SUPERSEDABLE,
    WITHDRAWABLE,
    check_outcome,
    retry_backoff,
)

__all__ = [
    "BACKENDS",
    "CANCELLABLE_UNSTARTED",
    "CANCEL_REASON",
    "CLAIMABLE",
    "DEAD_LETTER_OUTCOMES",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RETRY_BACKOFF_S",
    "LEASED",
    "MAX_RETRY_BACKOFF_S",
    "STATUSES",
    "SUPERSEDABLE",
    "TASK_ID_PATTERN",
    "WITHDRAWABLE",
    "AttemptRecord",
    "EnqueueResult",
    "Lease",
    "QueueError",
    "QueueStats",
    "Task",
    "TaskQueue",
    "check_outcome",
    "default_queue_url",
    "new_nonce",
    "open_queue",
    "resolve_workdir",
    "retry_backoff",
    "validate_enqueue",
    "validate_task_id",
]


def default_queue_url() -> str:
    return settings.get("JADA_TASK_QUEUE_URL") or f"sqlite:///{settings.data_dir() / 'tasks.db'}"


def open_queue(url: str | None = None) -> TaskQueue:
    """`url` or $JADA_TASK_QUEUE_URL: sqlite:///path (default sqlite:///$JADA_DATA_DIR/tasks.db) or dynamodb://TABLE."""
    url = url or default_queue_url()
    continue_delay = settings.agent_continue_delay_seconds()
    if url.startswith("sqlite:///"):
        from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue

        return SQLiteTaskQueue(url.removeprefix("sqlite:///"), continue_delay_s=continue_delay)
    if url.startswith("dynamodb://"):
        table = url.removeprefix("dynamodb://").strip("/")
        if not table:
            raise settings.ConfigError(
                "JADA_TASK_QUEUE_URL=dynamodb:// names no table: use dynamodb://TABLE_NAME."
            )
        from jada_pipelines.agents.queue.dynamodb import DynamoDBTaskQueue

        return DynamoDBTaskQueue(table, continue_delay_s=continue_delay)
    raise settings.ConfigError(
        f"JADA_TASK_QUEUE_URL={url!r} is not understood: use sqlite:///absolute/path/tasks.db "
        "or dynamodb://TABLE_NAME (unset means SQLite in JADA_DATA_DIR)."
    )
