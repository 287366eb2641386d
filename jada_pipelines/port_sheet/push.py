"""The push engine (plain Python, no Dagster): each row's work goes back into the sheet's owned columns.

``wanted_cells`` says what each row's owned cells should hold, from the task queue and the pull's quarantine;
``push_status`` writes the ones that differ. One read of the header, key and owned columns (found by their
developer metadata, ``columns.py``), made just before one batched write of the cells that differ
(``plan.py``; none when nothing changed): two Google calls whatever the number of rows. Everything else in
the sheet belongs to people and is never written. The ``port_sheet_status`` asset (``assets.py``) runs it.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jada_pipelines.agents.queue import LEASED
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.port_sheet.tasks import SOURCE_PREFIX, requested_tasks, task_source

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from jada_pipelines.agents.queue import Task, TaskQueue
    from jada_pipelines.google_api.sheets import SheetsSession
    from jada_pipelines.port_sheet.plan import PushPlan
    from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot

# The owned columns, by their default names; the port_sheet resource may rename them (``column_names``).
DEFAULT_OWNED_COLUMNS = (
    "agent_status",
    "agent_turns",
    "agent_cost_usd",
    "agent_summary",
    "agent_updated_at",
    "sync_issue",
)
SUMMARY_CHARS = 200
# The owned column that says why the pull quarantined a row.
SYNC_ISSUE = "sync_issue"


def _summary_line(task: "Task") -> str:
    """The summary, or the last error when there is none, as one line a person can read in a cell."""
    text = (task.summary or task.last_error or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_cells(task: "Task") -> dict[str, Any]:
    """The owned cells that describe a task, by their default column names."""
    return {
        "agent_status": task.status,
        "agent_turns": task.turns,
        "agent_cost_usd": round(task.cost_usd, 4),
        "agent_summary": _summary_line(task),
        "agent_updated_at": _timestamp(task.updated_at),
    }


def wanted_cells(
    snapshot: "PortSheetSnapshot", queue: "TaskQueue", *, task_column: str, owned_columns: "Sequence[str]"
) -> "pd.DataFrame":
    """The owned cells to sync, one row per key: task cells for rows asking for work, ``sync_issue`` for all.

    A valid row gets an empty ``sync_issue`` (its earlier issue is fixed); a quarantined row gets its reason
    and nothing else, so its other cells stay as they are. Unset cells (None) are left alone.
    """
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    requested = requested_tasks(snapshot.rows, key_column=snapshot.key_column, task_column=task_column)
    held = _held_or_cancelled(queue) if task_column in snapshot.header else {}
    for key, (task_id, _prompt) in requested.items():
        task = queue.get(task_id)
        rows[key] = task_cells(task) if task is not None else {}
        older = held.get(task_source(key))
        if task is not None and task.status == "queued" and older is not None and older.status in LEASED:
            rows[key]["agent_summary"] = (
                f"request changed: the session on the previous request ({older.id}) finishes first"
            )
    shown = _shown_at(snapshot, column_names(owned_columns).get("agent_updated_at", "agent_updated_at"))
    for key in _valid_keys(snapshot):
        task = held.get(task_source(key))
        # A row that asks for nothing now: the task its request had, if it changed since the sheet showed it.
        if key not in requested and task is not None and task.updated_at > shown.get(key, float("-inf")):
            rows[key] = task_cells(task)
            rows[key]["agent_summary"] = (
                "request removed: the task cell was emptied, so the task was cancelled before it started"
                if task.status == "cancelled"
                else "request removed: the task cell was emptied; this session finishes, no new one starts"
            )
        rows.setdefault(key, {})[SYNC_ISSUE] = ""
    for row in snapshot.quarantined:
        if row.key is not None:
            rows.setdefault(str(row.key), {})[SYNC_ISSUE] = row.reason
    names = column_names(owned_columns)
    frame = pd.DataFrame.from_dict(rows, orient="index", dtype=object).rename(columns=names)
    # Columns the pipeline has no value for (an extra owned column) come out all-NaN: left alone.
    return frame.reindex(columns=list(owned_columns))


def column_names(owned_columns: "Sequence[str]") -> dict[str, str]:
    """Each default owned column's header in this sheet. Owned columns renamed through the resource keep
    their order: the six defaults, renamed in place (``["Status", "Turns", ...]``), get their values."""
    if len(owned_columns) == len(DEFAULT_OWNED_COLUMNS):
        return dict(zip(DEFAULT_OWNED_COLUMNS, owned_columns, strict=True))
    return {name: name for name in DEFAULT_OWNED_COLUMNS if name in owned_columns}


def _held_or_cancelled(queue: "TaskQueue") -> dict[str, "Task"]:
    """The latest sheet task per row (source) that a session holds or that was cancelled."""
    latest: dict[str, Task] = {}
    for status in (*LEASED, "cancelled"):
        for task in queue.list(status=status, source_prefix=SOURCE_PREFIX, limit=1_000_000):
            if task.source not in latest or task.updated_at > latest[task.source].updated_at:
                latest[task.source] = task
    return latest


def _shown_at(snapshot: "PortSheetSnapshot", column: str) -> dict[str, float]:
    """When each row's status in the sheet was written (its agent_updated_at), as epoch seconds."""
    from jada_pipelines.port_sheet.keys import key_text

    if column not in snapshot.rows.columns:
        return {}
    shown = {}
    for key, text in zip(snapshot.rows[snapshot.key_column], snapshot.rows[column], strict=True):
        try:
            shown[key_text(key)] = datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
    return shown


