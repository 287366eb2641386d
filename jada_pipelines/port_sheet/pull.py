"""The pull engine (plain pandas, no Dagster): one read of the sheet becomes a typed, keyed snapshot.

Rows that cannot be trusted (a missing or duplicate key, a cell that fails its column type) are
quarantined with a reason instead of being dropped, and do not fail the pull. What makes the whole
sheet unusable (no header row, no key column) is recorded in ``problems``.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from dateutil.parser import parse

from jada_pipelines.port_sheet.a1 import sheet_range
from jada_pipelines.port_sheet.keys import key_text
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot, QuarantinedRow

ROW_NUMBER = "_row_number"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Google Sheets counts dates as days since 1899-12-30 when read with UNFORMATTED_VALUE.
_SHEETS_EPOCH = "1899-12-30"


class CellTypeError(ValueError):
    """A cell's value does not fit its column's declared type."""


def read_values(session: Any, spreadsheet_id: str, tab: str) -> list[list[Any]]:
    """The tab's cells in one ``values:batchGet``. Errors propagate, never ``[]``.

    Numbers stay numbers (``UNFORMATTED_VALUE``), while dates, times, date-times and durations come as the
    text people see (``dateTimeRenderOption=FORMATTED_STRING``) instead of serial numbers: a date in a
    column read as text is "2026-05-13", not "46155".
    """
    response = session.values_batch_get(
        spreadsheet_id,
        [sheet_range(tab)],
        value_render_option="UNFORMATTED_VALUE",
        date_time_render_option="FORMATTED_STRING",
    )
    (value_range,) = response["valueRanges"]
    # Google leaves out "values" when the tab is empty: that is an empty sheet, not a failed read.
    return value_range.get("values", [])


def read_time_zone(session: Any, spreadsheet_id: str) -> str:
    """The spreadsheet's time zone (File > Settings): its dates and times are wall-clock times there."""
    return str(session.metadata(spreadsheet_id).get("properties", {}).get("timeZone") or "UTC")


# ------------------------------------------------------------------------------------------ cell types


def _as_string(value: Any) -> str:
    # The sheet's own rendering of numbers ("7", not "7.0"), the same as for keys.
    return key_text(value) or str(value)


def _as_key(value: Any) -> str | None:
    return key_text(value)


