"""A LOCAL EMULATOR of Google's OAuth token endpoint and the Sheets API v4, for tests and `make demo`.

This is not Google. It is a small HTTP server on 127.0.0.1 that answers the requests google-auth,
google-auth-oauthlib and gspread make, with the response shapes and error bodies of Google's
documentation, so the real client libraries do real HTTP against it:

- ``POST /token``: the ``refresh_token``, ``authorization_code`` and JWT-bearer (service account) grants.
- ``GET /o/oauth2/auth``: the consent page, answered at once by a redirect carrying a code, so the
  local-server flow of ``jada auth google`` can be driven without a browser.
- ``GET /v4/spreadsheets/{id}``: metadata (``fields`` and ``includeGridData`` are accepted and ignored).
- ``GET .../values/{range}``, ``GET .../values:batchGet``, ``PUT .../values/{range}``,
  ``POST .../values:batchUpdate`` (RAW and USER_ENTERED) and ``POST /v4/spreadsheets/{id}:batchUpdate``
  (``updateCells``, ``appendDimension``, ``insertDimension``, ``deleteDimension``, ``moveDimension``,
  ``createDeveloperMetadata``, ``deleteDeveloperMetadata``, ``duplicateSheet``; any other request kind gets a
  Google-shaped 400).
- Developer metadata: ``values:batchGetByDataFilter``, ``values:batchUpdateByDataFilter`` (with a mode for
  each way Google might answer a write's empty item: :meth:`GoogleEmulator.answer_empty_items`) and
  ``developerMetadata:search``. Where the reference is silent the emulator takes the worst case it allows: a
  duplicated tab (:meth:`GoogleEmulator.duplicate_tab`) carries copies of its tags under new ids, and a copied
  spreadsheet (:meth:`GoogleEmulator.copy_spreadsheet`) keeps every tag with its id.
- Answers are gzip-compressed when the request has both ``Accept-Encoding: gzip`` and a user agent containing
  ``gzip``, as Google's performance guide describes; :attr:`requests` records each answer's size on the wire
  (``reply_bytes``) and uncompressed (``plain_bytes``).

Each cell holds either a typed value (str, int, float, bool) or a :class:`Formula` with its computed
value, and reads honour ``valueRenderOption`` FORMATTED_VALUE / UNFORMATTED_VALUE / FORMULA and drop
trailing empty cells and rows as Google does. Known simplifications, on purpose: there is no formula
engine (a formula written through the API computes to an empty value; seed formulas with their value
through :meth:`GoogleEmulator.set_formula`), number formats are Google's "Automatic" only, and inserting
or deleting rows does not rewrite the references inside formulas.

Tests switch faults per emulator (:meth:`fail_token`, :meth:`fail_sheets`, :meth:`grant_only`,
:meth:`stop` for a closed port), read :attr:`calls` (counts by kind) and :attr:`requests` (method, path,
kind, status; never a token or secret), and edit the sheet directly, as a person would, through
:meth:`set_sheet`, :meth:`set_cell`, :meth:`set_formula`, :meth:`insert_row`, :meth:`delete_row`,
:meth:`sort_rows`, or through a hook run just before a given kind of request (:meth:`before`).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from jada_pipelines.emulators._server import LocalServer

SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
SHEETS_READONLY_SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
_READ_SCOPES = {
    SHEETS_SCOPE,
    SHEETS_READONLY_SCOPE,
    DRIVE_SCOPE,
    "https://www.googleapis.com/auth/drive.readonly",
}
_WRITE_SCOPES = {SHEETS_SCOPE, DRIVE_SCOPE}
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_SECONDS = 3599
# Google's default size for a new tab.
DEFAULT_ROWS, DEFAULT_COLUMNS = 1000, 26

RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
# https://developers.google.com/sheets/api/reference/rest/v4/DateTimeRenderOption
DATE_TIME_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
# NumberFormatType values whose cells are "date, time, datetime, and duration fields" for dateTimeRenderOption
# (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets/cells#NumberFormatType).
DATE_TIME_TYPES = ("DATE", "TIME", "DATE_TIME")

# Token-endpoint faults: (HTTP status, body). Bodies are those Google's endpoint returns.
TOKEN_FAULTS: dict[str, tuple[int, Any]] = {
    "invalid_grant": (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    ),
    "invalid_rapt": (
        400,
        {
            "error": "invalid_grant",
            "error_description": "reauth related error (invalid_rapt)",
            "error_uri": "https://support.google.com/a/answer/9368756",
            "error_subtype": "invalid_rapt",
        },
    ),
    "rapt_required": (
        400,
        {
            "error": "invalid_grant",
            "error_description": "reauth related error (rapt_required)",
            "error_uri": "https://support.google.com/a/answer/9368756",
            "error_subtype": "rapt_required",
        },
    ),
    "invalid_scope": (400, {"error": "invalid_scope", "error_description": "Bad Request"}),
    "deleted_client": (
        401,
        {"error": "deleted_client", "error_description": "The OAuth client was deleted."},
    ),
    "invalid_client": (
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
    ),
    "unavailable": (503, {"error": "internal_failure", "error_description": "Backend Error"}),
    "rate_limited": (429, {"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"}),
    "bad_gateway": (
        502,
        "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    ),
}

# Sheets API faults by HTTP status: (status text, message), as Google's JSON error bodies carry them.
SHEETS_FAULTS: dict[int, tuple[str, str]] = {
    # A request refused as written; Google's message names the field (AIP-193 INVALID_ARGUMENT).
    400: (
        "INVALID_ARGUMENT",
        "Invalid value at 'data[0]' (type.googleapis.com/google.apps.sheets.v4.DataFilterValueRange)",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' "
        "of service 'sheets.googleapis.com'.",
    ),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
}
_HTML_502 = "<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title><p>That's an error.</p></html>"

SHEETS_KINDS = (
    "metadata",
    "values_get",
    "batch_get",
    "values_update",
    "values_batch_update",
    "batch_update",
    "batch_get_by_data_filter",
    "values_batch_update_by_data_filter",
    "developer_metadata_search",
)
# How the emulator answers the key column's empty item (``{"dataFilter": ..., "values": [[]]}``) of a
# values:batchUpdateByDataFilter with includeValuesInResponse. The reference says updatedData holds "the values
# of the cells in the range matched by the dataFilter after all updates were applied"
# (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdateByDataFilter,
# UpdateValuesByDataFilterResponse), but no recorded real answer to an empty item exists, so the two other ways
# Google could answer are modes: "refuse" (400 INVALID_ARGUMENT for the whole batch, which Google applies
# atomically) and "omit" (the item is applied but its response has no updatedData).
EMPTY_ITEM_ANSWERS = ("echo", "refuse", "omit")
# Developer metadata: https://developers.google.com/sheets/api/guides/metadata
_LOOKUP_FIELDS = ("metadataId", "metadataKey", "metadataValue", "locationType", "visibility")


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
class _Tab:
    title: str
    sheet_id: int
    rows: list[list[Any]]
    row_count: int
    column_count: int


@dataclass
class _Spreadsheet:
    spreadsheet_id: str
    title: str
    tabs: list[_Tab] = field(default_factory=list)
    time_zone: str = "Etc/GMT"
    # DeveloperMetadata resources; a dimensionRange location moves with the rows or columns it is on.
    developer_metadata: list[dict] = field(default_factory=list)


class SheetsError(Exception):
    """A Google-shaped API error raised inside the emulator and sent back as ``{"error": {...}}``."""

    def __init__(self, code: int, status: str, message: str, reason: str | None = None):
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason


def _invalid(message: str) -> SheetsError:
    return SheetsError(400, "INVALID_ARGUMENT", message)


# ---------------------------------------------------------------------------------------------- A1 notation
# Written apart from port_sheet.a1's helpers on purpose: the stand-in must parse ranges as Google does,
# so that a quoting bug in the application shows up as a failed test instead of being mirrored here.


def column_letter(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA"."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def column_index(letters: str) -> int:
    """ "A" -> 0, "AA" -> 26."""
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - 64
    return index - 1


_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


@dataclass(frozen=True)
class GridRange:
    """A parsed A1 range: zero-based, end-exclusive; ``None`` ends are open (to the grid's edge)."""

    tab: str | None
    row_start: int = 0
    row_end: int | None = None
    col_start: int = 0
    col_end: int | None = None


def parse_a1(a1: str) -> GridRange:
    """Parse ``'My Tab'!A1:C10``, ``Tab!A:C``, ``Tab!2:5``, ``Tab``, ``A1:B2`` (first tab)."""
    tab, cells = _split_tab(a1)
    if cells is None:
        return GridRange(tab)
    start, _, end = cells.partition(":")
    c0, r0 = _parse_cell(start, a1)
    c1, r1 = _parse_cell(end or start, a1)
    if not end and (c0 is None or r0 is None):
        raise _invalid(f"Unable to parse range: {a1}")
    # Google accepts the corners in either order ("B5:A1" is A1:B5) and answers with the normalised range.
    if c0 is not None and c1 is not None and c1 < c0:
        c0, c1 = c1, c0
    if r0 is not None and r1 is not None and r1 < r0:
        r0, r1 = r1, r0
    return GridRange(
        tab,
        row_start=(r0 or 1) - 1,
        row_end=r1,
        col_start=c0 if c0 is not None else 0,
        col_end=c1 + 1 if c1 is not None else None,
    )


def _split_tab(a1: str) -> tuple[str | None, str | None]:
    if a1.startswith("'"):
        match = re.match(r"^'((?:[^']|'')*)'(?:!(.*))?$", a1)
        if not match:
            raise _invalid(f"Unable to parse range: {a1}")
        return match.group(1).replace("''", "'"), match.group(2)
    if "!" in a1:
        tab, cells = a1.split("!", 1)
        return tab, cells
    if ":" in a1 or (_CELL.match(a1) and re.search(r"\d", a1)):
        return None, a1
    return a1, None


def _parse_cell(text: str, a1: str) -> tuple[int | None, int | None]:
    match = _CELL.match(text)
    if not match or not text:
        raise _invalid(f"Unable to parse range: {a1}")
    letters, digits = match.groups()
    return (column_index(letters) if letters else None), (int(digits) if digits else None)


def quote_tab(title: str) -> str:
    """Google quotes a tab name in a range only when it must."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) and not re.fullmatch(r"[A-Za-z]{1,3}\d+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


def format_a1(title: str, row_start: int, row_end: int, col_start: int, col_end: int) -> str:
    first = f"{column_letter(col_start)}{row_start + 1}"
    last = f"{column_letter(col_end - 1)}{row_end}"
    return f"{quote_tab(title)}!{first}" + ("" if first == last else f":{last}")


# ------------------------------------------------------------------------------------------ cell values


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


def _from_extended_value(data: dict) -> Any:
    """A CellData's ``userEnteredValue`` (ExtendedValue) as a stored cell."""
    entered = data.get("userEnteredValue")
    if entered is None:
        return None
    kinds = {"stringValue", "numberValue", "boolValue", "formulaValue"} & entered.keys()
    if len(kinds) != 1:
        raise _invalid(
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


# ------------------------------------------------------------------------------------------- the server


class GoogleEmulator(LocalServer):
    """LOCAL EMULATOR of Google OAuth + Sheets v4 on 127.0.0.1 (not Google).

    Example::

        emulator = GoogleEmulator()
        base_url = emulator.start()
        refresh_token = emulator.issue_refresh_token()
        emulator.set_sheet("sheet-1", "Ports", [["id", "name"], ["p1", "Lisbon"]])
        ...
        emulator.stop()
    """

    thread_name = "google-emulator"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__(host=host, port=port)
        # The clock quota windows are measured on; a test can drive it together with the client's waits.
        self.clock = clock
        self._disabled_project: str | None = None
        self._lock = threading.RLock()
        self.client_id = "emulated-client.apps.googleusercontent.com"
        self.client_secret = "emulated-client-secret-" + secrets.token_hex(8)
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._spreadsheets: dict[str, _Spreadsheet] = {}
        self._refresh_tokens: dict[str, tuple[str, ...]] = {}
        self._auth_codes: dict[str, tuple[str, ...]] = {}
        self._access_tokens: dict[str, tuple[tuple[str, ...], float]] = {}
        self._service_accounts: set[str] = set()
        self._token_fault: tuple[str, int | None] | None = None
        self._sheets_fault: (
            tuple[int, frozenset[str] | None, int | None, float | None, float | None] | None
        ) = None
        self._granted_override: tuple[str, ...] | None = None
        self._consent_error: str | None = None
        self._hooks: list[tuple[str, Callable[[GoogleEmulator], None], bool]] = []
        self._empty_item_answer = "echo"

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("_BoundHandler", (_Handler,), {"emulator": self})

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.base_url}/o/oauth2/auth"

    # -- credentials -------------------------------------------------------------------------------------

    def issue_refresh_token(self, scopes: Sequence[str] = (SHEETS_SCOPE,)) -> str:
        """A refresh token this emulator will honour, granted ``scopes``."""
        token = "1//emulated-refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = tuple(scopes)
        return token

    def revoke_refresh_token(self, token: str) -> None:
        """The user removed the app's access: the token now gets ``invalid_grant``."""
        with self._lock:
            self._refresh_tokens.pop(token, None)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired, so the next Sheets call gets a 401."""
        with self._lock:
            self._access_tokens.clear()

    def register_service_account(self, email: str) -> None:
        """Accept JWT-bearer grants whose ``iss`` is ``email`` (the signature is not checked)."""
        with self._lock:
            self._service_accounts.add(email)

    def authorized_user_info(
        self,
        scopes: Sequence[str] = (SHEETS_SCOPE,),
        *,
        publishing_status: str = "production",
        consented_at: str | None = None,
    ) -> dict:
        """The content of an authorized-user token file, as `jada auth google` writes it, for this emulator."""
        info = {
            "type": "authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.issue_refresh_token(scopes),
            "token_uri": self.token_uri,
            "scopes": list(scopes),
            "publishing_status": publishing_status,
        }
        if consented_at is not None:
            info["consented_at"] = consented_at
        return info

    def client_config(self) -> dict:
        """An OAuth "installed app" client-secrets file's content, pointed at this emulator."""
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    # -- faults ------------------------------------------------------------------------------------------

    def fail_token(self, fault: str, *, times: int | None = None) -> None:
        """Answer token requests with ``fault`` (a key of :data:`TOKEN_FAULTS`), every time or ``times`` times."""
        if fault not in TOKEN_FAULTS:
            raise ValueError(f"unknown token fault {fault!r}; choose from {sorted(TOKEN_FAULTS)}")
        with self._lock:
            self._token_fault = (fault, times)

    def fail_sheets(
        self,
        status: int,
        *,
        kinds: Iterable[str] | None = None,
        times: int | None = None,
        for_seconds: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer Sheets requests (of ``kinds``, default all) with HTTP ``status``: every time, ``times``
        times, or until ``for_seconds`` have passed on :attr:`clock` (a quota window that has to run out).

        ``status`` is 400, 403, 404, 429, 500 or 503 (Google's JSON error body) or 502 (an HTML page).
        ``retry_after`` adds a ``Retry-After`` header (seconds) to the answers.
        """
        if status not in SHEETS_FAULTS and status != 502:
            raise ValueError(f"unsupported Sheets fault status {status}")
        until = self.clock() + for_seconds if for_seconds is not None else None
        with self._lock:
            self._sheets_fault = (status, frozenset(kinds) if kinds else None, times, until, retry_after)

    def answer_empty_items(self, answer: str) -> None:
        """How a write's empty item (``"values": [[]]``) is answered: ``echo`` (updatedData, as the reference
        reads), ``refuse`` (Google's 400 INVALID_ARGUMENT for the batch) or ``omit`` (no updatedData)."""
        if answer not in EMPTY_ITEM_ANSWERS:
            raise ValueError(f"unknown answer {answer!r}; choose from {EMPTY_ITEM_ANSWERS}")
        with self._lock:
            self._empty_item_answer = answer

    def disable_api(self, project: str = "123456789012") -> None:
        """The Sheets API is not enabled in Cloud project ``project`` (the OAuth client's): every Sheets
        request gets Google's 403 SERVICE_DISABLED answer, with its ErrorInfo and activation link."""
        with self._lock:
            self._disabled_project = project

    def grant_only(self, scopes: Sequence[str]) -> None:
        """From now on, token responses grant only ``scopes`` (the user unticked a box on the consent page)."""
        with self._lock:
            self._granted_override = tuple(scopes)

    def decline_consent(self, error: str = "access_denied") -> None:
        """The person clicks Cancel on the consent page: the redirect carries ``error`` instead of a code."""
        with self._lock:
            self._consent_error = error

    def clear_faults(self) -> None:
        with self._lock:
            self._token_fault = self._sheets_fault = self._granted_override = self._consent_error = None
            self._disabled_project = None
            self._empty_item_answer = "echo"

    def before(self, kind: str, hook: Callable[[GoogleEmulator], None], *, once: bool = True) -> None:
        """Run ``hook(emulator)`` just before serving the next request of ``kind`` (e.g. a person's edit)."""
        with self._lock:
            self._hooks.append((kind, hook, once))

    def sheets_calls(self) -> int:
        """Sheets API calls received so far (token requests not included)."""
        return sum(self.calls[kind] for kind in SHEETS_KINDS)

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    # -- direct sheet access (what a person does in the browser) ----------------------------------------

    def set_sheet(
        self,
        spreadsheet_id: str,
        tab: str,
        rows: Sequence[Sequence[Any]],
        *,
        row_count: int | None = None,
        column_count: int | None = None,
    ) -> None:
        """Create or replace tab ``tab`` with ``rows`` (typed values, ``None`` for empty, or :class:`Formula`)."""
        width = max((len(row) for row in rows), default=0)
        grid = _Tab(
            title=tab,
            sheet_id=0,
            rows=[list(row) for row in rows],
            row_count=row_count or max(DEFAULT_ROWS, len(rows)),
            column_count=column_count or max(DEFAULT_COLUMNS, width),
        )
        with self._lock:
            book = self._spreadsheets.setdefault(
                spreadsheet_id, _Spreadsheet(spreadsheet_id, title=f"Emulated {spreadsheet_id}")
            )
            existing = next((t for t in book.tabs if t.title == tab), None)
            if existing is not None:
                grid.sheet_id = existing.sheet_id
                book.tabs[book.tabs.index(existing)] = grid
            else:
                grid.sheet_id = max((t.sheet_id for t in book.tabs), default=-1) + 1
                book.tabs.append(grid)

    def duplicate_tab(self, spreadsheet_id: str, tab: str, new_title: str | None = None) -> int:
        """A person's "Duplicate" on tab ``tab``: a copy titled "<tab> (copy)" (or ``new_title``) with the
        tab's column and row metadata copied along. Returns the copy's sheetId."""
        with self._lock:
            book = self._book(spreadsheet_id)
            source = self._tab(spreadsheet_id, tab)
            spec = {"sourceSheetId": source.sheet_id, "newSheetName": new_title or f"{tab} (copy)"}
            reply = self._duplicate_sheet(book, spec, "duplicate_tab")
            return reply["duplicateSheet"]["properties"]["sheetId"]

    def copy_spreadsheet(self, spreadsheet_id: str, new_id: str) -> None:
        """Drive's "Make a copy" of a whole spreadsheet: every tab with its sheetId, and every developer
        metadata entry with its id, key, value and location. Google's reference says nothing about what a
        copy keeps (https://developers.google.com/drive/api/reference/rest/v3/files/copy), so the emulator
        keeps everything: the worst case for an app that finds its columns by metadata."""
        with self._lock:
            self._spreadsheets[new_id] = copy.deepcopy(self._book(spreadsheet_id))
            self._spreadsheets[new_id].spreadsheet_id = new_id

    def delete_spreadsheet(self, spreadsheet_id: str) -> None:
        with self._lock:
            self._spreadsheets.pop(spreadsheet_id, None)

    def sheet_values(
        self,
        spreadsheet_id: str,
        tab: str,
        *,
        render_option: str = "UNFORMATTED_VALUE",
        date_time_option: str = "SERIAL_NUMBER",
    ) -> list[list]:
        """The tab's values as ``values.get`` would return them (trailing empties dropped)."""
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            return _read(grid, GridRange(tab), render_option, date_time_option)[1]

    def set_time_zone(self, spreadsheet_id: str, time_zone: str) -> None:
        """File > Settings > Time zone: the zone the sheet's dates and times are wall-clock times of."""
        with self._lock:
            self._book(spreadsheet_id).time_zone = time_zone

    def enter(self, spreadsheet_id: str, tab: str, a1: str, text: str) -> None:
        """A person types ``text`` into the cell at ``a1``: parsed as the sheet's UI (and USER_ENTERED) does."""
        self.set_cell(spreadsheet_id, tab, a1, parse_user_entered(text))

    def cell(self, spreadsheet_id: str, tab: str, a1: str) -> Any:
        """The stored cell at ``a1`` (a typed value, a :class:`Formula`, or ``None``)."""
        row, col = self._cell_index(a1)
        with self._lock:
            rows = self._tab(spreadsheet_id, tab).rows
            return rows[row][col] if row < len(rows) and col < len(rows[row]) else None

    def set_cell(self, spreadsheet_id: str, tab: str, a1: str, value: Any) -> None:
        row, col = self._cell_index(a1)
        with self._lock:
            _put(self._tab(spreadsheet_id, tab), row, col, value)

    def set_formula(self, spreadsheet_id: str, tab: str, a1: str, formula: str, value: Any = None) -> None:
        self.set_cell(spreadsheet_id, tab, a1, Formula(formula, value))

    def insert_row(self, spreadsheet_id: str, tab: str, row_number: int, values: Sequence[Any] = ()) -> None:
        """Insert a row so that it becomes 1-based row ``row_number``; the rows below move down."""
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            _pad_rows(grid, row_number - 1)
            grid.rows.insert(row_number - 1, list(values))
            grid.row_count += 1
            start = row_number - 1
            _remap_metadata(
                self._book(spreadsheet_id), grid.sheet_id, "ROWS", lambda i: i if i < start else i + 1
            )

    def insert_column(self, spreadsheet_id: str, tab: str, column: str) -> None:
        """Insert an empty column so that it becomes column ``column`` (a letter); the columns from there
        move right, with their developer metadata (Insert > Column left)."""
        self._edit_dimension(spreadsheet_id, tab, "insertDimension", "COLUMNS", column_index(column), 1)

    def delete_column(self, spreadsheet_id: str, tab: str, column: str) -> None:
        """Delete column ``column`` (a letter) and its developer metadata; the columns after it move left."""
        self._edit_dimension(spreadsheet_id, tab, "deleteDimension", "COLUMNS", column_index(column), 1)

    def move_column(self, spreadsheet_id: str, tab: str, column: str, *, before: str) -> None:
        """Drag column ``column`` so that it sits just before column ``before`` (letters as they are now)."""
        with self._lock:
            book = self._book(spreadsheet_id)
            sheet_id = self._tab(spreadsheet_id, tab).sheet_id
            start = column_index(column)
            spec = {
                "source": {
                    "sheetId": sheet_id,
                    "dimension": "COLUMNS",
                    "startIndex": start,
                    "endIndex": start + 1,
                },
                "destinationIndex": column_index(before),
            }
            self._move_dimension(book, spec, "move_column")

    def _edit_dimension(
        self, spreadsheet_id: str, tab: str, request: str, dimension: str, start: int, count: int
    ) -> None:
        with self._lock:
            book = self._book(spreadsheet_id)
            span = {
                "sheetId": self._tab(spreadsheet_id, tab).sheet_id,
                "dimension": dimension,
                "startIndex": start,
                "endIndex": start + count,
            }
            _BATCH_REQUESTS[request](self, book, {"range": span}, request)

    def developer_metadata(self, spreadsheet_id: str) -> list[dict]:
        """Every developer metadata entry of the spreadsheet, with its current location."""
        with self._lock:
            return copy.deepcopy(self._book(spreadsheet_id).developer_metadata)

    def append_row(self, spreadsheet_id: str, tab: str, values: Sequence[Any]) -> None:
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            self.insert_row(spreadsheet_id, tab, len(grid.rows) + 1, values)

    def delete_row(self, spreadsheet_id: str, tab: str, row_number: int) -> None:
        """Delete 1-based row ``row_number``; the rows below move up."""
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            if row_number - 1 < len(grid.rows):
                del grid.rows[row_number - 1]
            grid.row_count -= 1
            gone = row_number - 1
            _remap_metadata(
                self._book(spreadsheet_id),
                grid.sheet_id,
                "ROWS",
                lambda i: i if i < gone else i - 1,
                deleted=range(gone, gone + 1),
            )

    def sort_rows(
        self,
        spreadsheet_id: str,
        tab: str,
        *,
        column: int = 0,
        reverse: bool = False,
        header_rows: int = 1,
    ) -> None:
        """Sort the rows below the header by the value in 0-based ``column``, as "Sort sheet" does."""
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            head, body = grid.rows[:header_rows], grid.rows[header_rows:]

            def key(row: list[Any]) -> tuple[int, str]:
                value = render(row[column] if column < len(row) else None, "UNFORMATTED_VALUE")
                return (0, f"{value:020.6f}") if isinstance(value, int | float) else (1, str(value))

            grid.rows = head + sorted(body, key=key, reverse=reverse)

    # -- internals ---------------------------------------------------------------------------------------

    @staticmethod
    def _cell_index(a1: str) -> tuple[int, int]:
        grid_range = parse_a1(a1)
        return grid_range.row_start, grid_range.col_start

    def _book(self, spreadsheet_id: str) -> _Spreadsheet:
        book = self._spreadsheets.get(spreadsheet_id)
        if book is None:
            raise SheetsError(404, "NOT_FOUND", "Requested entity was not found.")
        return book

    def _tab(self, spreadsheet_id: str, title: str | None) -> _Tab:
        book = self._book(spreadsheet_id)
        if title is None:
            return book.tabs[0]
        for tab in book.tabs:
            if tab.title == title:
                return tab
        raise _invalid(f"Unable to parse range: {quote_tab(title)}")

    def _tab_by_id(self, book: _Spreadsheet, sheet_id: int, where: str) -> _Tab:
        for tab in book.tabs:
            if tab.sheet_id == sheet_id:
                return tab
        raise _invalid(f"Invalid {where}: No grid with id: {sheet_id}")

    def _take_token_fault(self) -> str | None:
        with self._lock:
            if self._token_fault is None:
                return None
            fault, times = self._token_fault
            if times is not None:
                self._token_fault = (fault, times - 1) if times > 1 else None
            return fault

    def _take_sheets_fault(self, kind: str) -> tuple[int, float | None] | None:
        with self._lock:
            if self._sheets_fault is None:
                return None
            status, kinds, times, until, retry_after = self._sheets_fault
            if until is not None and self.clock() >= until:
                self._sheets_fault = None
                return None
            if kinds is not None and kind not in kinds:
                return None
            if times is not None:
                self._sheets_fault = (status, kinds, times - 1, until, retry_after) if times > 1 else None
            return status, retry_after

    def _run_hooks(self, kind: str) -> None:
        with self._lock:
            due = [h for h in self._hooks if h[0] == kind]
            self._hooks = [h for h in self._hooks if not (h[0] == kind and h[2])]
        for _, hook, _ in due:
            hook(self)

    # -- OAuth ---------------------------------------------------------------------------------------------

    def handle_token(self, form: dict[str, str]) -> tuple[int, Any]:
        fault = self._take_token_fault()
        if fault is not None:
            return TOKEN_FAULTS[fault]
        grant = form.get("grant_type")
        if grant == JWT_BEARER_GRANT:
            return self._jwt_grant(form.get("assertion", ""))
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return TOKEN_FAULTS["invalid_client"]
        with self._lock:
            if grant == "refresh_token":
                granted = self._refresh_tokens.get(form.get("refresh_token", ""))
                refresh_token = None
            elif grant == "authorization_code":
                granted = self._auth_codes.pop(form.get("code", ""), None)
                refresh_token = self.issue_refresh_token(granted) if granted is not None else None
            else:
                return 400, {
                    "error": "unsupported_grant_type",
                    "error_description": f"Invalid grant_type: {grant}",
                }
        if granted is None:
            return TOKEN_FAULTS["invalid_grant"]
        requested = tuple(form["scope"].split()) if form.get("scope") else granted
        if not set(requested) <= set(granted):
            return TOKEN_FAULTS["invalid_scope"]
        body = self._access_token_body(self._granted_override or requested)
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return 200, body

    def _jwt_grant(self, assertion: str) -> tuple[int, Any]:
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if claims.get("iss") not in self._service_accounts:
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
        scopes = tuple(str(claims.get("scope", "")).split())
        body = self._access_token_body(self._granted_override or scopes)
        body.pop("scope")  # Google's JWT-bearer response carries no scope field
        return 200, body

    def _access_token_body(self, scopes: Sequence[str]) -> dict[str, Any]:
        token = "ya29.emulated-" + secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[token] = (tuple(scopes), time.time() + ACCESS_TOKEN_SECONDS)
        return {
            "access_token": token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }

    def handle_consent(self, query: dict[str, str]) -> str:
        """The consent page, already approved: returns the redirect URL carrying a fresh code."""
        state = query.get("state", "")
        if self._consent_error is not None:
            return query["redirect_uri"] + "?" + urlencode({"state": state, "error": self._consent_error})
        code = "4/emulated-code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._auth_codes[code] = tuple(query.get("scope", SHEETS_SCOPE).split())
        return query["redirect_uri"] + "?" + urlencode({"state": state, "code": code})

    def authorize(self, authorization: str | None, kind: str) -> None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            scopes, expires = self._access_tokens.get(token, ((), 0.0))
        if expires < time.time():
            raise SheetsError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
            )
        # developerMetadata.search needs the read-write scopes (its reference page lists no readonly scope).
        reads = ("metadata", "values_get", "batch_get", "batch_get_by_data_filter")
        needed = _READ_SCOPES if kind in reads else _WRITE_SCOPES
        if not needed & set(scopes):
            raise SheetsError(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            )

    # -- Sheets ----------------------------------------------------------------------------------------------

    def handle_sheets(self, kind: str, spreadsheet_id: str, a1: str | None, query: dict, body: Any) -> Any:
        with self._lock:
            book = self._book(spreadsheet_id)
            if kind == "metadata":
                return self._metadata(book)
            if kind == "values_get":
                return self._values_get(book, a1 or "", query)
            if kind == "batch_get":
                ranges = query.get("ranges", [])
                return {
                    "spreadsheetId": book.spreadsheet_id,
                    "valueRanges": [self._values_get(book, r, query) for r in ranges],
                }
            if kind == "values_update":
                data = dict(body or {}, range=a1)
                option = _single(query.get("valueInputOption"))
                reply = self._values_write(book, [data], option)
                return dict(reply["responses"][0])
            if kind == "values_batch_update":
                body = body or {}
                return self._values_write(book, body.get("data", []), body.get("valueInputOption"))
            if kind == "batch_get_by_data_filter":
                return self._batch_get_by_data_filter(book, body or {})
            if kind == "values_batch_update_by_data_filter":
                return self._values_write_by_data_filter(book, body or {})
            if kind == "developer_metadata_search":
                return self._search_developer_metadata(book, body or {})
            return self._batch_update(book, (body or {}).get("requests", []))

    @staticmethod
    def _metadata(book: _Spreadsheet) -> dict:
        return {
            "spreadsheetId": book.spreadsheet_id,
            "properties": {"title": book.title, "locale": "en_US", "timeZone": book.time_zone},
            "sheets": [
                {
                    "properties": {
                        "sheetId": tab.sheet_id,
                        "title": tab.title,
                        "index": index,
                        "sheetType": "GRID",
                        "gridProperties": {"rowCount": tab.row_count, "columnCount": tab.column_count},
                    }
                }
                for index, tab in enumerate(book.tabs)
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit",
        }

    def _values_get(self, book: _Spreadsheet, a1: str, query: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/get: the query's
        # valueRenderOption, dateTimeRenderOption (default SERIAL_NUMBER) and majorDimension (default ROWS).
        option = _single(query.get("valueRenderOption")) or "FORMATTED_VALUE"
        if option not in RENDER_OPTIONS:
            raise _invalid(f"Invalid value at 'value_render_option' ({option})")
        date_option = _single(query.get("dateTimeRenderOption")) or "SERIAL_NUMBER"
        if date_option not in DATE_TIME_RENDER_OPTIONS:
            raise _invalid(f"Invalid value at 'date_time_render_option' ({date_option})")
        dimension = _single(query.get("majorDimension")) or "ROWS"
        if dimension not in ("ROWS", "COLUMNS"):
            raise _invalid(f"Invalid value at 'major_dimension' ({dimension})")
        grid_range = parse_a1(a1)
        tab = self._tab(book.spreadsheet_id, grid_range.tab)
        return _value_range(tab, grid_range, option, date_option, dimension)

    # -- data filters and developer metadata (https://developers.google.com/sheets/api/guides/metadata,
    # https://developers.google.com/sheets/api/reference/rest/v4/DataFilter) -----------------------------

    def _resolve(self, book: _Spreadsheet, data_filter: dict, where: str) -> list[tuple[_Tab, GridRange]]:
        """Where a DataFilter points now: an A1 range, a grid range, or the location of each metadata match
        (a whole column or row for a dimensionRange location: the metadata has moved with it)."""
        if not isinstance(data_filter, dict) or len(data_filter) != 1:
            raise _invalid(f"Invalid {where}: exactly one of a1Range, gridRange, developerMetadataLookup.")
        ((kind, spec),) = data_filter.items()
        if kind == "a1Range":
            grid_range = parse_a1(spec)
            return [(self._tab(book.spreadsheet_id, grid_range.tab), grid_range)]
        if kind == "gridRange":
            tab = self._tab_by_id(book, spec.get("sheetId", 0), where)
            return [
                (
                    tab,
                    GridRange(
                        tab.title,
                        spec.get("startRowIndex", 0),
                        spec.get("endRowIndex"),
                        spec.get("startColumnIndex", 0),
                        spec.get("endColumnIndex"),
                    ),
                )
            ]
        if kind != "developerMetadataLookup":
            raise _invalid(f"Invalid {where}: unknown data filter {kind}.")
        resolved = []
        for entry in self._lookup(book, spec, where):
            span = entry["location"]["dimensionRange"]
            tab = self._tab_by_id(book, span["sheetId"], where)
            if span["dimension"] == "COLUMNS":
                grid_range = GridRange(tab.title, col_start=span["startIndex"], col_end=span["endIndex"])
            else:
                grid_range = GridRange(tab.title, row_start=span["startIndex"], row_end=span["endIndex"])
            resolved.append((tab, grid_range))
        return resolved

    @staticmethod
    def _lookup(book: _Spreadsheet, lookup: dict, where: str) -> list[dict]:
        if "metadataLocation" in lookup or "locationMatchingStrategy" in lookup:
            raise _invalid(
                f"Invalid {where}: metadataLocation is not supported by the local Google emulator."
            )
        wanted = {name: lookup[name] for name in _LOOKUP_FIELDS if name in lookup}
        if not wanted:
            raise _invalid(f"Invalid {where}: a developerMetadataLookup needs at least one field.")
        return [
            entry
            for entry in book.developer_metadata
            if all(
                (entry["location"]["locationType"] if name == "locationType" else entry.get(name)) == value
                for name, value in wanted.items()
            )
        ]

    def _batch_get_by_data_filter(self, book: _Spreadsheet, body: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchGetByDataFilter:
        # the options are body fields here; each matched range comes with the filter that matched it.
        option = body.get("valueRenderOption") or "FORMATTED_VALUE"
        date_option = body.get("dateTimeRenderOption") or "SERIAL_NUMBER"
        dimension = body.get("majorDimension") or "ROWS"
        if option not in RENDER_OPTIONS or date_option not in DATE_TIME_RENDER_OPTIONS:
            raise _invalid("Invalid value at 'value_render_option' or 'date_time_render_option'")
        matched = []
        for index, data_filter in enumerate(body.get("dataFilters") or []):
            for tab, grid_range in self._resolve(book, data_filter, f"data_filters[{index}]"):
                matched.append(
                    {
                        "valueRange": _value_range(tab, grid_range, option, date_option, dimension),
                        "dataFilters": [data_filter],
                    }
                )
        return {"spreadsheetId": book.spreadsheet_id, "valueRanges": matched}

    def _values_write_by_data_filter(self, book: _Spreadsheet, body: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdateByDataFilter
        # and DataFilterValueRange: values are written from the matched range's top-left corner; values
        # beyond the matched range fail the request; fewer values leave the rest of the range as it is.
        planned, empty = [], set()
        for index, item in enumerate(body.get("data") or []):
            where = f"data[{index}]"
            if item.get("values") == [[]]:
                if self._empty_item_answer == "refuse":
                    raise _invalid(
                        f"Invalid {where}: Requested writing within range, but no values were given."
                    )
                empty.add(index)
            for tab, grid_range in self._resolve(book, item.get("dataFilter"), where):
                planned.append((*self._plan_write(tab, grid_range, item, where, limit=True), index))
        reply = self._write_planned(book, [entry[:-1] for entry in planned], body.get("valueInputOption"))
        if body.get("includeValuesInResponse"):
            # "If the range to write was larger than the range actually written, the response includes
            # all values in the requested range" (BatchUpdateValuesByDataFilterRequest.includeValuesInResponse).
            option = body.get("responseValueRenderOption") or "FORMATTED_VALUE"
            date_option = body.get("responseDateTimeRenderOption") or "SERIAL_NUMBER"
            for response, (tab, grid_range, *_rest, index) in zip(reply["responses"], planned, strict=True):
                if index in empty and self._empty_item_answer == "omit":
                    continue
                response["updatedData"] = _value_range(tab, grid_range, option, date_option, "ROWS")
        for response, entry in zip(reply["responses"], planned, strict=True):
            response["dataFilter"] = entry[-2]
        return reply

    def _create_developer_metadata(self, book: _Spreadsheet, spec: dict, where: str) -> dict:
        metadata = copy.deepcopy(spec.get("developerMetadata") or {})
        location = metadata.get("location") or {}
        span = location.get("dimensionRange")
        if not metadata.get("metadataKey") or span is None:
            raise _invalid(
                f"Invalid {where}: metadataKey and a dimensionRange location are required by the local emulator."
            )
        tab = self._tab_by_id(book, span.get("sheetId", 0), where)
        limit = tab.column_count if span.get("dimension") == "COLUMNS" else tab.row_count
        if not 0 <= span.get("startIndex", -1) < span.get("endIndex", -1) <= limit:
            raise _invalid(f"Invalid {where}: the dimensionRange is outside the grid.")
        # DeveloperMetadata.metadataId: "The spreadsheet-scoped unique ID that identifies the metadata. IDs may
        # be specified when metadata is created, otherwise one will be randomly generated and assigned. Must be
        # positive." (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.developerMetadata)
        if "metadataId" in metadata:
            if not isinstance(metadata["metadataId"], int) or not 0 < metadata["metadataId"] < 2**31:
                raise _invalid(f"Invalid {where}: metadataId must be a positive 32-bit integer.")
            if any(m["metadataId"] == metadata["metadataId"] for m in book.developer_metadata):
                raise _invalid(f"Invalid {where}: metadataId {metadata['metadataId']} is already in use.")
        else:
            metadata["metadataId"] = _new_metadata_id(book)
        metadata.setdefault("visibility", "DOCUMENT")
        location["locationType"] = "COLUMN" if span["dimension"] == "COLUMNS" else "ROW"
        metadata["location"] = location
        book.developer_metadata.append(metadata)
        return {"createDeveloperMetadata": {"developerMetadata": copy.deepcopy(metadata)}}

    def _search_developer_metadata(self, book: _Spreadsheet, body: dict) -> dict:
        # spreadsheets.developerMetadata.search: every entry selected by any of the lookups, each with the
        # filters that matched it (https://developers.google.com/sheets/api/reference/rest/v4/
        # spreadsheets.developerMetadata/search). Location filters (a1Range, gridRange) are not emulated.
        matched: list[dict] = []
        for index, data_filter in enumerate(body.get("dataFilters") or []):
            lookup = (data_filter or {}).get("developerMetadataLookup")
            if lookup is None:
                raise _invalid(
                    f"Invalid data_filters[{index}]: the local emulator searches by developerMetadataLookup only."
                )
            for entry in self._lookup(book, lookup, f"data_filters[{index}]"):
                found = next(
                    (m for m in matched if m["developerMetadata"]["metadataId"] == entry["metadataId"]), None
                )
                if found is None:
                    matched.append({"developerMetadata": copy.deepcopy(entry), "dataFilters": [data_filter]})
                else:
                    found["dataFilters"].append(data_filter)
        return {"matchedDeveloperMetadata": matched} if matched else {}

    def _duplicate_sheet(self, book: _Spreadsheet, spec: dict, where: str) -> dict:
        """DuplicateSheetRequest (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets/request
        #DuplicateSheetRequest): a copy of the tab's cells, inserted after it. The reference does not say
        whether the copy carries the source's developer metadata; the emulator copies every entry on the tab
        (same key, value, visibility, location on the copy) under new ids, the worst case it allows."""
        source = self._tab_by_id(book, spec.get("sourceSheetId", 0), where)
        title = spec.get("newSheetName") or f"Copy of {source.title}"
        if any(tab.title == title for tab in book.tabs):
            raise _invalid(
                f'Invalid {where}: A sheet with the name "{title}" already exists. Please enter another name.'
            )
        new_id = spec.get("newSheetId")
        if new_id is None:
            new_id = max(tab.sheet_id for tab in book.tabs) + 1
        elif any(tab.sheet_id == new_id for tab in book.tabs):
            raise _invalid(f"Invalid {where}: A sheet with the id {new_id} already exists.")
        copied = _Tab(title, new_id, copy.deepcopy(source.rows), source.row_count, source.column_count)
        at = spec.get("insertSheetIndex", book.tabs.index(source) + 1)
        book.tabs.insert(at, copied)
        for entry in list(book.developer_metadata):
            span = entry["location"].get("dimensionRange") or {}
            if span.get("sheetId") == source.sheet_id:
                twin = copy.deepcopy(entry)
                twin["metadataId"] = _new_metadata_id(book)
                twin["location"]["dimensionRange"]["sheetId"] = new_id
                book.developer_metadata.append(twin)
        properties = self._metadata(book)["sheets"][book.tabs.index(copied)]["properties"]
        return {"duplicateSheet": {"properties": properties}}

    def _delete_developer_metadata(self, book: _Spreadsheet, spec: dict, where: str) -> dict:
        lookup = (spec.get("dataFilter") or {}).get("developerMetadataLookup")
        if lookup is None:
            raise _invalid(f"Invalid {where}: the local emulator deletes by developerMetadataLookup only.")
        doomed = self._lookup(book, lookup, where)
        book.developer_metadata = [m for m in book.developer_metadata if m not in doomed]
        return {"deleteDeveloperMetadata": {"deletedDeveloperMetadata": copy.deepcopy(doomed)}}

    def _values_write(self, book: _Spreadsheet, data: list[dict], option: str | None) -> dict:
        planned = []
        for item in data:
            grid_range = parse_a1(item.get("range", ""))
            tab = self._tab(book.spreadsheet_id, grid_range.tab)
            planned.append(self._plan_write(tab, grid_range, item, item.get("range", "")))
        return self._write_planned(book, planned, option)

    @staticmethod
    def _plan_write(
        tab: _Tab, grid_range: GridRange, item: dict, where: str, *, limit: bool = False
    ) -> tuple:
        values = item.get("values") or []
        if item.get("majorDimension", "ROWS") == "COLUMNS":
            width = max((len(col) for col in values), default=0)
            values = [[col[r] if r < len(col) else None for col in values] for r in range(width)]
        width = max((len(row) for row in values), default=0)
        row_end = grid_range.row_start + len(values)
        col_end = grid_range.col_start + width
        if limit and (
            (grid_range.row_end is not None and row_end > grid_range.row_end)
            or (grid_range.col_end is not None and col_end > grid_range.col_end)
        ):
            raise _invalid(f"Invalid {where}: the values exceed the range matched by the data filter.")
        _check_bounds(tab, row_end, col_end, where)
        return (tab, grid_range, values, row_end, col_end, item.get("dataFilter"))

    def _write_planned(self, book: _Spreadsheet, planned: list[tuple], option: str | None) -> dict:
        if option not in ("RAW", "USER_ENTERED"):
            raise _invalid("'valueInputOption' is required but not specified")
        responses, cells = [], 0
        for tab, grid_range, values, row_end, col_end, _filter in planned:
            for r, row in enumerate(values):
                for c, value in enumerate(row):
                    if value is None:  # Google: "Null values will be skipped."
                        continue
                    stored = parse_user_entered(value) if option == "USER_ENTERED" else value
                    _put(
                        tab,
                        grid_range.row_start + r,
                        grid_range.col_start + c,
                        None if stored == "" else stored,
                    )
            written = sum(1 for row in values for v in row if v is not None)
            cells += written
            responses.append(
                {
                    "spreadsheetId": book.spreadsheet_id,
                    "updatedRange": format_a1(
                        tab.title, grid_range.row_start, row_end, grid_range.col_start, col_end
                    )
                    if values
                    else quote_tab(tab.title),
                    "updatedRows": sum(1 for row in values if any(v is not None for v in row)),
                    "updatedColumns": len({c for row in values for c, v in enumerate(row) if v is not None}),
                    "updatedCells": written,
                }
            )
        return {
            "spreadsheetId": book.spreadsheet_id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
            "totalUpdatedCells": cells,
            "totalUpdatedSheets": len({id(p[0]) for p in planned}),
            "responses": responses,
        }

    def _batch_update(self, book: _Spreadsheet, requests: list[dict]) -> dict:
        # Google applies a batch atomically: work on a copy and swap it in only if every request succeeds.
        staged = copy.copy(book)
        staged.tabs = [copy.copy(tab) for tab in book.tabs]
        for tab in staged.tabs:
            tab.rows = list(tab.rows)
        staged.developer_metadata = copy.deepcopy(book.developer_metadata)
        replies = []
        for index, request in enumerate(requests):
            if len(request) != 1:
                raise _invalid(f"Invalid requests[{index}]: exactly one kind of request must be set.")
            ((name, spec),) = request.items()
            apply = _BATCH_REQUESTS.get(name)
            if apply is None:
                raise _invalid(
                    f"Invalid requests[{index}]: {name} is not supported by the local Google emulator."
                )
            replies.append(apply(self, staged, spec, f"requests[{index}].{name}") or {})
        book.tabs, book.developer_metadata = staged.tabs, staged.developer_metadata
        return {"spreadsheetId": book.spreadsheet_id, "replies": replies}

    def _update_cells(self, book: _Spreadsheet, spec: dict, where: str) -> None:
        if "start" in spec:
            start = spec["start"]
            tab = self._tab_by_id(book, start.get("sheetId", 0), where)
            row0, col0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
        else:
            grid = spec.get("range", {})
            tab = self._tab_by_id(book, grid.get("sheetId", 0), where)
            row0, col0 = grid.get("startRowIndex", 0), grid.get("startColumnIndex", 0)
        if not spec.get("fields"):
            raise _invalid(f"Invalid {where}: At least one field must be specified in 'fields'.")
        rows = spec.get("rows", [])
        width = max((len(row.get("values", [])) for row in rows), default=0)
        _check_bounds(tab, row0 + len(rows), col0 + width, where)
        _copy_rows_on_write(tab, row0, row0 + len(rows))
        for r, row in enumerate(rows):
            for c, data in enumerate(row.get("values", [])):
                _put(tab, row0 + r, col0 + c, _from_extended_value(data))

    def _append_dimension(self, book: _Spreadsheet, spec: dict, where: str) -> None:
        tab = self._tab_by_id(book, spec.get("sheetId", 0), where)
        if spec.get("dimension") == "COLUMNS":
            tab.column_count += int(spec.get("length", 0))
        else:
            tab.row_count += int(spec.get("length", 0))

    def _insert_dimension(self, book: _Spreadsheet, spec: dict, where: str) -> None:
        tab, dimension, start, end = self._dimension_span(book, spec.get("range", {}), where)
        count = end - start
        if dimension == "ROWS":
            _pad_rows(tab, start)
            tab.rows[start:start] = [[] for _ in range(count)]
            tab.row_count += count
        else:
            tab.rows = [
                row[:start] + [None] * count + row[start:] if len(row) > start else row for row in tab.rows
            ]
            tab.column_count += count
        _remap_metadata(book, tab.sheet_id, dimension, lambda i: i if i < start else i + count)

    def _delete_dimension(self, book: _Spreadsheet, spec: dict, where: str) -> None:
        tab, dimension, start, end = self._dimension_span(book, spec.get("range", {}), where)
        limit = tab.row_count if dimension == "ROWS" else tab.column_count
        if end > limit:
            raise _invalid(
                f"Invalid {where}: Range ({start}:{end}) exceeds grid limits. Max {dimension.lower()}: {limit}"
            )
        count = end - start
        if dimension == "ROWS":
            del tab.rows[start:end]
            tab.row_count -= count
        else:
            tab.rows = [row[:start] + row[end:] for row in tab.rows]
            tab.column_count -= count
        _remap_metadata(
            book, tab.sheet_id, dimension, lambda i: i if i < start else i - count, deleted=range(start, end)
        )

    def _move_dimension(self, book: _Spreadsheet, spec: dict, where: str) -> None:
        """MoveDimensionRequest: ``destinationIndex`` counts positions before the source is taken out."""
        tab, dimension, start, end = self._dimension_span(book, spec.get("source", {}), where)
        destination = int(spec.get("destinationIndex", 0))
        size = tab.row_count if dimension == "ROWS" else tab.column_count
        order = list(range(size))
        moved, rest = order[start:end], order[:start] + order[end:]
        at = destination if destination <= start else destination - (end - start)
        order = rest[:at] + moved + rest[at:]
        position = {old: new for new, old in enumerate(order)}
        if dimension == "ROWS":
            _pad_rows(tab, size)
            tab.rows = [tab.rows[old] for old in order]
        else:
            tab.rows = [[row[old] if old < len(row) else None for old in order] for row in tab.rows]
        _remap_metadata(book, tab.sheet_id, dimension, lambda i: position.get(i, i))

    def _dimension_span(self, book: _Spreadsheet, span: dict, where: str) -> tuple[_Tab, str, int, int]:
        dimension = span.get("dimension")
        if dimension not in ("ROWS", "COLUMNS"):
            raise _invalid(f"Invalid {where}: dimension must be ROWS or COLUMNS.")
        tab = self._tab_by_id(book, span.get("sheetId", 0), where)
        return tab, dimension, int(span.get("startIndex", 0)), int(span.get("endIndex", 0))


_BATCH_REQUESTS: dict[str, Callable[[GoogleEmulator, _Spreadsheet, dict, str], dict | None]] = {
    "updateCells": GoogleEmulator._update_cells,
    "appendDimension": GoogleEmulator._append_dimension,
    "insertDimension": GoogleEmulator._insert_dimension,
    "deleteDimension": GoogleEmulator._delete_dimension,
    "moveDimension": GoogleEmulator._move_dimension,
    "createDeveloperMetadata": GoogleEmulator._create_developer_metadata,
    "deleteDeveloperMetadata": GoogleEmulator._delete_developer_metadata,
    "duplicateSheet": GoogleEmulator._duplicate_sheet,
}


def _new_metadata_id(book: _Spreadsheet) -> int:
    """A random positive 32-bit id not in use in the spreadsheet, as Google assigns one."""
    used = {entry["metadataId"] for entry in book.developer_metadata}
    while True:
        candidate = secrets.randbelow(2**31 - 1) + 1
        if candidate not in used:
            return candidate


def _remap_metadata(
    book: _Spreadsheet,
    sheet_id: int,
    dimension: str,
    new_index: Callable[[int], int],
    *,
    deleted: range = range(0),
) -> None:
    """Move developer metadata with the rows or columns it is on ("Read & write developer metadata": a
    location's metadata follows it as people insert, delete and move rows and columns; a span that rows or
    columns are inserted into grows). Metadata whose rows or columns were all deleted goes with them."""
    kept = []
    for entry in book.developer_metadata:
        span = entry["location"]["dimensionRange"]
        if span["sheetId"] != sheet_id or span["dimension"] != dimension:
            kept.append(entry)
            continue
        survivors = [new_index(i) for i in range(span["startIndex"], span["endIndex"]) if i not in deleted]
        if not survivors:
            continue
        span["startIndex"], span["endIndex"] = min(survivors), max(survivors) + 1
        kept.append(entry)
    book.developer_metadata = kept


def _single(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _check_bounds(tab: _Tab, row_end: int, col_end: int, where: str) -> None:
    if row_end > tab.row_count or col_end > tab.column_count:
        raise _invalid(
            f"Range ({where}) exceeds grid limits. Max rows: {tab.row_count}, max columns: {tab.column_count}"
        )


def _pad_rows(tab: _Tab, count: int) -> None:
    while len(tab.rows) < count:
        tab.rows.append([])


def _copy_rows_on_write(tab: _Tab, start: int, end: int) -> None:
    """Give the staged tab its own copies of the rows a batch will edit (the rest stay shared)."""
    for index in range(start, min(end, len(tab.rows))):
        tab.rows[index] = list(tab.rows[index])


def _put(tab: _Tab, row: int, col: int, value: Any) -> None:
    _pad_rows(tab, row + 1)
    cells = tab.rows[row]
    if len(cells) <= col:
        if value is None:
            return
        cells.extend([None] * (col + 1 - len(cells)))
    cells[col] = value


def _value_range(tab: _Tab, grid_range: GridRange, option: str, date_option: str, dimension: str) -> dict:
    label, values = _read(tab, grid_range, option, date_option)
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


def _read(
    tab: _Tab, grid_range: GridRange, option: str, date_option: str = "SERIAL_NUMBER"
) -> tuple[str, list[list[Any]]]:
    row_end = tab.row_count if grid_range.row_end is None else grid_range.row_end
    col_end = tab.column_count if grid_range.col_end is None else grid_range.col_end
    _check_bounds(
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


# ------------------------------------------------------------------------------------------ HTTP layer

_SHEETS_PATH = re.compile(
    r"^/v4/spreadsheets/([^/:]+)(?::batchUpdate|/developerMetadata:search|/values(?::batchGetByDataFilter"
    r"|:batchUpdateByDataFilter|:batchGet|:batchUpdate|/(.+))?)?$"
)


def _sheets_kind(method: str, path: str) -> tuple[str, str, str | None] | None:
    match = _SHEETS_PATH.match(path)
    if not match:
        return None
    spreadsheet_id, a1 = unquote(match.group(1)), match.group(2)
    if path.endswith("/developerMetadata:search"):
        return "developer_metadata_search", spreadsheet_id, None
    if path.endswith(":batchGetByDataFilter"):
        return "batch_get_by_data_filter", spreadsheet_id, None
    if path.endswith(":batchUpdateByDataFilter"):
        return "values_batch_update_by_data_filter", spreadsheet_id, None
    if path.endswith(":batchGet"):
        return "batch_get", spreadsheet_id, None
    if path.endswith("/values:batchUpdate"):
        return "values_batch_update", spreadsheet_id, None
    if path.endswith(":batchUpdate"):
        return "batch_update", spreadsheet_id, None
    if a1 is not None:
        return ("values_update" if method == "PUT" else "values_get"), spreadsheet_id, unquote(a1)
    return "metadata", spreadsheet_id, None


class _Handler(BaseHTTPRequestHandler):
    emulator: GoogleEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v if len(v) > 1 or k == "ranges" else v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/token" and method == "POST":
            self._serve("token", url.path, *self._token(body))
        elif url.path == "/o/oauth2/auth" and method == "GET":
            self._redirect(self.emulator.handle_consent(query))
        elif (route := _sheets_kind(method, url.path)) is not None:
            self._serve(route[0], url.path, *self._sheets(route, query, body), sent=len(body))
        else:
            self._serve("unknown", url.path, 404, _sheets_error(404, "NOT_FOUND", f"No route for {url.path}"))

    def _token(self, body: bytes) -> tuple[int, Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic ") and "client_id" not in form:
            # RFC 6749 2.3.1: the client may authenticate with HTTP Basic instead of body fields.
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.update(client_id=unquote(client_id), client_secret=unquote(client_secret))
        return self.emulator.handle_token(form)

    def _sheets(self, route: tuple[str, str, str | None], query: dict, raw: bytes) -> tuple[int, Any]:
        kind, spreadsheet_id, a1 = route
        emulator = self.emulator
        emulator._run_hooks(kind)
        try:
            emulator.authorize(self.headers.get("Authorization"), kind)
            if emulator._disabled_project is not None:
                return 403, _service_disabled(emulator._disabled_project)
            fault = emulator._take_sheets_fault(kind)
            status, retry_after = fault if fault is not None else (None, None)
            if status == 502:
                return 502, _HTML_502
            if status is not None:
                if retry_after is not None:
                    self._extra_headers = {"Retry-After": str(int(retry_after))}
                return status, _sheets_error(status, *SHEETS_FAULTS[status])
            body = json.loads(raw) if raw else None
            return 200, emulator.handle_sheets(kind, spreadsheet_id, a1, query, body)
        except SheetsError as error:
            return error.code, _sheets_error(error.code, error.status, error.message, error.reason)
        except json.JSONDecodeError:
            return 400, _sheets_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")

    def _serve(self, kind: str, path: str, status: int, body: Any, *, sent: int = 0) -> None:
        emulator = self.emulator
        if isinstance(body, str):
            payload, content_type = body.encode(), "text/html; charset=UTF-8"
        else:
            payload, content_type = (
                json.dumps(body, separators=(",", ":")).encode(),
                "application/json; charset=UTF-8",
            )
        # "In order to receive a gzip-encoded response you must do two things: Set an Accept-Encoding header,
        # and modify your user agent to contain the string gzip." (Sheets API "Improve performance",
        # https://developers.google.com/sheets/api/guides/performance#gzip): either one alone gets plain bytes.
        # gspread's recorded real answers agree (tests/cassettes/WorksheetTest.test_batch_update.json): asked
        # with "Accept-Encoding: gzip, deflate" by "python-requests/2.31.0", Google sent no Content-Encoding.
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "") and "gzip" in self.headers.get(
            "User-Agent", ""
        )
        plain_bytes = len(payload)
        if gzipped:
            payload = gzip.compress(payload, compresslevel=6)
        with emulator._lock:
            emulator.calls[kind] += 1
            # Only the route, the body sizes and the outcome: never headers, tokens, codes or forms.
            emulator.requests.append(
                {
                    "method": self.command,
                    "path": path,
                    "kind": kind,
                    "status": status,
                    "bytes": sent,
                    "reply_bytes": len(payload),  # on the wire
                    "plain_bytes": plain_bytes,  # the same answer uncompressed
                    "gzip": gzipped,
                }
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in getattr(self, "_extra_headers", {}).items():
            self.send_header(name, value)
        self._extra_headers = {}
        self.end_headers()
        self.wfile.write(payload)

    def _redirect(self, location: str) -> None:
        with self.emulator._lock:
            self.emulator.calls["consent"] += 1
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _service_disabled(project: str) -> dict:
    """Google's answer when the API is off in the caller's project: PERMISSION_DENIED with an ErrorInfo whose
    reason is SERVICE_DISABLED and whose metadata carries the project and the activation link (AIP-193
    error model, https://cloud.google.com/apis/design/errors; message as Google words it)."""
    link = f"https://console.developers.google.com/apis/api/sheets.googleapis.com/overview?project={project}"
    message = (
        f"Google Sheets API has not been used in project {project} before or it is disabled. Enable it by "
        f"visiting {link} then retry. If you enabled this API recently, wait a few minutes for the action to "
        "propagate to our systems and retry."
    )
    return {
        "error": {
            "code": 403,
            "message": message,
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "sheets.googleapis.com",
                        "consumer": f"projects/{project}",
                        "serviceTitle": "Google Sheets API",
                        "containerInfo": project,
                        "activationUrl": link,
                    },
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Google developers console API activation", "url": link}],
                },
            ],
        }
    }


def _sheets_error(code: int, status: str, message: str, reason: str | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": error}