def _valid_keys(snapshot: "PortSheetSnapshot") -> list[str]:
    from jada_pipelines.port_sheet.keys import key_text

    return [key for key in map(key_text, snapshot.rows[snapshot.key_column]) if key is not None]


@dataclass(frozen=True)
class PushResult:
    plan: "PushPlan"
    google_calls: int  # as counted by the session, so retries of a transient failure show
    write_calls: int
    diff_seconds: float
    diff_cpu_seconds: float  # unlike wall time, not inflated by other processes on a shared machine
    setup_calls: int = 0  # one-time: tagging columns with developer metadata (and the read that checks it)
    bytes_sent: int = 0  # request bodies of the writes
    replans: int = 0  # a write failed and was planned again from a fresh read
    corrected_cells: int = 0  # cells that landed on another key's row (rows moved in the window), put right
    unverified_cells: int = 0  # still misplaced after the last correction: the next run puts them right


# A row moved between a read and its write leaves some cells on another key's row; each correction round is
# a read and a write, so a sheet being sorted over and over stops here and the next run takes over.
MAX_CORRECTIONS = 2
# Reads that tag untagged columns: one to tag, one to check the tags landed on their headers.
MAX_SETUPS = 2


def push_status(
    session: "SheetsSession",
    *,
    spreadsheet_id: str,
    tab: str,
    key_column: str,
    wanted: "pd.DataFrame",
    max_bytes: int | None = None,
    issue_column: str = SYNC_ISSUE,
) -> PushResult:
    """Read the key and owned columns now, and write the cells that differ (none if none differ).

    Columns are found by their developer metadata when Google serves each request (``columns.py``), so a
    column inserted, moved or deleted by a person at any moment never receives a pipeline value. A write
    that fails is never re-sent: the push reads and plans again. A write whose own answer shows a row moved
    under it (its key column at write time) is corrected by the same read-plan-write, before the run ends.
    """
    from jada_pipelines.port_sheet.columns import MAX_REQUEST_BYTES, keys_at_write, misplaced, write_bodies
    from jada_pipelines.port_sheet.plan import plan_push

    names = [key_column, *(name for name in wanted.columns if name != key_column)]
    calls_before = session.calls
    setup_calls = write_calls = bytes_sent = replans = corrected = failures = rounds = 0
    diff_seconds = diff_cpu_seconds = 0.0
    wanted_now = wanted
    while True:
        read, setups = _read_tracked(session, spreadsheet_id, tab, names)
        setup_calls += setups
        started, started_cpu = time.perf_counter(), time.process_time()
        # A duplicated key's reason is the same for each of its rows, so it goes on all of them.
        plan = plan_push(
            wanted_now,
            read.sheet,
            tab=tab,
            key_column=key_column,
            every_row_columns=[issue_column],
            a1_body=False,
        )
        bodies = write_bodies(plan.writes, key_column=key_column, max_bytes=max_bytes or MAX_REQUEST_BYTES)
        diff_seconds += time.perf_counter() - started
        diff_cpu_seconds += time.process_time() - started_cpu
        astray: list = []
        try:
            for body, cells in bodies:
                response = session.values_batch_update_by_data_filter(spreadsheet_id, body)
                write_calls, bytes_sent = write_calls + 1, bytes_sent + len(body)
                keys = keys_at_write(response, key_column)
                astray += misplaced(cells, keys) if keys is not None else []
        except CredentialsError as error:
            # What was planned may be stale by now (the sheet keeps changing): wait, then read and plan again.
            session.wait_before_replanning(error, failures)
            failures, replans = failures + 1, replans + 1
            continue
        if not astray or rounds >= MAX_CORRECTIONS:
            break
        rounds, corrected = rounds + 1, corrected + len(astray)
        wanted_now = _restoring(wanted_now, astray, read, key_column)
    return PushResult(
        plan=plan,
        google_calls=session.calls - calls_before,
        write_calls=write_calls,
        diff_seconds=diff_seconds,
        diff_cpu_seconds=diff_cpu_seconds,
        setup_calls=setup_calls,
        bytes_sent=bytes_sent,
        replans=replans,
        corrected_cells=corrected - len(astray) if astray else corrected,
        unverified_cells=len(astray),
    )


