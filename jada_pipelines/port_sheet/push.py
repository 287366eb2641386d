"""What happened to each row's work goes back into the sheet's pipeline-owned columns (``port_sheet_status``).

One read of the header, key and owned columns, made just before one batched write of the cells that differ
(none when nothing changed): two Google calls whatever the number of rows. Everything else in the sheet
belongs to people and is never written.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

# No `from __future__ import annotations` in this module: Dagster inspects the asset's resource
# annotations as live classes. Names imported only for type checking are quoted instead.
import dagster as dg

from jada_pipelines.agents.resources import TaskQueueResource
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.resources import GoogleCredentialsResource, credentials_failure
from jada_pipelines.port_sheet.resources import PortSheetSettings
from jada_pipelines.port_sheet.tasks import port_sheet_tasks, requested_tasks

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from jada_pipelines.agents.queue import Task, TaskQueue
    from jada_pipelines.google_api.sheets import SheetsSession
    from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot
    from jada_pipelines.port_sheet.sync import PushPlan

SUMMARY_CHARS = 200
# The owned column that says why the pull quarantined a row.
SYNC_ISSUE = "sync_issue"
# Keys listed in a check's metadata; the description gives the counts.
LISTED_KEYS = 50


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
    for key, (task_id, _prompt) in requested_tasks(
        snapshot.rows, key_column=snapshot.key_column, task_column=task_column
    ).items():
        task = queue.get(task_id)
        rows[key] = task_cells(task) if task is not None else {}
    for key in _valid_keys(snapshot):
        rows.setdefault(key, {})[SYNC_ISSUE] = ""
    for row in snapshot.quarantined:
        if row.key is not None:
            rows.setdefault(str(row.key), {})[SYNC_ISSUE] = row.reason
    # Columns the pipeline has no value for (an owned column with another name) come out all-NaN: left alone.
    return pd.DataFrame.from_dict(rows, orient="index", dtype=object).reindex(columns=list(owned_columns))


def _valid_keys(snapshot: "PortSheetSnapshot") -> list[str]:
    from jada_pipelines.port_sheet.sync import key_text

    return [key for key in map(key_text, snapshot.rows[snapshot.key_column]) if key is not None]


@dataclass(frozen=True)
class PushResult:
    plan: "PushPlan"
    google_calls: int  # as counted by the session, so retries of a transient failure show
    write_calls: int
    diff_seconds: float
    diff_cpu_seconds: float  # unlike wall time, not inflated by other processes on a shared machine


def push_status(
    session: "SheetsSession",
    *,
    spreadsheet_id: str,
    tab: str,
    header: list[str],
    key_column: str,
    wanted: "pd.DataFrame",
) -> PushResult:
    """Read the key and owned columns now, and write the cells that differ in one call (none if none differ).

    ``header`` is the header the pull saw; if the columns moved since, ``SheetChangedError`` stops the push
    before any write.
    """
    from jada_pipelines.port_sheet.sync import parse_read, plan_push, read_ranges

    calls_before = session.calls
    columns = [key_column, *wanted.columns]
    response = session.values_batch_get(
        spreadsheet_id, read_ranges(tab, header, columns), value_render_option="UNFORMATTED_VALUE"
    )
    sheet = parse_read(response.get("valueRanges", []), expected_header=header, columns=columns)
    started, started_cpu = time.perf_counter(), time.process_time()
    # A duplicated key's reason is the same for each of its rows, so it goes on all of them.
    plan = plan_push(wanted, sheet, tab=tab, key_column=key_column, every_row_columns=[SYNC_ISSUE])
    diff_seconds, diff_cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    if plan.body is not None:
        session.values_batch_update(spreadsheet_id, plan.body)
    return PushResult(
        plan=plan,
        google_calls=session.calls - calls_before,
        write_calls=int(plan.body is not None),
        diff_seconds=diff_seconds,
        diff_cpu_seconds=diff_cpu_seconds,
    )


@dg.asset(
    group_name="port_sheet",
    deps=[port_sheet_tasks],
    kinds={"googlesheets"},
    check_specs=[
        dg.AssetCheckSpec(
            "port_sheet_status_columns_present",
            asset="port_sheet_status",
            description="Every pipeline-owned column is in the sheet's header row, so every status can land.",
        ),
        dg.AssetCheckSpec(
            "port_sheet_status_rows_located",
            asset="port_sheet_status",
            description="Every row to update was found exactly once by its key at write time.",
        ),
    ],
)
def port_sheet_status(
    port_sheet_rows,
    google: GoogleCredentialsResource,
    port_sheet: PortSheetSettings,
    task_queue: TaskQueueResource,
) -> dg.MaterializeResult:
    """The agents' progress as people see it in the port sheet: status, turns, cost, summary, updated time,
    and why a row was quarantined. Only the cells that changed are written, in one batched call."""
    from jada_pipelines.port_sheet.sync import SheetChangedError

    wanted = wanted_cells(
        port_sheet_rows,
        task_queue.open(),
        task_column=port_sheet.task_column,
        owned_columns=port_sheet.owned_columns,
    )
    try:
        result = _push(google, port_sheet, port_sheet_rows, wanted)
    except CredentialsError as error:
        raise credentials_failure(error) from None  # nothing was written
    except SheetChangedError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    plan = result.plan
    return dg.MaterializeResult(
        metadata={
            "google_api_calls": result.google_calls,
            "write_calls": result.write_calls,
            "changed_cells": plan.changed_cells,
            "changed_rows": plan.changed_rows,
            "ranges_written": plan.ranges,
            "diff_seconds": round(result.diff_seconds, 4),
            "rows_synced": len(wanted),
        },
        check_results=[_columns_check(plan, port_sheet.tab), _rows_check(plan)],
    )


def _push(
    google: GoogleCredentialsResource,
    port_sheet: PortSheetSettings,
    snapshot: "PortSheetSnapshot",
    wanted: "pd.DataFrame",
) -> PushResult:
    session = google.sheets()
    try:
        return push_status(
            session,
            spreadsheet_id=port_sheet.spreadsheet_id,
            tab=port_sheet.tab,
            header=list(snapshot.header),
            key_column=snapshot.key_column,
            wanted=wanted,
        )
    finally:
        session.close()


def _columns_check(plan: "PushPlan", tab: str) -> dg.AssetCheckResult:
    missing = plan.missing_columns
    return dg.AssetCheckResult(
        check_name="port_sheet_status_columns_present",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Add the column(s) {', '.join(repr(name) for name in missing)} to the header row of tab {tab!r}: "
            "the pipeline writes its status there and never adds columns itself."
            if missing
            else "Every pipeline-owned column is in the header."
        ),
        metadata={"missing_columns": dg.MetadataValue.json(missing)},
    )


def _rows_check(plan: "PushPlan") -> dg.AssetCheckResult:
    problems = []
    if plan.missing_keys:
        problems.append(
            f"{len(plan.missing_keys)} key(s) no longer in the sheet (deleted or edited since the pull)"
        )
    if plan.duplicate_keys:
        problems.append(f"{len(plan.duplicate_keys)} key(s) on more than one row: give each row its own key")
    return dg.AssetCheckResult(
        check_name="port_sheet_status_rows_located",
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=("; ".join(problems) + ". Those rows got no agent status.")
        if problems
        else "Every row was found by its key.",
        metadata={
            "missing_keys": dg.MetadataValue.json(plan.missing_keys[:LISTED_KEYS]),
            "duplicate_keys": dg.MetadataValue.json(plan.duplicate_keys[:LISTED_KEYS]),
        },
    )
