"""The LOCAL Google emulator itself (not Google): its state, a person's edits, and the HTTP layer.

See the package docstring for what it answers.
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
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jada_pipelines.emulators._server import LocalServer
from jada_pipelines.emulators.google.a1 import GridRange, column_index, parse_a1
from jada_pipelines.emulators.google.cells import (
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    Formula,
    Spreadsheet,
    Tab,
    pad_rows,
    parse_user_entered,
    put,
    read_range,
    render,
)
from jada_pipelines.emulators.google.faults import (
    HTML_502,
    SHEETS_FAULTS,
    FaultSwitches,
    SheetsError,
    error_body,
    service_disabled,
)
from jada_pipelines.emulators.google.oauth import OAuthEndpoint
from jada_pipelines.emulators.google.sheets import BATCH_REQUESTS, SHEETS_KINDS, SheetsApi, remap_metadata


class GoogleEmulator(OAuthEndpoint, FaultSwitches, SheetsApi, LocalServer):
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
        self._spreadsheets: dict[str, Spreadsheet] = {}
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
        grid = Tab(
            title=tab,
            sheet_id=0,
            rows=[list(row) for row in rows],
            row_count=row_count or max(DEFAULT_ROWS, len(rows)),
            column_count=column_count or max(DEFAULT_COLUMNS, width),
        )
        with self._lock:
            book = self._spreadsheets.setdefault(
                spreadsheet_id, Spreadsheet(spreadsheet_id, title=f"Emulated {spreadsheet_id}")
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
            return read_range(grid, GridRange(tab), render_option, date_time_option)[1]

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
            put(self._tab(spreadsheet_id, tab), row, col, value)

    def set_formula(self, spreadsheet_id: str, tab: str, a1: str, formula: str, value: Any = None) -> None:
        self.set_cell(spreadsheet_id, tab, a1, Formula(formula, value))

    def insert_row(self, spreadsheet_id: str, tab: str, row_number: int, values: Sequence[Any] = ()) -> None:
        """Insert a row so that it becomes 1-based row ``row_number``; the rows below move down."""
        with self._lock:
            grid = self._tab(spreadsheet_id, tab)
            pad_rows(grid, row_number - 1)
            grid.rows.insert(row_number - 1, list(values))
            grid.row_count += 1
            start = row_number - 1
            remap_metadata(
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
            BATCH_REQUESTS[request](self, book, {"range": span}, request)

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
            remap_metadata(
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
            self._serve("unknown", url.path, 404, error_body(404, "NOT_FOUND", f"No route for {url.path}"))

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
                return 403, service_disabled(emulator._disabled_project)
            fault = emulator._take_sheets_fault(kind)
            status, retry_after = fault if fault is not None else (None, None)
            if status == 502:
                return 502, HTML_502
            if status is not None:
                if retry_after is not None:
                    self._extra_headers = {"Retry-After": str(int(retry_after))}
                return status, error_body(status, *SHEETS_FAULTS[status])
            body = json.loads(raw) if raw else None
            return 200, emulator.handle_sheets(kind, spreadsheet_id, a1, query, body)
        except SheetsError as error:
            return error.code, error_body(error.code, error.status, error.message, error.reason)
        except json.JSONDecodeError:
            return 400, error_body(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")

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