def _as_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise CellTypeError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    else:
        raise CellTypeError(f"{_show(value)} is not a whole number")
    # The column is a pandas Int64: a larger number would fail the whole pull, not just this row.
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise CellTypeError(f"{_show(value)} is too large for a whole-number column")
    return number


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise CellTypeError(f"{value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CellTypeError(f"{_show(value)} is not a number") from None
    # A sheet cell cannot hold NaN or infinity: these come from text such as "nan" or "inf".
    if not math.isfinite(number):
        raise CellTypeError(f"{_show(value)} is not a number")
    return number


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    raise CellTypeError(f"{_show(value)} is not TRUE or FALSE")


def _as_datetime(value: Any, time_zone: str = "UTC") -> Any:
    """A date or date-time cell as a UTC timestamp. The sheet shows wall-clock times of its own time zone,
    so a value without an explicit offset (a formatted date, or a serial number) is read in ``time_zone``."""

    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            stamp = pd.Timestamp(_SHEETS_EPOCH) + pd.Timedelta(days=value)
        else:
            text = str(value).strip()
            # pandas reads "now" and "today" as the clock at the pull: a different value on every pull.
            if text.lower() in ("now", "today"):
                raise ValueError(text)
            stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        raise CellTypeError(f"{_show(value)} is not a date or time") from None
    if stamp is pd.NaT:
        raise CellTypeError(f"{_show(value)} is not a date or time")
    if isinstance(value, str) and _lacks_date(value.strip()):
        # A time with no date ("1:45:00 PM") would be pinned to the day of the pull.
        raise CellTypeError(f"{_show(value)} is a time without a date: type the date too")
    if stamp.tzinfo is not None:
        return stamp.tz_convert("UTC")
    # A wall-clock time that a daylight-saving change skipped or repeated is taken as the clock shows it.
    return stamp.tz_localize(time_zone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def _lacks_date(text: str) -> bool:
    try:
        first, second = datetime(2001, 1, 1), datetime(2002, 2, 2)
        return parse(text, default=first).date() != parse(text, default=second).date()
    except (ValueError, OverflowError):
        return False


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# type name -> (converter, pandas dtype)
COLUMN_TYPES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "string": (_as_string, "string"),
    "integer": (_as_integer, "Int64"),
    "float": (_as_float, "Float64"),
    "boolean": (_as_boolean, "boolean"),
    "datetime": (_as_datetime, "datetime64[ns, UTC]"),
}


# ------------------------------------------------------------------------------------------ snapshot


def build_snapshot(
    values: Sequence[Sequence[Any]],
    *,
    key_column: str,
    column_types: dict[str, str],
    pulled_at: datetime,
    time_zone: str = "UTC",
) -> PortSheetSnapshot:
    """Turn the cells of one read (row 1 is the header) into a typed snapshot with a quarantine.

    ``time_zone`` is the spreadsheet's: ``datetime`` columns hold its wall-clock times, converted to UTC.
    """
    header = [key_text(cell) or "" for cell in values[0]] if values else []
    problems = _header_problems(header, key_column, column_types)
    columns = [name for name in header if name]
    if problems:
        return PortSheetSnapshot(
            header, key_column, _frame([], columns, column_types), [], pulled_at, problems
        )
    column_types = {**column_types, key_column: "string"}
    positions = {name: index for index, name in enumerate(header) if name}
    converters = {name: COLUMN_TYPES[column_types.get(name, "string")][0] for name in columns}
    for name in columns:
        if column_types.get(name) == "datetime":
            converters[name] = functools.partial(_as_datetime, time_zone=time_zone)
    # The key is one normalised text whatever its cells hold (and whatever type the column was given):
    # the push locates rows with the same function, so 101, 101.0 and "101" are one key on both sides.
    converters[key_column] = _as_key
    records, quarantined = [], []
    for offset, cells in enumerate(values[1:]):
        row_number = offset + 2
        record, reason = _typed_record(cells, positions, converters)
        if record is None and reason is None:
            continue  # a blank row carries no data: nothing to keep or report
        key = record[key_column] if record else key_text(_cell(cells, positions[key_column]))
        if reason is None and key is None:
            reason = f"the key column '{key_column}' is empty"
        if reason is not None:
            quarantined.append(QuarantinedRow(row_number, key, reason))
            continue
        record[ROW_NUMBER] = row_number
        records.append(record)
    records, duplicates = _drop_duplicate_keys(records, key_column)
    quarantined = sorted(quarantined + duplicates, key=lambda row: row.row_number)
    return PortSheetSnapshot(
        header, key_column, _frame(records, columns, column_types), quarantined, pulled_at, problems
    )


def _header_problems(header: list[str], key_column: str, column_types: dict[str, str]) -> list[str]:
    if not any(header):
        return [
            "The sheet has no header row: row 1 is empty. Put the column names in row 1, "
            f"including the key column '{key_column}'."
        ]
    problems = []
    if key_column not in header:
        problems.append(
            f"The key column '{key_column}' is not in the header row ({', '.join(h for h in header if h)}). "
            "Add it to row 1, or set JADA_PORT_SHEET_KEY to the header of the column that identifies a row."
        )
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        problems.append(f"The header row repeats {', '.join(repeated)}: give every column its own name.")
    unknown = {column: kind for column, kind in column_types.items() if kind not in COLUMN_TYPES}
    if unknown:
        problems.append(
            f"Unknown column types {unknown}: use one of {', '.join(COLUMN_TYPES)} in the port_sheet resource."
        )
    return problems


def _cell(cells: Sequence[Any], index: int) -> Any:
    return cells[index] if index < len(cells) else None


def _typed_record(
    cells: Sequence[Any], positions: dict[str, int], converters: dict[str, Callable[[Any], Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """The row's typed values, or the reason it cannot be typed; (None, None) for a blank row."""
    if all(cell is None or cell == "" for cell in cells):
        return None, None
    record, failures = {}, []
    for name, index in positions.items():
        value = _cell(cells, index)
        if value is None or value == "":
            record[name] = None
            continue
        try:
            record[name] = converters[name](value)
        except CellTypeError as error:
            failures.append(f"column '{name}': {error}")
    if failures:
        return None, "; ".join(failures)
    return record, None


def _drop_duplicate_keys(records: list[dict], key_column: str) -> tuple[list[dict], list[QuarantinedRow]]:
    # Which of two rows with one key is right cannot be known, so neither is used until a person fixes it.
    rows_by_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        rows_by_key[record[key_column]].append(record[ROW_NUMBER])
    duplicated = {key: rows for key, rows in rows_by_key.items() if len(rows) > 1}
    quarantined = [
        QuarantinedRow(
            number,
            key,
            f"the key '{key}' appears on rows {', '.join(map(str, rows))}: give each row its own key",
        )
        for key, rows in duplicated.items()
        for number in rows
    ]
    return [r for r in records if r[key_column] not in duplicated], quarantined


def _frame(records: list[dict], columns: list[str], column_types: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=[*columns, ROW_NUMBER])
    dtypes = {name: COLUMN_TYPES[column_types.get(name, "string")][1] for name in columns}
    dtypes[ROW_NUMBER] = "int64"
    return frame.astype(dtypes)


# ------------------------------------------------------------------------------------------ changes


@dataclass(frozen=True)
class KeyChanges:
    """Keys that appeared, changed a value, or disappeared since the previous pull."""

    added: list[str]
    changed: list[str]
    removed: list[str]


def key_changes(previous: PortSheetSnapshot | None, current: PortSheetSnapshot) -> KeyChanges:
    """Compare two pulls by key. Moving a row (a new ``_row_number``) is not a change.

    A pull with ``problems`` has no keyed rows: nothing is reported for it, and it is no baseline.
    """
    if current.problems:
        return KeyChanges([], [], [])
    after = current.rows.drop(columns=[ROW_NUMBER]).set_index(current.key_column)
    if previous is None or previous.problems:
        return KeyChanges(list(after.index), [], [])
    before = previous.rows.drop(columns=[ROW_NUMBER]).set_index(previous.key_column)
    added = [key for key in after.index if key not in before.index]
    removed = [key for key in before.index if key not in after.index]
    common = after.index[after.index.isin(before.index)]
    columns = list(dict.fromkeys([*before.columns, *after.columns]))
    old = _cells(before.reindex(index=common, columns=columns))
    new = _cells(after.reindex(index=common, columns=columns))
    # Compared as Python objects so that missing == missing and "7" != 7, whatever the dtypes became.
    changed = common[(old != new).any(axis=1)] if len(common) else common
    return KeyChanges(added, list(changed), removed)


def _cells(frame: pd.DataFrame) -> Any:
    return frame.astype(object).where(frame.notna(), None).to_numpy()