def _read_tracked(
    session: "SheetsSession", spreadsheet_id: str, tab: str, names: list[str]
) -> tuple[Any, int]:
    """The tracked columns as they are now, tagging any untagged one first (a one-time setup)."""
    from jada_pipelines.port_sheet.columns import parse_read, read_body, setup_requests

    setups = 0
    for attempt in range(MAX_SETUPS + 1):
        read = parse_read(
            session.values_batch_get_by_data_filter(spreadsheet_id, read_body(tab, names)), names
        )
        setups += int(attempt > 0)  # the read that checks the new tags
        if not read.untagged or attempt == MAX_SETUPS:
            return read, setups
        sheet_id = _sheet_id(session.metadata(spreadsheet_id), tab)
        session.batch_update(spreadsheet_id, {"requests": setup_requests(sheet_id, read)})
        setups += 2
    raise AssertionError("unreachable")


def _sheet_id(metadata: dict[str, Any], tab: str) -> int:
    for sheet in metadata.get("sheets", []):
        properties = sheet.get("properties", {})
        if properties.get("title") == tab:
            return int(properties.get("sheetId", 0))
    raise CredentialsError(
        "sheet_access",
        f"The spreadsheet has no tab named {tab!r} any more: set JADA_PORT_SHEET_TAB to the tab's new name.",
    )


def _restoring(wanted: "pd.DataFrame", astray: list, read: Any, key_column: str) -> "pd.DataFrame":
    """``wanted`` plus, for each cell that landed on another key's row, that key's own value as the read
    before the write saw it (unless the key wants a value there anyway): the next write puts it back."""
    from jada_pipelines.port_sheet.keys import key_text

    keys = [key_text(cell) for cell in read.sheet.cells.get(key_column, [])]
    offsets = {key: offset for offset, key in enumerate(keys) if key is not None and keys.count(key) == 1}
    wanted = wanted.copy()
    for cell, owner in astray:
        if owner is None:
            continue
        current = wanted.at[owner, cell.column] if owner in wanted.index else None
        if current is not None and current == current:  # NaN != NaN: no value wanted
            continue
        offset = offsets.get(owner)
        column = read.sheet.cells.get(cell.column, [])
        wanted.loc[owner, cell.column] = column[offset] if offset is not None and offset < len(column) else ""
    return wanted
