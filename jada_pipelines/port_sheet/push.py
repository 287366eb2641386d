"""The push engine (plain Python, no Dagster): each row's work goes back into the sheet's owned columns.

``wanted_cells`` says what each row's owned cells should hold, from the task queue and the pull's quarantine;
``push_status`` writes the ones that differ. One read of the header, key and owned columns (found by their
developer metadata, ``columns.py``), made just before one batched write of the cells that differ
(``plan.py``; none when nothing changed): two Google calls whatever the number of rows. Everything else in
the sheet belongs to people and is never written. The ``port_sheet_status`` asset (``assets.py``) runs it.

``keys.py``, ``plan.py`` and ``columns.py`` are imported inside the functions that use them: they load pandas,
which the definitions load (assets.py imports this module) must not.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jada_pipelines.agents.queue import LEASED
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS, SYNC_ISSUE
from jada_pipelines.port_sheet.store import SpreadsheetNotes
from jada_pipelines.port_sheet.tasks import SOURCE_PREFIX, requested_tasks, task_source

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from jada_pipelines.agents.queue import Task, TaskQueue
    from jada_pipelines.google_api.sheets import SheetsSession
    from jada_pipelines.port_sheet.plan import PushPlan
    from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot

SUMMARY_CHARS = 200


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


# How the rows of a write were checked (PushResult.checked_by).
BY_WRITE_ANSWER = "the write's answer"
BY_SEPARATE_READ = "a separate read"


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
    checked_by: str = ""  # BY_WRITE_ANSWER or BY_SEPARATE_READ; "" when nothing was written
    fallback: str = ""  # why the rows were checked by a separate read, when they were
    foreign_tags: tuple[str, ...] = ()  # the push's tags on other tabs, as the last set-up found them
    removed_tags: int = 0  # extra tags on this tab the set-up deleted (a second tag for a name)

    @property
    def row_check(self) -> str:
        """What the push knows of the rows it wrote, in words: never more than it checked."""
        if self.write_calls == 0:
            return "nothing written"
        how = "" if self.checked_by == BY_WRITE_ANSWER else f" (verified by a separate read: {self.fallback})"
        if self.unverified_cells:
            return (
                f"{self.unverified_cells} cell(s) landed on another key's row (rows kept moving during the "
                f"write); the next run puts them right{how}"
            )
        if self.corrected_cells:
            return (
                f"{self.corrected_cells} cell(s) landed on another key's row (rows moved during the write) "
                f"and were put right in this run{how}"
            )
        if self.checked_by == BY_WRITE_ANSWER:
            return "every written row held its key when Google applied the write"
        return f"verified by a separate read: every written row held its key just after the write ({self.fallback})"


# A row moved between a read and its write leaves some cells on another key's row; each correction round is
# a read and a write, so a sheet being sorted over and over stops here and the next run takes over.
MAX_CORRECTIONS = 2
# Reads that tag untagged columns: one to tag, one to check the tags landed on their headers.
MAX_SETUPS = 2
# SpreadsheetNotes: the write's key-column item is not answered usefully on this spreadsheet.
ROW_CHECK_NOTE = "row_check_fallback"


def push_status(
    session: "SheetsSession",
    *,
    spreadsheet_id: str,
    tab: str,
    key_column: str,
    wanted: "pd.DataFrame",
    max_bytes: int | None = None,
    issue_column: str = SYNC_ISSUE,
    notes: "SpreadsheetNotes | None" = None,
) -> PushResult:
    """Read the key and owned columns now, and write the cells that differ (none if none differ).

    Columns are found by their developer metadata when Google serves each request (``columns.py``), so a
    column inserted, moved or deleted by a person at any moment never receives a pipeline value; each tag is
    addressed by its id, so a duplicated tab's copies of the tags are never written through. A write that
    fails is never re-sent: the push reads and plans again (except a write Google refused for its key-column
    item alone, which applied nothing and goes again without that item). A write whose rows moved under it
    (the key column at write time, from the write's answer or, failing that, a separate read) is corrected
    by the same read-plan-write, before the run ends. ``notes`` keeps what was learned for later syncs.
    """
    from jada_pipelines.port_sheet.plan import plan_push

    notes = notes or SpreadsheetNotes(None)
    known = notes.get(spreadsheet_id)
    sheet_id = (known.get("sheet_ids") or {}).get(tab)
    fallback = str(known.get(ROW_CHECK_NOTE) or "")
    names = [key_column, *(name for name in wanted.columns if name != key_column)]
    owned = [name for name in wanted.columns if name != key_column]
    calls_before = session.calls
    setup_calls = write_calls = bytes_sent = replans = corrected = failures = rounds = removed = 0
    diff_seconds = diff_cpu_seconds = 0.0
    checked_by = ""
    wanted_now = wanted
    while True:
        read, sheet_id, setups, removed_now = _read_tracked(
            session, spreadsheet_id, tab, sheet_id, names, notes
        )
        setup_calls, removed = setup_calls + setups, removed + removed_now
        started, started_cpu = time.perf_counter(), time.process_time()
        # A duplicated key's reason is the same for each of its rows, so it goes on all of them.
        plan = plan_push(
            wanted_now,
            read.sheet,
            tab=tab,
            key_column=key_column,
            every_row_columns=[issue_column],
            keyless_columns=owned,
            a1_body=False,
        )
        diff_seconds += time.perf_counter() - started
        diff_cpu_seconds += time.process_time() - started_cpu
        try:
            written = _write(
                session,
                spreadsheet_id,
                plan.writes,
                sheet_id=sheet_id,
                key_column=key_column,
                max_bytes=max_bytes,
                fallback=fallback,
                notes=notes,
            )
        except CredentialsError as error:
            # What was planned may be stale by now (the sheet keeps changing): wait, then read and plan again.
            session.wait_before_replanning(error, failures)
            failures, replans = failures + 1, replans + 1
            continue
        write_calls, bytes_sent = write_calls + written.calls, bytes_sent + written.bytes_sent
        fallback, astray = written.fallback, written.astray
        if written.calls:
            checked_by = BY_SEPARATE_READ if fallback else BY_WRITE_ANSWER
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
        checked_by=checked_by,
        fallback=fallback,
        foreign_tags=tuple(notes.get(spreadsheet_id).get("foreign_tags") or ()),
        removed_tags=removed,
    )


@dataclass(frozen=True)
class _Written:
    calls: int
    bytes_sent: int
    astray: list  # (cell, key now on its row): cells that landed on another key's row, or on a keyless one
    fallback: str  # why the rows were checked by a separate read; "" when the write's answer did it


def _write(
    session: "SheetsSession",
    spreadsheet_id: str,
    cells: list,
    *,
    sheet_id: int,
    key_column: str,
    max_bytes: int | None,
    fallback: str,
    notes: "SpreadsheetNotes",
) -> _Written:
    """Send the planned cells, and check each written row held its key when it was written.

    The key column comes from each write's own answer (its ``[[]]`` item) while Google answers it. When the
    answer has no ``updatedData`` for it, or Google refuses the item (then nothing was applied, the batch
    being atomic, and the same cells go again at once without it), the rows are checked by one separate read
    of the key column just after the writes, and the spreadsheet's notes say so for later syncs.
    """
    from jada_pipelines.port_sheet.columns import (
        MAX_REQUEST_BYTES,
        key_read_body,
        keys_at_write,
        keys_read,
        misplaced,
        write_bodies,
    )

    def bodies_for(pending: list, echo_keys: bool) -> list:
        return write_bodies(
            pending,
            sheet_id=sheet_id,
            key_column=key_column,
            max_bytes=max_bytes or MAX_REQUEST_BYTES,
            echo_keys=echo_keys,
        )

    calls = sent = index = 0
    astray: list = []
    unchecked: list = []
    bodies = bodies_for(cells, not fallback) if cells else []
    while index < len(bodies):
        body, piece = bodies[index]
        try:
            response = session.values_batch_update_by_data_filter(spreadsheet_id, body)
        except CredentialsError as error:
            calls += 1
            if fallback or not _refused(error):
                raise
            fallback = (
                f"Google refused the write's key-column item ({error.metadata.get('api_status')}), "
                "so the write went again without it"
            )
            notes.update(spreadsheet_id, **{ROW_CHECK_NOTE: fallback})
            bodies, index = bodies_for([cell for _, part in bodies[index:] for cell in part], False), 0
            continue
        calls, sent, index = calls + 1, sent + len(body), index + 1
        echoed = None if fallback else keys_at_write(response, sheet_id, key_column)
        if echoed is not None:
            astray += misplaced(piece, echoed)
            continue
        if not fallback:
            fallback = "Google's answer to the write carried no updatedData for the key column"
            notes.update(spreadsheet_id, **{ROW_CHECK_NOTE: fallback})
        unchecked += piece
    if unchecked:
        reply = session.values_batch_get_by_data_filter(spreadsheet_id, key_read_body(sheet_id, key_column))
        astray += misplaced(unchecked, keys_read(reply))
    return _Written(calls, sent, astray, fallback)


def _refused(error: CredentialsError) -> bool:
    """Google's 400 INVALID_ARGUMENT: the request was refused as written, and nothing was applied."""
    return error.metadata.get("http_status") == 400 and error.metadata.get("api_status") == "INVALID_ARGUMENT"


def _read_tracked(
    session: "SheetsSession",
    spreadsheet_id: str,
    tab: str,
    sheet_id: int | None,
    names: list[str],
    notes: "SpreadsheetNotes",
) -> tuple[Any, int, int, int]:
    """The tracked columns as they are now, tagging any untagged one first (a one-time set-up).

    Returns the read, the tab's sheetId, the set-up calls made and the extra tags the set-up removed. The
    sheetId comes from the notes; a metadata read finds it when they have none, or when a tag's id resolved
    on another tab (the tab was renamed, and another one took its name).
    """
    from jada_pipelines.port_sheet.columns import (
        parse_read,
        read_body,
        setup_requests,
        survey_tags,
        tags_filter,
    )

    setups = removed = 0
    for attempt in range(MAX_SETUPS + 1):
        if sheet_id is None:
            sheet_id = _sheet_id(session.metadata(spreadsheet_id), tab)
            setups += 1
            sheet_ids = {**(notes.get(spreadsheet_id).get("sheet_ids") or {}), tab: sheet_id}
            notes.update(spreadsheet_id, sheet_ids=sheet_ids)
        body = read_body(tab, sheet_id, names)
        read = parse_read(
            session.values_batch_get_by_data_filter(spreadsheet_id, body), names, tab=tab, sheet_id=sheet_id
        )
        setups += int(attempt > 0)  # the read that checks the new tags
        if read.elsewhere and attempt < MAX_SETUPS:
            sheet_id = None
            continue
        if not read.untagged or attempt == MAX_SETUPS:
            return read, sheet_id, setups, removed
        survey = survey_tags(
            session.search_developer_metadata(spreadsheet_id, {"dataFilters": [tags_filter()]}),
            sheet_id,
            names,
        )
        notes.update(spreadsheet_id, foreign_tags=survey.foreign)
        session.batch_update(spreadsheet_id, {"requests": setup_requests(sheet_id, read, survey)})
        setups, removed = setups + 2, removed + len(survey.extra)
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
