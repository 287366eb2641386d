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

The package, one module per job: :mod:`.a1` (A1 notation), :mod:`.cells` (what a cell holds and how it
renders; the grid of a tab), :mod:`.oauth` (token endpoint, consent page), :mod:`.sheets` (values,
batchUpdate, developer metadata), :mod:`.faults` (Google's error bodies and the fault switches) and
:mod:`.server` (the :class:`GoogleEmulator`, a person's edits, the HTTP layer).
"""

from jada_pipelines.emulators.google.a1 import (
    GridRange,
    column_index,
    column_letter,
    format_a1,
    parse_a1,
    quote_tab,
)
from jada_pipelines.emulators.google.cells import (
    DATE_TIME_RENDER_OPTIONS,
    DATE_TIME_TYPES,
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    RENDER_OPTIONS,
    Formatted,
    Formula,
    format_number,
    from_serial,
    parse_user_entered,
    render,
    serial_number,
)
from jada_pipelines.emulators.google.faults import (
    EMPTY_ITEM_ANSWERS,
    SHEETS_FAULTS,
    TOKEN_FAULTS,
    SheetsError,
)
from jada_pipelines.emulators.google.oauth import (
    ACCESS_TOKEN_SECONDS,
    DRIVE_SCOPE,
    JWT_BEARER_GRANT,
    SHEETS_READONLY_SCOPE,
    SHEETS_SCOPE,
)
from jada_pipelines.emulators.google.server import GoogleEmulator
from jada_pipelines.emulators.google.sheets import SHEETS_KINDS

__all__ = [
    "ACCESS_TOKEN_SECONDS",
    "DATE_TIME_RENDER_OPTIONS",
    "DATE_TIME_TYPES",
    "DEFAULT_COLUMNS",
    "DEFAULT_ROWS",
    "DRIVE_SCOPE",
    "EMPTY_ITEM_ANSWERS",
    "JWT_BEARER_GRANT",
    "RENDER_OPTIONS",
    "SHEETS_FAULTS",
    "SHEETS_KINDS",
    "SHEETS_READONLY_SCOPE",
    "SHEETS_SCOPE",
    "TOKEN_FAULTS",
    "Formatted",
    "Formula",
    "GoogleEmulator",
    "GridRange",
    "SheetsError",
    "column_index",
    "column_letter",
    "format_a1",
    "format_number",
    "from_serial",
    "parse_a1",
    "parse_user_entered",
    "quote_tab",
    "render",
    "serial_number",
]
