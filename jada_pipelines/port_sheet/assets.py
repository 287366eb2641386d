"""The port sheet's assets (the Dagster side; the work is done by the plain engines they call).

- ``port_sheet_rows``: the sheet pulled into a typed table (``pull.py``), kept by ``port_sheet_store``
  (``store.py``), or a failure that says why.
- ``port_sheet_tasks``: rows that ask for agent work become queued tasks (``tasks.py``).
- ``port_sheet_status``: each row's progress written back into the owned columns (``push.py``).

Each asset reports what its engine did as metadata and check results (``checks.py``).
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# No `from __future__ import annotations` in this module: Dagster inspects the assets' resource
# annotations as live classes. Names imported only for type checking are quoted instead.
import dagster as dg
from dagster import AssetExecutionContext

from jada_pipelines.agents.resources import TaskQueueResource
from jada_pipelines.agents.session import BACKENDS
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.resources import GoogleCredentialsResource, credentials_failure
from jada_pipelines.port_sheet.checks import (
    CREDENTIALS_CHECK,
    CREDENTIALS_CHECK_SPEC,
    ROWS_CHECK,
    ROWS_CHECK_SPEC,
    STATUS_CHECK_SPECS,
    credentials_check_failed,
    credentials_check_result,
    not_evaluated,
    port_sheet_rows_valid,
    status_columns_present,
    status_rows_located,
)
from jada_pipelines.port_sheet.layout import SYNC_ISSUE
from jada_pipelines.port_sheet.push import PushResult, column_names, push_status, wanted_cells
from jada_pipelines.port_sheet.resources import PortSheetSettings
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot
from jada_pipelines.port_sheet.store import (
    SpreadsheetNotes,
    StoreError,
    notes_path,
    read_snapshot,
    snapshot_path,
)
from jada_pipelines.port_sheet.tasks import (
    BACKEND_COLUMN,
    present_keys,
    requested_backends,
    requested_tasks,
    sync_tasks,
)
from jada_pipelines.settings import ConfigError

if TYPE_CHECKING:
    import pandas as pd

PREVIEW_ROWS = 10
# Keys in the pull's change report, ids in the tasks' metadata; the counts cover all of them.
LISTED_KEYS = 50
LISTED_IDS = 50


@dg.asset(
    group_name="port_sheet",
    io_manager_key="port_sheet_store",
    kinds={"googlesheets", "pandas"},
    check_specs=[
        CREDENTIALS_CHECK_SPEC,
        ROWS_CHECK_SPEC,
    ],
)
def port_sheet_rows(
    context: AssetExecutionContext, google: GoogleCredentialsResource, port_sheet: PortSheetSettings
):
    """Every port in the port sheet, one typed row per key, as of this pull.

    People edit the sheet; this is the pipeline's copy of it, stored locally so it survives restarts. Rows
    with a missing or duplicate key, or a value that fails its column type, are quarantined with a reason
    (see the ``port_sheet_rows_valid`` check). A sheet that cannot be read fails the run; it never becomes
    an empty table.
    """
    from jada_pipelines.port_sheet.pull import build_snapshot, key_changes

    try:
        session, values, time_zone = _read_sheet(google, port_sheet)
    except CredentialsError as error:
        yield credentials_check_failed(error)
        yield not_evaluated(ROWS_CHECK, because=CREDENTIALS_CHECK)
        raise credentials_failure(error) from None
    except ConfigError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    tab = port_sheet.tab
    snapshot = build_snapshot(
        values,
        key_column=port_sheet.key_column,
        column_types=port_sheet.column_types,
        pulled_at=datetime.now(UTC),
        time_zone=time_zone,
    )
    changes = key_changes(_previous_snapshot(context), snapshot)
    context.log.info(
        f"Pulled {len(snapshot.rows)} rows from '{tab}' ({len(snapshot.quarantined)} quarantined): "
        f"{len(changes.added)} added, {len(changes.changed)} changed, {len(changes.removed)} removed."
    )
    metadata = _pull_metadata(snapshot, changes, calls=session.calls, tab=tab)
    # The zone the sheet's datetime columns were read in before conversion to UTC.
    metadata["time_zone"] = time_zone
    yield dg.Output(snapshot, metadata=metadata)
    yield credentials_check_result(session.verdict)
    yield port_sheet_rows_valid(snapshot)


@dg.asset(group_name="port_sheet", kinds={"python"})
def port_sheet_tasks(
    context: dg.AssetExecutionContext,
    port_sheet_rows,
    port_sheet: PortSheetSettings,
    task_queue: TaskQueueResource,
) -> dg.MaterializeResult:
    """Agent work that people asked for in the port sheet: one queued task per row with a task cell.

    Re-pulling never enqueues twice; editing a prompt supersedes the row's unfinished task.
    """
    task_column = port_sheet.task_column
    column_note = task_column
    if task_column not in port_sheet_rows.header:
        # A sheet may ask for no work at all, so this is no failure; but a renamed column must not look
        # like a quiet day.
        column_note = f"{task_column} (not in the header row: no row can ask for work)"
        context.log.warning(
            f"The task column '{task_column}' is not in the port sheet's header row, so no row can ask for agent "
            f"work. Add a '{task_column}' column to row 1, or set the port_sheet resource's task_column to the "
            "header people type prompts under."
        )
    requested = requested_tasks(
        port_sheet_rows.rows, key_column=port_sheet_rows.key_column, task_column=task_column
    )
    backends, bad_backends = requested_backends(port_sheet_rows.rows, key_column=port_sheet_rows.key_column)
    bad_backends = {key: value for key, value in bad_backends.items() if key in requested}
    if bad_backends:
        listed = ", ".join(f"{key}: {value!r}" for key, value in list(bad_backends.items())[:LISTED_IDS])
        context.log.warning(
            f"Rows whose '{BACKEND_COLUMN}' cell is not a session backend were not queued ({listed}): type "
            f"{' or '.join(repr(name) for name in BACKENDS)} there, or empty it for JADA_AGENT_BACKEND."
        )
        requested = {key: value for key, value in requested.items() if key not in bad_backends}
    present = present_keys(port_sheet_rows) if task_column in port_sheet_rows.header else []
    outcome = sync_tasks(task_queue.open(), requested, backends, present=present)
    return dg.MaterializeResult(
        metadata={
            "task_column": column_note,
            "requested": len(requested),
            "enqueued": len(outcome.enqueued),
            "already_known": len(outcome.already_known),
            "superseded": len(outcome.superseded),
            "cancelled": len(outcome.cancelled),
            "left_running": len(outcome.left_running),
            "enqueued_ids": dg.MetadataValue.json(outcome.enqueued[:LISTED_IDS]),
            "superseded_ids": dg.MetadataValue.json(outcome.superseded[:LISTED_IDS]),
            "cancelled_ids": dg.MetadataValue.json(outcome.cancelled[:LISTED_IDS]),
            "bad_backend_rows": dg.MetadataValue.json(dict(list(bad_backends.items())[:LISTED_IDS])),
        }
    )


@dg.asset(
    group_name="port_sheet",
    deps=[port_sheet_tasks],
    kinds={"googlesheets"},
    check_specs=STATUS_CHECK_SPECS,
)
def port_sheet_status(
    port_sheet_rows,
    google: GoogleCredentialsResource,
    port_sheet: PortSheetSettings,
    task_queue: TaskQueueResource,
):
    """The agents' progress as people see it in the port sheet: status, turns, cost, summary, updated time,
    and why a row was quarantined. Only the cells that changed are written, in one batched call."""
    wanted = wanted_cells(
        port_sheet_rows,
        task_queue.open(),
        task_column=port_sheet.task_column,
        owned_columns=port_sheet.owned_columns,
    )
    try:
        result = _push(google, port_sheet, port_sheet_rows, wanted)
    except CredentialsError as error:
        # Nothing was written. The checks say why they were not evaluated, rather than "Execution failed".
        for spec in STATUS_CHECK_SPECS:
            yield not_evaluated(spec.name, because=CREDENTIALS_CHECK, so="no status was written")
        raise credentials_failure(error) from None
    plan = result.plan
    yield dg.MaterializeResult(
        metadata={
            "google_api_calls": result.google_calls,
            "write_calls": result.write_calls,
            "changed_cells": plan.changed_cells,
            "changed_rows": plan.changed_rows,
            "bytes_sent": result.bytes_sent,
            # Tagging columns with developer metadata happens once per column, outside the steady budget.
            "setup_calls": result.setup_calls,
            "replans": result.replans,
            "row_check": result.row_check,
            # The push's tags the last set-up found on other tabs (a duplicated tab's copies): never written.
            "tags_on_other_tabs": ", ".join(result.foreign_tags) or "none",
            # A second tag for a name on this tab (or one from before tags had ids): deleted by the set-up.
            "extra_tags_removed": result.removed_tags,
            "diff_seconds": round(result.diff_seconds, 4),
            "rows_synced": len(wanted),
        },
        check_results=[status_columns_present(plan, port_sheet.tab), status_rows_located(plan)],
    )


def _previous_snapshot(context: AssetExecutionContext) -> PortSheetSnapshot | None:
    """The last pull, the baseline of the change report; an unreadable one is no baseline, and this pull
    replaces it (the sheet itself was read, so there is no reason to fail the sync)."""
    try:
        return read_snapshot(snapshot_path(context.asset_key.path[-1]))
    except StoreError as error:
        context.log.warning(str(error))
        return None


def _read_sheet(
    google: GoogleCredentialsResource, port_sheet: PortSheetSettings
) -> tuple[Any, list[list], str]:
    """Credentials first: with nothing configured, the first thing to fix is the Google token.

    Two calls: the spreadsheet's time zone (its dates are wall-clock times there), then the values.
    """

    from jada_pipelines.port_sheet.pull import read_time_zone, read_values

    session = google.sheets()
    try:
        spreadsheet_id = port_sheet.spreadsheet_id
        time_zone = read_time_zone(session, spreadsheet_id)
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise dg.Failure(
                description=f"The spreadsheet's time zone {time_zone!r} is not a time zone this machine knows "
                "(its tz database may be old): update the tzdata package, or set the sheet's time zone "
                "(File > Settings) to an IANA name such as Europe/Lisbon.",
                allow_retries=False,
            ) from None
        return session, read_values(session, spreadsheet_id, port_sheet.tab), time_zone
    finally:
        session.close()


def _pull_metadata(snapshot: PortSheetSnapshot, changes: Any, *, calls: int, tab: str) -> dict[str, Any]:
    return {
        "row_count": len(snapshot.rows),
        "quarantined_count": len(snapshot.quarantined),
        "keys_added": len(changes.added),
        "keys_changed": len(changes.changed),
        "keys_removed": len(changes.removed),
        "added": _key_list(changes.added),
        "changed": _key_list(changes.changed),
        "removed": _key_list(changes.removed),
        "google_api_calls": calls,
        "spreadsheet_tab": tab,
        "preview": _preview(snapshot),
    }


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f" … and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else "") or "none"


def _preview(snapshot: PortSheetSnapshot) -> dg.TableMetadataValue:
    head = snapshot.rows.head(PREVIEW_ROWS)
    cells = head.astype(object).where(head.notna(), None)
    records = [
        dg.TableRecord({str(k): _table_value(v) for k, v in row.items()}) for row in cells.to_dict("records")
    ]
    schema = dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in head.dtypes.items()]
    )
    return dg.MetadataValue.table(records=records, schema=schema)


def _table_value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


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
            key_column=snapshot.key_column,
            wanted=wanted,
            issue_column=column_names(port_sheet.owned_columns).get(SYNC_ISSUE, SYNC_ISSUE),
            notes=SpreadsheetNotes(notes_path()),
        )
    finally:
        session.close()
