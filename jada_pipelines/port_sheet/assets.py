"""``port_sheet_rows``: the port sheet pulled into a typed table every 30 minutes, or a failure that says why."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.resources import GoogleCredentialsResource, credentials_failure
from jada_pipelines.port_sheet.checks import ROWS_CHECK, ROWS_CHECK_SPEC, not_evaluated, port_sheet_rows_valid
from jada_pipelines.port_sheet.resources import PortSheetSettings
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot
from jada_pipelines.port_sheet.store import StoreError, read_snapshot, snapshot_path
from jada_pipelines.settings import ConfigError

CREDENTIALS_CHECK = "google_credentials_fresh"
PREVIEW_ROWS = 10
LISTED_KEYS = 50


@dg.asset(
    group_name="port_sheet",
    io_manager_key="port_sheet_store",
    kinds={"googlesheets", "pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            CREDENTIALS_CHECK,
            asset="port_sheet_rows",
            blocking=True,
            description="The Google token refreshes and can read the port sheet; WARN when it expires within "
            "10% of its 7-day Testing life. A failure stops the sync and names the fix.",
        ),
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
        yield _credentials_check_failed(error)
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
    yield _credentials_check_result(session.verdict)
    yield port_sheet_rows_valid(snapshot)


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
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def _credentials_check_failed(error: CredentialsError) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CREDENTIALS_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=error.description,
        metadata=error.metadata,
    )


def _credentials_check_result(verdict: Any) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CREDENTIALS_CHECK,
        passed=verdict.severity == "OK",
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata=verdict.metadata,
    )


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
