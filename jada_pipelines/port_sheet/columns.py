"""The key and owned columns, found by Google at the moment it serves each request (plain Python, no HTTP).

A write addressed by position ("column F") lands wherever column F is when Google applies it: a column that
a person inserts, moves or deletes between the push's read and its write would receive the pipeline's
values. So each tracked column (the key column and every owned column) carries a piece of developer
metadata, ``jada_pipelines.port_sheet.column = <header>``. Metadata on a column moves with it as people edit
the sheet, and ``values:batchGetByDataFilter`` / ``values:batchUpdateByDataFilter`` resolve it when the
request is served ("Read & write developer metadata",
https://developers.google.com/sheets/api/guides/metadata). Positions never travel from a read to a write.

Every tag belongs to one tab and is addressed by its ``metadataId``, never by key and value: a lookup by key
and value matches every copy of the tag, and "If more than one range is matched by the specified DataFilter
the specified values are applied to all of those ranges" (DataFilterValueRange). A duplicated tab carries
copies of the tags (the reference does not say it does not), and a copied tag has the same key and value
but, since ids are "spreadsheet-scoped unique" (DeveloperMetadata.metadataId), never the same id. The id of
the tag of column ``name`` on tab ``sheet_id`` is derived from the two (:func:`tag_id`), so a lookup needs no
call to learn it; the set-up creates each tag with that id.

Rows are still addressed by number, so each write also asks for the key column as it is at write time
(``includeValuesInResponse``): a row sorted, inserted or deleted in the window is seen in the write's own
answer, and the push corrects the cells that landed on another key's row before the run ends.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_string
from typing import Any

from jada_pipelines.port_sheet.a1 import column_index, quote_tab
from jada_pipelines.port_sheet.keys import key_text, key_texts
from jada_pipelines.port_sheet.plan import CellWrite, SheetColumns

METADATA_KEY = "jada_pipelines.port_sheet.column"
# Google recommends payloads of at most 2 MB ("Usage limits", https://developers.google.com/sheets/api/limits).
MAX_REQUEST_BYTES = 2_000_000
# A written row that is left alone: ``[]`` plus its comma in compact JSON.
_SKIP = "[]"


def tag_id(sheet_id: int, name: str) -> int:
    """The ``metadataId`` of the tag of column ``name`` on tab ``sheet_id``: positive, 31 bits, the same on
    every machine, so a lost local store costs no extra call. A tag copied onto another tab gets a new id."""
    digest = hashlib.sha256(f"{METADATA_KEY}\0{sheet_id}\0{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1


def column_filter(sheet_id: int, name: str) -> dict[str, Any]:
    """The DataFilter that Google resolves to the column of tab ``sheet_id`` tagged ``name``, wherever it is
    now: one tag, by its id ("if only a metadata ID is specified this considers the DeveloperMetadata with
    that particular unique ID", DeveloperMetadataLookup)."""
    return {"developerMetadataLookup": {"metadataId": tag_id(sheet_id, name)}}


def tags_filter() -> dict[str, Any]:
    """Every column tag of the push, on every tab: for the set-up's ``developerMetadata:search`` only."""
    return {"developerMetadataLookup": {"metadataKey": METADATA_KEY, "locationType": "COLUMN"}}


def read_body(tab: str, sheet_id: int, names: Sequence[str]) -> dict[str, Any]:
    """One ``values:batchGetByDataFilter``: the header row by position (to find untagged columns) and each
    tagged column wherever it is. Typed values, dates as people see them, one list per column."""
    return {
        "dataFilters": [
            {"a1Range": f"{quote_tab(tab)}!1:1"},
            *(column_filter(sheet_id, name) for name in names),
        ],
        "majorDimension": "COLUMNS",
        "valueRenderOption": "UNFORMATTED_VALUE",
        "dateTimeRenderOption": "FORMATTED_STRING",
    }


def key_read_body(sheet_id: int, key_column: str) -> dict[str, Any]:
    """The key column alone, wherever it is: the separate read that checks rows when a write's answer did
    not carry the key column."""
    return {
        "dataFilters": [column_filter(sheet_id, key_column)],
        "majorDimension": "COLUMNS",
        "valueRenderOption": "UNFORMATTED_VALUE",
        "dateTimeRenderOption": "FORMATTED_STRING",
    }


@dataclass(frozen=True)
class TrackedRead:
    """One read of the tracked columns.

    ``sheet`` holds the header and the cells of each column found by its tag whose header cell still
    carries its name. ``untagged`` are names in the header whose column has no (usable) tag yet: they need
    the one-time set-up. ``lost`` are names whose tag is on a column headed otherwise now (a person renamed
    it): never written until the set-up puts them right. ``elsewhere`` are names whose tag id resolved on
    another tab than ``tab``: the tab's sheetId the push remembered is not this tab's any more.
    """

    sheet: SheetColumns
    header: list[str]
    positions: dict[str, int]
    untagged: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


def parse_read(response: dict[str, Any], names: Sequence[str], *, tab: str, sheet_id: int) -> TrackedRead:
    header: list[str] = []
    by_id = {tag_id(sheet_id, name): name for name in names}
    found: dict[str, list[tuple[int, list[Any]]]] = {name: [] for name in names}
    elsewhere: list[str] = []
    for matched in response.get("valueRanges", []):
        value_range = matched.get("valueRange", {})
        columns = value_range.get("values", [])
        for data_filter in matched.get("dataFilters", []):
            if "a1Range" in data_filter:
                header = [key_text(column[0]) or "" if column else "" for column in columns]
                continue
            name = by_id.get(data_filter.get("developerMetadataLookup", {}).get("metadataId"))
            if name is None:
                continue
            if range_tab(value_range.get("range", "")) != tab:
                elsewhere.append(name)
                continue
            found[name].append((column_index(value_range.get("range", "")), columns[0] if columns else []))
    positions, cells, untagged, lost = {}, {}, [], []
    for name in names:
        matches = found[name]
        if len(matches) == 1 and (key_text(matches[0][1][0]) if matches[0][1] else None) == name:
            positions[name] = matches[0][0]
            cells[name] = list(matches[0][1][1:])
        elif name in header:
            untagged.append(name)
        elif matches:
            lost.append(name)
    length = max((len(column) for column in cells.values()), default=0)
    cells = {name: column + [""] * (length - len(column)) for name, column in cells.items()}
    # The plan orders and reports columns by header position; give it the positions the metadata found.
    plan_header = list(header) + [""] * max(0, max(positions.values(), default=-1) + 1 - len(header))
    for name in names:
        if name not in positions and name in plan_header:
            plan_header[plan_header.index(name)] = ""  # in the header, but not safe to write yet
    return TrackedRead(SheetColumns(plan_header, cells), header, positions, untagged, lost, elsewhere)


def range_tab(a1: str) -> str:
    """The tab title of an A1 range as Google labels it (``'Ports (copy)'!D1:D1000`` → ``Ports (copy)``)."""
    tab, bang, _cells = a1.rpartition("!")
    if not bang:
        return ""
    if tab.startswith("'") and tab.endswith("'"):
        return tab[1:-1].replace("''", "'")
    return tab


@dataclass(frozen=True)
class TagSurvey:
    """What the set-up's ``developerMetadata:search`` found of the push's column tags, sorted by whose they are.

    ``own`` maps each name to the id of its tag on this tab (the derived id); ``extra`` are other tags on this
    tab (a second tag for a name, or a tag from before tags had ids): ids the set-up deletes. ``foreign`` are
    tags on other tabs, described for a person ("agent_status on tab 1234"): never written, never deleted.
    """

    own: dict[str, int]
    extra: list[int]
    foreign: list[str]


def survey_tags(response: dict[str, Any], sheet_id: int, names: Sequence[str]) -> TagSurvey:
    own, extra, foreign = {}, [], []
    wanted = {tag_id(sheet_id, name): name for name in names}
    for matched in response.get("matchedDeveloperMetadata", []):
        entry = matched.get("developerMetadata", {})
        span = entry.get("location", {}).get("dimensionRange", {})
        metadata_id, name = entry.get("metadataId"), entry.get("metadataValue", "")
        if span.get("sheetId") != sheet_id:
            foreign.append(f"{name} on tab {span.get('sheetId')}")
        elif wanted.get(metadata_id) == name:
            own[name] = metadata_id
        else:
            extra.append(metadata_id)
    return TagSurvey(own, extra, sorted(foreign))


def setup_requests(sheet_id: int, read: TrackedRead, survey: TagSurvey) -> list[dict[str, Any]]:
    """``spreadsheets:batchUpdate`` requests that tag each untagged column of this tab where the header has
    its name, each with its derived id.

    Only this tab's tags are touched, each by its id: the extra tags the survey found here, and the stale own
    tag of a name being tagged again, are deleted first in the same atomic batch, so a name never sits on two
    columns of the tab. Tags on other tabs (a duplicated tab's copies, another configuration's) stay as they
    are. The header positions come from a read made just before; the next read checks each new tag's column
    still carries its name, so a column moved in between is caught (and re-tagged) before any write.
    """
    doomed = list(survey.extra) + [survey.own[name] for name in read.untagged if name in survey.own]
    requests: list[dict[str, Any]] = [
        {"deleteDeveloperMetadata": {"dataFilter": {"developerMetadataLookup": {"metadataId": metadata_id}}}}
        for metadata_id in doomed
    ]
    for name in read.untagged:
        index = read.header.index(name)
        requests.append(
            {
                "createDeveloperMetadata": {
                    "developerMetadata": {
                        "metadataId": tag_id(sheet_id, name),
                        "metadataKey": METADATA_KEY,
                        "metadataValue": name,
                        "visibility": "DOCUMENT",
                        "location": {
                            "dimensionRange": {
                                "sheetId": sheet_id,
                                "dimension": "COLUMNS",
                                "startIndex": index,
                                "endIndex": index + 1,
                            }
                        },
                    }
                }
            }
        )
    return requests


def write_bodies(
    cells: Sequence[CellWrite],
    *,
    sheet_id: int,
    key_column: str,
    max_bytes: int = MAX_REQUEST_BYTES,
    echo_keys: bool = True,
) -> list[tuple[bytes, list[CellWrite]]]:
    """``values:batchUpdateByDataFilter`` bodies (compact JSON) writing ``cells``, each at most ``max_bytes``,
    with the cells each one writes.

    A data filter resolves to a whole column, and values are written from its top: a row left alone costs
    ``[]`` (3 bytes), so a column's piece runs from row 1 to its last changed row. Pieces that would not fit
    are split by rows (a later piece starts again from row 1 with ``[]``). With ``echo_keys`` every body also
    "writes" nothing to the key column (``[[]]``), only to get it back as it is at write time
    (``includeValuesInResponse``); without it (Google refused that item once) the rows are checked by a
    separate read.
    """
    by_column: dict[str, list[CellWrite]] = {}
    for cell in cells:
        by_column.setdefault(cell.column, []).append(cell)
    for column in by_column.values():
        column.sort(key=_row)  # already in order from plan_push: a linear pass
    verify = _item(sheet_id, key_column, "[[]]") if echo_keys else ""
    budget = max_bytes - len(verify) - 400  # 400: the body's own fields, with room to spare
    bodies: list[tuple[bytes, list[CellWrite]]] = []
    items: list[str] = []
    written: list[CellWrite] = []
    size = 0
    for name, column in by_column.items():
        for text, piece in _pieces(column, budget - len(_item(sheet_id, name, ""))):
            item = _item(sheet_id, name, text)
            if items and size + len(item) + 1 > budget:
                bodies.append((_body(items, verify), written))
                items, written, size = [], [], 0
            items.append(item)
            written.extend(piece)
            size += len(item) + 1
    if items:
        bodies.append((_body(items, verify), written))
    return bodies


def _row(cell: CellWrite) -> int:
    return cell.row


def _pieces(column: list[CellWrite], budget: int) -> list[tuple[str, list[CellWrite]]]:
    pieces: list[tuple[str, list[CellWrite]]] = []
    entries: list[str] = []
    cells: list[CellWrite] = []
    row, size = 1, 2
    for cell in column:
        value = "[" + _json_value(cell.value) + "]"
        size_of = len(value) if value.isascii() else len(value.encode())
        cost = 3 * (cell.row - row) + size_of + 1
        if entries and size + cost > budget:
            pieces.append(("[" + ",".join(entries) + "]", cells))
            entries, cells, row, size = [], [], 1, 2
            cost = 3 * (cell.row - row) + size_of + 1
        entries.extend([_SKIP] * (cell.row - row))
        entries.append(value)
        cells.append(cell)
        row, size = cell.row + 1, size + cost
    if entries:
        pieces.append(("[" + ",".join(entries) + "]", cells))
    return pieces


def _json_value(value: Any) -> str:
    """One cell value as compact JSON; the common types without the cost of ``json.dumps`` per cell."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float and math.isfinite(value):
        return repr(value)  # the shortest text that reads back as the same double, as JSON wants
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _item(sheet_id: int, name: str, values_json: str) -> str:
    data_filter = json.dumps(column_filter(sheet_id, name), separators=(",", ":"))
    return f'{{"dataFilter":{data_filter},"majorDimension":"ROWS","values":{values_json}}}'


def _body(items: list[str], verify: str) -> bytes:
    # The written columns come back only with the key column's echo: without it there is nothing to read.
    echo = (
        '"includeValuesInResponse":true,"responseValueRenderOption":"UNFORMATTED_VALUE",'
        '"responseDateTimeRenderOption":"FORMATTED_STRING",'
        if verify
        else ""
    )
    return f'{{"valueInputOption":"RAW",{echo}"data":[{",".join([*items, verify] if verify else items)}]}}'.encode()


def keys_at_write(response: dict[str, Any], sheet_id: int, key_column: str) -> list[str | None] | None:
    """The key column as Google saw it when it applied the write (row 1 first), from the write's answer;
    None when the answer does not carry it (then nothing was checked)."""
    wanted = tag_id(sheet_id, key_column)
    for item in response.get("responses", []):
        lookup = (item.get("dataFilter") or {}).get("developerMetadataLookup", {})
        if lookup.get("metadataId") != wanted or "updatedData" not in item:
            continue
        data = item["updatedData"]
        values = data.get("values", [])
        if data.get("majorDimension") == "COLUMNS":
            column = values[0] if values else []
        else:
            column = [row[0] if row else "" for row in values]
        return key_texts(column).tolist()
    return None


def keys_read(response: dict[str, Any]) -> list[str | None]:
    """The key column from :func:`key_read_body`'s answer (row 1 first); empty when the tag matched nothing."""
    for matched in response.get("valueRanges", []):
        columns = matched.get("valueRange", {}).get("values", [])
        return key_texts(columns[0] if columns else []).tolist()
    return []


def misplaced(cells: Sequence[CellWrite], keys: Sequence[str | None]) -> list[tuple[CellWrite, str | None]]:
    """The written cells whose row held another key (or none) when Google applied the write, each with
    the key that was on that row: its cell was overwritten and must be put back."""
    astray = []
    for cell in cells:
        now = keys[cell.row - 1] if cell.row - 1 < len(keys) else None
        if now != cell.key:
            astray.append((cell, now))
    return astray
