"""Rows of the port sheet that ask for agent work become tasks in the queue (plain Python, no Dagster).

A row asks for work when its task cell is not empty. The task id is derived from the row key and the
prompt, so pulling the same row again finds the task it already made, and editing the prompt makes a new
task and supersedes the old one (a person changed their mind; the old prompt must not run on).

An optional ``backend`` column picks the session backend of the row's task (``messages`` or
``claude-code``; empty: JADA_AGENT_BACKEND). It is read when the task is made; a value that is neither
keeps the row's task out of the queue, and the asset's metadata and log say which rows and what to type.

The ``port_sheet_tasks`` asset (``assets.py``) runs ``sync_tasks`` on each pull. ``keys.py`` is imported
inside the functions that use it: it loads pandas, which the definitions load must not.
"""

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jada_pipelines.agents.queue import CANCELLABLE_UNSTARTED, STATUSES
from jada_pipelines.agents.session import BACKENDS

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from jada_pipelines.agents.queue import Task, TaskQueue

SOURCE_PREFIX = "port_sheet:"
# Tasks that are over, one way or another: a newer prompt does not replace their outcome.
_FINISHED = ("done", "cancelled", "superseded")
# list() needs a limit; no sheet has anywhere near this many open tasks.
_EVERY_TASK = 1_000_000
# Room for a readable key in the id; the hash keeps ids distinct even when two keys share this prefix.
_KEY_CHARS = 40


def task_source(key: str) -> str:
    return f"{SOURCE_PREFIX}{key}"


def task_id_for(key: str, prompt: str) -> str:
    """``sheet-<key>-<hash>``: readable, stable for the same row and prompt, new when either changes.

    The hash covers the key as well as the prompt: sanitising the key for the id (the queue and the run
    key allow letters, digits, '.', '-', '_') could map two keys to one text, and they must not share a task.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:_KEY_CHARS].strip("_") or "row"
    digest = hashlib.sha256(f"{key}\0{prompt}".encode()).hexdigest()[:10]
    return f"sheet-{readable}-{digest}"


def prompt_text(value: Any) -> str | None:
    """The task cell as a prompt; None when it does not ask for work (empty, blank or missing)."""
    import pandas as pd

    # pandas gives an empty cell as NaN or <NA>, which str() would turn into a prompt.
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value).strip() or None


def requested_tasks(rows: "pd.DataFrame", *, key_column: str, task_column: str) -> dict[str, tuple[str, str]]:
    """``{key: (task id, prompt)}`` for every row whose task cell asks for work."""
    from jada_pipelines.port_sheet.keys import key_text

    if task_column not in rows.columns:
        return {}
    requested = {}
    for key_value, cell in zip(rows[key_column], rows[task_column], strict=True):
        key, prompt = key_text(key_value), prompt_text(cell)
        if key is not None and prompt is not None:
            requested[key] = (task_id_for(key, prompt), prompt)
    return requested


BACKEND_COLUMN = "backend"


def requested_backends(
    rows: "pd.DataFrame", *, key_column: str, backend_column: str = BACKEND_COLUMN
) -> tuple[dict[str, str], dict[str, str]]:
    """``({key: backend}, {key: bad value})`` from the optional backend column (empty cells are left out)."""
    from jada_pipelines.port_sheet.keys import key_text

    if backend_column not in rows.columns:
        return {}, {}
    chosen, bad = {}, {}
    for key_value, cell in zip(rows[key_column], rows[backend_column], strict=True):
        key, value = key_text(key_value), prompt_text(cell)
        if key is None or value is None:
            continue
        if value.lower() in BACKENDS:
            chosen[key] = value.lower()
        else:
            bad[key] = value
    return chosen, bad


@dataclass(frozen=True)
class TaskSync:
    """What one pass over the sheet did to the queue, by task id."""

    enqueued: list[str]
    already_known: list[str]
    superseded: list[str]
    cancelled: list[str] = field(default_factory=list)
    # Tasks whose request changed or went away while a session held them: that session finishes.
    left_running: list[str] = field(default_factory=list)


def sync_tasks(
    queue: "TaskQueue",
    requested: dict[str, tuple[str, str]],
    backends: dict[str, str] | None = None,
    *,
    present: "Iterable[str]" = (),
) -> TaskSync:
    """Enqueue each requested task once (with the row's session backend, when it names one); withdraw the
    row's older tasks that are still waiting.

    A row's older task whose session has not started is superseded (the prompt changed) or cancelled (the
    task cell was emptied: ``present`` lists the keys read in this pull, so a row merely missing from a read
    is never taken for an emptied cell). That includes a claim whose run still waits in Dagster's run queue
    (``dispatched``, claimed ahead): its lease is cleared, so the run never starts a session, the sensor
    cancels the queued run, and the claim is not charged an attempt. A session that started (``running``)
    is left to finish. Both writes are conditional, so a run start racing this pass ends in one outcome.
    Withdrawing runs for known tasks too, so a pass that crashed half-way is finished by the next one.
    """

    enqueued, known, superseded, cancelled, running = [], [], [], [], []
    open_by_source = _open_sheet_tasks(queue)
    for key, (task_id, prompt) in requested.items():
        result = queue.enqueue(task_id, prompt, source=task_source(key), backend=(backends or {}).get(key))
        (enqueued if result.created else known).append(task_id)
        for older in open_by_source.get(task_source(key), []):
            if older.id == task_id:
                continue
            if older.status == "running":
                running.append(older.id)
            # Conditional too: a session that started since this read (a claim raced it) finishes.
            else:
                (superseded if queue.supersede(older.id, by=task_id) else running).append(older.id)
    for key in present:
        if key in requested:
            continue
        for older in open_by_source.get(task_source(key), []):
            if older.status == "running":
                running.append(older.id)
            # Only a task no session has started is withdrawn (waiting, or claimed with its run not started);
            # failed and dead ones keep their outcome. The cancel is conditional: a session that started since
            # this read (a claim raced it) is left to finish.
            elif older.status in CANCELLABLE_UNSTARTED:
                (cancelled if queue.cancel_unstarted(older.id) else running).append(older.id)
    return TaskSync(enqueued, known, superseded, cancelled, running)


def _open_sheet_tasks(queue: "TaskQueue") -> dict[str, list["Task"]]:
    """The sheet's unfinished tasks by source, in one query per status rather than one per row: on
    DynamoDB a listing by source alone is a table scan."""

    by_source: dict[str, list[Task]] = {}
    for status in (s for s in STATUSES if s not in _FINISHED):
        for task in queue.list(status=status, source_prefix=SOURCE_PREFIX, limit=_EVERY_TASK):
            by_source.setdefault(task.source, []).append(task)
    return by_source


def present_keys(snapshot: Any) -> list[str]:
    """Keys of the valid rows of this pull: a row whose task cell is empty in it no longer asks for work.
    A pull with problems (no key column) has none, so it never cancels anything."""
    from jada_pipelines.port_sheet.keys import key_text

    if snapshot.problems:
        return []
    return [key for key in map(key_text, snapshot.rows[snapshot.key_column]) if key is not None]
