"""What a cell of the LOCAL Google emulator holds, how a read renders it and how a typed entry is parsed,
and the grid of cells a tab is (not Google).

Render options: https://developers.google.com/sheets/api/reference/rest/v4/ValueRenderOption;
date and number formats: https://developers.google.com/sheets/api/guides/formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jada_pipelines.emulators.google.a1 import GridRange, format_a1
from jada_pipelines.emulators.google.faults import invalid

# Google's default size for a new tab.
DEFAULT_ROWS, DEFAULT_COLUMNS = 1000, 26

RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
# https://developers.google.com/sheets/api/reference/rest/v4/DateTimeRenderOption
DATE_TIME_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
# NumberFormatType values whose cells are "date, time, datetime, and duration fields" for dateTimeRenderOption
# (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets/cells#NumberFormatType).
DATE_TIME_TYPES = ("DATE", "TIME", "DATE_TIME")


@dataclass(frozen=True)
class Formula:
    """A formula cell: what a person typed (``formula``) and what the sheet shows (``value``)."""

    formula: str
    value: Any = None


@dataclass(frozen=True)
class Formatted:
    """A number with a number format, as Google stores a typed date, time, duration, percent or amount.

    ``value`` is what ``UNFORMATTED_VALUE`` returns: for dates and times the serial number (days since
    1899-12-30, the day's fraction for the time; "Date & number formats" guide,
    https://developers.google.com/sheets/api/guides/formats). ``kind`` is the NumberFormatType and
    ``pattern`` the format pattern the sheet shows it with.
    """

    value: int | float
    kind: str
    pattern: str


@dataclass
class Tab:
    title: str
    sheet_id: int
    rows: list[list[Any]]
    row_count: int
    column_count: int


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    tabs: list[Tab] = field(default_factory=list)
    time_zone: str = "Etc/GMT"
    # DeveloperMetadata resources; a dimensionRange location moves with the rows or columns it is on.
    developer_metadata: list[dict] = field(default_factory=list)


def render(cell: Any, option: str, date_time_option: str = "SERIAL_NUMBER") -> Any:
    """One cell as Google returns it for ``valueRenderOption=option`` and ``dateTimeRenderOption``.

    Per the ValueRenderOption and DateTimeRenderOption references: FORMATTED_VALUE shows every cell as its
    format displays it (and ignores dateTimeRenderOption); otherwise a date, time, date-time or duration is
    its serial number, or its formatted string with FORMATTED_STRING, and every other number (percent,
    currency included) stays a number.
    """
    if isinstance(cell, Formula):
        if option == "FORMULA":
            return cell.formula
        cell = cell.value
    if cell is None:
        return ""
    if isinstance(cell, Formatted):
        if option == "FORMATTED_VALUE" or (
            cell.kind in DATE_TIME_TYPES and date_time_option == "FORMATTED_STRING"
        ):
            return format_number(cell.value, cell.pattern)
        cell = cell.value
    if isinstance(cell, bool):
        return ("TRUE" if cell else "FALSE") if option == "FORMATTED_VALUE" else cell
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    if isinstance(cell, int | float) and option == "FORMATTED_VALUE":
        return format(cell, ".10g") if isinstance(cell, float) else str(cell)
    return cell


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


_SHEETS_EPOCH = datetime(1899, 12, 30)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_TIME = re.compile(r"^(\d{1,3}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?$")
_PERCENT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))%$")
_CURRENCY = re.compile(r"^(-?)\$((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def serial_number(moment: datetime) -> int | float:
    """A wall-clock date-time as a Sheets serial number (whole days are ints, as Google returns them)."""
    days = (moment - _SHEETS_EPOCH).total_seconds() / 86400
    return int(days) if days.is_integer() else round(days, 10)


def from_serial(serial: float) -> datetime:
    return _SHEETS_EPOCH + timedelta(seconds=round(serial * 86400))


def format_number(value: float, pattern: str) -> str:
    """``value`` shown with one of the patterns ``parse_user_entered`` gives (the en_US locale's)."""
    if pattern in ("yyyy-mm-dd", "M/d/yyyy", "yyyy-mm-dd H:mm:ss", "M/d/yyyy H:mm:ss"):
        moment = from_serial(value)
        date = (
            f"{moment:%Y-%m-%d}"
            if pattern.startswith("yyyy")
            else f"{moment.month}/{moment.day}/{moment.year}"
        )
        return date if " " not in pattern else f"{date} {moment.hour}:{moment:%M:%S}"
    if pattern in ("H:mm:ss", "h:mm:ss am/pm"):
        moment = from_serial(value % 1)
        if pattern == "H:mm:ss":
            return f"{moment.hour}:{moment:%M:%S}"
        return f"{(moment.hour - 1) % 12 + 1}:{moment:%M:%S} {'AM' if moment.hour < 12 else 'PM'}"
    if pattern == "[h]:mm:ss":
        seconds = round(value * 86400)
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if pattern.endswith("%"):
        decimals = len(pattern.partition(".")[2]) - 1 if "." in pattern else 0
        return f"{value * 100:.{decimals}f}%"
    if pattern.startswith("$"):
        return ("-" if value < 0 else "") + f"${abs(value):,.2f}"
    if pattern.startswith("#,##0"):
        decimals = len(pattern.partition(".")[2])
        return f"{value:,.{decimals}f}"
    raise ValueError(f"no formatting for pattern {pattern!r} in the local Google emulator")


def _parse_typed_number(text: str) -> Formatted | None:
    """Dates, times, durations, percents, amounts and thousands separators as Google's en_US locale reads
    them when typed ("Date & number formats": https://developers.google.com/sheets/api/guides/formats)."""
    date_part, _, time_part = (
        text.replace("T", " ", 1).partition(" ") if text[:1].isdigit() else (text, "", "")
    )
    for regex, order, pattern in ((_ISO_DATE, (0, 1, 2), "yyyy-mm-dd"), (_US_DATE, (2, 0, 1), "M/d/yyyy")):
        match = regex.match(date_part)
        if match is None:
            continue
        year, month, day = (int(match.group(i + 1)) for i in order)
        try:
            moment = datetime(year, month, day)
        except ValueError:
            return None  # "2026-02-30" is text to Google
        if not time_part:
            return Formatted(serial_number(moment), "DATE", pattern)
        clock = _clock(time_part.strip())
        if clock is None or clock >= timedelta(days=1):
            return None
        return Formatted(serial_number(moment + clock), "DATE_TIME", pattern + " H:mm:ss")
    if (clock := _clock(text)) is not None:
        serial = clock.total_seconds() / 86400
        serial = int(serial) if serial.is_integer() else round(serial, 10)
        if clock >= timedelta(days=1):
            return Formatted(serial, "TIME", "[h]:mm:ss")  # a duration: "36:00:00"
        return Formatted(serial, "TIME", "h:mm:ss am/pm" if text[-1:].lower() == "m" else "H:mm:ss")
    if match := _PERCENT.match(text):
        number = float(match.group(1)) / 100
        return Formatted(round(number, 12), "PERCENT", "0.00%" if "." in match.group(1) else "0%")
    if match := _CURRENCY.match(text):
        number = float(match.group(2).replace(",", "")) * (-1 if match.group(1) else 1)
        return Formatted(int(number) if number.is_integer() else number, "CURRENCY", "$#,##0.00")
    if _THOUSANDS.match(text):
        number = float(text.replace(",", ""))
        decimals = len(text.partition(".")[2])
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return Formatted(int(number) if number.is_integer() else number, "NUMBER", pattern)
    return None


def _clock(text: str) -> timedelta | None:
    match = _TIME.match(text)
    if match is None:
        return None
    hours, minutes, seconds, half = match.groups()
    hours, minutes, seconds = int(hours), int(minutes), int(seconds or 0)
    if minutes > 59 or seconds > 59:
        return None
    if half:
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if half.lower() == "pm" else 0)
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_user_entered(value: Any) -> Any:
    """A value as if a person typed it: numbers, booleans and formulas are parsed (``"007"`` becomes 7),
    and dates, times, durations, percents, amounts and thousands separators become formatted numbers."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("'"):
        return value[1:]
    if text.startswith("="):
        return Formula(text)
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    if (typed := _parse_typed_number(text)) is not None:
        return typed
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if number.is_integer() and "e" not in text.lower() and "." not in text else number
    return value


def from_extended_value(data: dict) -> Any:
    """A CellData's ``userEnteredValue`` (ExtendedValue) as a stored cell."""
    entered = data.get("userEnteredValue")
    if entered is None:
        return None
    kinds = {"stringValue", "numberValue", "boolValue", "formulaValue"} & entered.keys()
    if len(kinds) != 1:
        raise invalid(
            "Invalid value at 'requests.update_cells.rows.values.user_entered_value': exactly one kind"
        )
    kind = kinds.pop()
    if kind == "formulaValue":
        return Formula(entered[kind])
    return entered[kind]


def _trim(values: list[Any]) -> list[Any]:
    end = len(values)
    while end and values[end - 1] == "":
        end -= 1
    return values[:end] if end != len(values) else values


def check_bounds(tab: Tab, row_end: int, col_end: int, where: str) -> None:
    if row_end > tab.row_count or col_end > tab.column_count:
        raise invalid(
            f"Range ({where}) exceeds grid limits. Max rows: {tab.row_count}, max columns: {tab.column_count}"
        )


def pad_rows(tab: Tab, count: int) -> None:
    while len(tab.rows) < count:
        tab.rows.append([])


def _copy_rows_on_write(tab: Tab, start: int, end: int) -> None:
    """Give the staged tab its own copies of the rows a batch will edit (the rest stay shared)."""
    for index in range(start, min(end, len(tab.rows))):
        tab.rows[index] = list(tab.rows[index])


def put(tab: Tab, row: int, col: int, value: Any) -> None:
    pad_rows(tab, row + 1)
    cells = tab.rows[row]
    if len(cells) <= col:
        if value is None:
            return
        cells.extend([None] * (col + 1 - len(cells)))
    cells[col] = value


def value_range(tab: Tab, grid_range: GridRange, option: str, date_option: str, dimension: str) -> dict:
    label, values = read_range(tab, grid_range, option, date_option)
    if dimension == "COLUMNS":
        values = _columns_of(values)
    response: dict[str, Any] = {"range": label, "majorDimension": dimension}
    if values:
        response["values"] = values
    return response


def _columns_of(rows: list[list[Any]]) -> list[list[Any]]:
    """ROWS-major values as COLUMNS-major, trailing empties of each column dropped as Google does."""
    width = max((len(row) for row in rows), default=0)
    columns = [_trim([row[c] if c < len(row) else "" for row in rows]) for c in range(width)]
    while columns and not columns[-1]:
        columns.pop()
    return columns


def read_range(
    tab: Tab, grid_range: GridRange, option: str, date_option: str = "SERIAL_NUMBER"
) -> tuple[str, list[list[Any]]]:
    row_end = tab.row_count if grid_range.row_end is None else grid_range.row_end
    col_end = tab.column_count if grid_range.col_end is None else grid_range.col_end
    check_bounds(
        tab,
        row_end,
        col_end,
        format_a1(tab.title, grid_range.row_start, row_end, grid_range.col_start, col_end),
    )
    c0 = grid_range.col_start
    values = []
    for row in tab.rows[grid_range.row_start : row_end]:
        values.append(_trim([render(cell, option, date_option) for cell in row[c0:col_end]]))
    while values and not values[-1]:
        values.pop()
    return format_a1(tab.title, grid_range.row_start, row_end, c0, col_end), values
