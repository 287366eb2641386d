"""The key and owned columns, found by Google at the moment it serves each request (plain Python, no HTTP).

A write addressed by position ("column F") lands wherever column F is when Google applies it: a column that
a person inserts, moves or deletes between the push's read and its write would receive the pipeline's
values. So each tracked column (the key column and every owned column) carries a piece of developer
metadata, ``jada_pipelines.port_sheet.column = <header>``. Metadata on a column moves with it as people edit
the sheet, and ``values:batchGetByDataFilter`` / ``values:batchUpdateByDataFilter`` resolve it when the
request is served ("Read & write developer metadata",
https://developers.google.com/sheets/api/guides/metadata). Positions never travel from a read to a write.

Rows are still addressed by number, so each write also asks for the key column as it is at write time
(``includeValuesInResponse``): a row sorted, inserted or deleted in the window is seen in the write's own
answer, and the push corrects the cells that landed on another key's row before the run ends.
"""

from __future__ import annotations

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


def column_filter(name: str) -> dict[str, Any]:
    """The DataFilter that Google resolves to the column tagged ``name`` wherever it is now."""
    return {
        "developerMetadataLookup": {
            "metadataKey": METADATA_KEY,
            "metadataValue": name,
            "locationType": "COLUMN",
        }
    }


def read_body(tab: str, names: Sequence[str]) -> dict[str, Any]:
    """One ``values:batchGetByDataFilter``: the header row by position (to find untagged columns) and each
    tagged column wherever it is. Typed values, dates as people see them, one list per column."""
    return {
        "dataFilters": [{"a1Range": f"{quote_tab(tab)}!1:1"}, *(column_filter(name) for name in names)],
        "majorDimension": "COLUMNS",
        "valueRenderOption": "UNFORMATTED_VALUE",
        "dateTimeRenderOption": "FORMATTED_STRING",
    }


@dataclass(frozen=True)
class TrackedRead:
    """One read of the tracked columns.

    ``sheet`` holds the header and the cells of each column found by its metadata whose header cell still
    carries its name. ``untagged`` are names in the header whose column has no (usable) metadata yet: they
    need the one-time setup. ``lost`` are names whose metadata is on a column headed otherwise now (a person
    renamed it), or on several columns: never written until the setup puts them right.
    """

    sheet: SheetColumns
    header: list[str]
    positions: dict[str, int]
    untagged: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    # Names with a tag somewhere (even a stale one): the setup deletes those before tagging again.
    tagged: set[str] = field(default_factory=set)


def parse_read(response: dict[str, Any], names: Sequence[str]) -> TrackedRead:
    header: list[str] = []
    found: dict[str, list[tuple[int, list[Any]]]] = {name: [] for name in names}
    for matched in response.get("valueRanges", []):
        value_range = matched.get("valueRange", {})
        columns = value_range.get("values", [])
        for data_filter in matched.get("dataFilters", []):
            if "a1Range" in data_filter:
                header = [key_text(column[0]) or "" if column else "" for column in columns]
                continue
            name = data_filter.get("developerMetadataLookup", {}).get("metadataValue")
            if name in found:
                found[name].append(
                    (column_index(value_range.get("range", "")), columns[0] if columns else [])
                )
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
    tagged = {name for name, matches in found.items() if matches}
    return TrackedRead(SheetColumns(plan_header, cells), header, positions, untagged, lost, tagged)


def setup_requests(sheet_id: int, read: TrackedRead) -> list[dict[str, Any]]:
    """``spreadsheets:batchUpdate`` requests that tag each untagged column where the header has its name.

    Stale tags of those names (seen in the read) are deleted first, in the same atomic batch, so a name
    never sits on two columns. The header positions come from a read made just before; the next read checks each new tag's
    column still carries its name, so a column moved in between is caught (and re-tagged) before any write.
    """
    requests: list[dict[str, Any]] = []
    for name in read.untagged:
        index = read.header.index(name)
        if name in read.tagged:
            requests.append({"deleteDeveloperMetadata": {"dataFilter": column_filter(name)}})
        requests.append(
            {
                "createDeveloperMetadata": {
                    "developerMetadata": {
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
    cells: Sequence[CellWrite], *, key_column: str, max_bytes: int = MAX_REQUEST_BYTES
) -> list[tuple[bytes, list[CellWrite]]]:
    """``values:batchUpdateByDataFilter`` bodies (compact JSON) writing ``cells``, each at most ``max_bytes``,
    with the cells each one writes.

    A data filter resolves to a whole column, and values are written from its top: a row left alone costs
    ``[]`` (3 bytes), so a column's piece runs from row 1 to its last changed row. Pieces that would not fit
    are split by rows (a later piece starts again from row 1 with ``[]``). Every body also "writes" nothing
    to the key column (``[[]]``), only to get it back as it is at write time (``includeValuesInResponse``).
    """
    by_column: dict[str, list[CellWrite]] = {}
    for cell in cells:
        by_column.setdefault(cell.column, []).append(cell)
    for column in by_column.values():
        column.sort(key=_row)  # already in order from plan_push: a linear pass
    verify = _item(key_column, "[[]]")
    budget = max_bytes - len(verify) - 400  # 400: the body's own fields, with room to spare
    bodies: list[tuple[bytes, list[CellWrite]]] = []
    items: list[str] = []
    written: list[CellWrite] = []
    size = 0
    for name, column in by_column.items():
        for text, piece in _pieces(column, budget - len(_item(name, ""))):
            item = _item(name, text)
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


def _item(name: str, values_json: str) -> str:
    data_filter = json.dumps(column_filter(name), separators=(",", ":"))
    return f'{{"dataFilter":{data_filter},"majorDimension":"ROWS","values":{values_json}}}'


def _body(items: list[str], verify: str) -> bytes:
    return (
        '{"valueInputOption":"RAW","includeValuesInResponse":true,'
        '"responseValueRenderOption":"UNFORMATTED_VALUE","responseDateTimeRenderOption":"FORMATTED_STRING",'
        f'"data":[{",".join([*items, verify])}]}}'
    ).encode()


def keys_at_write(response: dict[str, Any], key_column: str) -> list[str | None] | None:
    """The key column as Google saw it when it applied the write (row 1 first), from the write's answer;
    None when the answer does not carry it."""
    for item in response.get("responses", []):
        lookup = (item.get("dataFilter") or {}).get("developerMetadataLookup", {})
        if lookup.get("metadataValue") != key_column or "updatedData" not in item:
            continue
        data = item["updatedData"]
        values = data.get("values", [])
        if data.get("majorDimension") == "COLUMNS":
            column = values[0] if values else []
        else:
            column = [row[0] if row else "" for row in values]
        return key_texts(column).tolist()
    return None


def misplaced(cells: Sequence[CellWrite], keys: Sequence[str | None]) -> list[tuple[CellWrite, str | None]]:
    """The written cells whose row held another key (or none) when Google applied the write, each with
    the key that was on that row: its cell was overwritten and must be put back."""
    astray = []
    for cell in cells:
        now = keys[cell.row - 1] if cell.row - 1 < len(keys) else None
        if now != cell.key:
            astray.append((cell, now))
    return astray
