"""The Sheets API v4 side of the LOCAL Google emulator (not Google): values, batchUpdate, developer metadata.

Reference: https://developers.google.com/sheets/api/reference/rest (each handler names its page).
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from typing import Any

from jada_pipelines.emulators.google.a1 import GridRange, format_a1, parse_a1, quote_tab
from jada_pipelines.emulators.google.cells import (
    DATE_TIME_RENDER_OPTIONS,
    RENDER_OPTIONS,
    Spreadsheet,
    Tab,
    check_bounds,
    from_extended_value,
    pad_rows,
    parse_user_entered,
    put,
    value_range,
)
from jada_pipelines.emulators.google.faults import SheetsError, invalid

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
# Developer metadata: https://developers.google.com/sheets/api/guides/metadata
_LOOKUP_FIELDS = ("metadataId", "metadataKey", "metadataValue", "locationType", "visibility")


class SheetsApi:
    """The Sheets half of :class:`GoogleEmulator`: the spreadsheets it holds and the API calls on them."""

    _lock: threading.RLock
    _spreadsheets: dict[str, Spreadsheet]
    _empty_item_answer: str

    def _book(self, spreadsheet_id: str) -> Spreadsheet:
        book = self._spreadsheets.get(spreadsheet_id)
        if book is None:
            raise SheetsError(404, "NOT_FOUND", "Requested entity was not found.")
        return book

    def _tab(self, spreadsheet_id: str, title: str | None) -> Tab:
        book = self._book(spreadsheet_id)
        if title is None:
            return book.tabs[0]
        for tab in book.tabs:
            if tab.title == title:
                return tab
        raise invalid(f"Unable to parse range: {quote_tab(title)}")

    def _tab_by_id(self, book: Spreadsheet, sheet_id: int, where: str) -> Tab:
        for tab in book.tabs:
            if tab.sheet_id == sheet_id:
                return tab
        raise invalid(f"Invalid {where}: No grid with id: {sheet_id}")

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
    def _metadata(book: Spreadsheet) -> dict:
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

    def _values_get(self, book: Spreadsheet, a1: str, query: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/get: the query's
        # valueRenderOption, dateTimeRenderOption (default SERIAL_NUMBER) and majorDimension (default ROWS).
        option = _single(query.get("valueRenderOption")) or "FORMATTED_VALUE"
        if option not in RENDER_OPTIONS:
            raise invalid(f"Invalid value at 'value_render_option' ({option})")
        date_option = _single(query.get("dateTimeRenderOption")) or "SERIAL_NUMBER"
        if date_option not in DATE_TIME_RENDER_OPTIONS:
            raise invalid(f"Invalid value at 'date_time_render_option' ({date_option})")
        dimension = _single(query.get("majorDimension")) or "ROWS"
        if dimension not in ("ROWS", "COLUMNS"):
            raise invalid(f"Invalid value at 'major_dimension' ({dimension})")
        grid_range = parse_a1(a1)
        tab = self._tab(book.spreadsheet_id, grid_range.tab)
        return value_range(tab, grid_range, option, date_option, dimension)

    # -- data filters and developer metadata (https://developers.google.com/sheets/api/guides/metadata,
    # https://developers.google.com/sheets/api/reference/rest/v4/DataFilter) -----------------------------

    def _resolve(self, book: Spreadsheet, data_filter: dict, where: str) -> list[tuple[Tab, GridRange]]:
        """Where a DataFilter points now: an A1 range, a grid range, or the location of each metadata match
        (a whole column or row for a dimensionRange location: the metadata has moved with it)."""
        if not isinstance(data_filter, dict) or len(data_filter) != 1:
            raise invalid(f"Invalid {where}: exactly one of a1Range, gridRange, developerMetadataLookup.")
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
            raise invalid(f"Invalid {where}: unknown data filter {kind}.")
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
    def _lookup(book: Spreadsheet, lookup: dict, where: str) -> list[dict]:
        if "metadataLocation" in lookup or "locationMatchingStrategy" in lookup:
            raise invalid(f"Invalid {where}: metadataLocation is not supported by the local Google emulator.")
        wanted = {name: lookup[name] for name in _LOOKUP_FIELDS if name in lookup}
        if not wanted:
            raise invalid(f"Invalid {where}: a developerMetadataLookup needs at least one field.")
        return [
            entry
            for entry in book.developer_metadata
            if all(
                (entry["location"]["locationType"] if name == "locationType" else entry.get(name)) == value
                for name, value in wanted.items()
            )
        ]

    def _batch_get_by_data_filter(self, book: Spreadsheet, body: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchGetByDataFilter:
        # the options are body fields here; each matched range comes with the filter that matched it.
        option = body.get("valueRenderOption") or "FORMATTED_VALUE"
        date_option = body.get("dateTimeRenderOption") or "SERIAL_NUMBER"
        dimension = body.get("majorDimension") or "ROWS"
        if option not in RENDER_OPTIONS or date_option not in DATE_TIME_RENDER_OPTIONS:
            raise invalid("Invalid value at 'value_render_option' or 'date_time_render_option'")
        matched = []
        for index, data_filter in enumerate(body.get("dataFilters") or []):
            for tab, grid_range in self._resolve(book, data_filter, f"data_filters[{index}]"):
                matched.append(
                    {
                        "valueRange": value_range(tab, grid_range, option, date_option, dimension),
                        "dataFilters": [data_filter],
                    }
                )
        return {"spreadsheetId": book.spreadsheet_id, "valueRanges": matched}

    def _values_write_by_data_filter(self, book: Spreadsheet, body: dict) -> dict:
        # https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdateByDataFilter
        # and DataFilterValueRange: values are written from the matched range's top-left corner; values
        # beyond the matched range fail the request; fewer values leave the rest of the range as it is.
        planned, empty = [], set()
        for index, item in enumerate(body.get("data") or []):
            where = f"data[{index}]"
            if item.get("values") == [[]]:
                if self._empty_item_answer == "refuse":
                    raise invalid(
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
                response["updatedData"] = value_range(tab, grid_range, option, date_option, "ROWS")
        for response, entry in zip(reply["responses"], planned, strict=True):
            response["dataFilter"] = entry[-2]
        return reply

    def _create_developer_metadata(self, book: Spreadsheet, spec: dict, where: str) -> dict:
        metadata = copy.deepcopy(spec.get("developerMetadata") or {})
        location = metadata.get("location") or {}
        span = location.get("dimensionRange")
        if not metadata.get("metadataKey") or span is None:
            raise invalid(
                f"Invalid {where}: metadataKey and a dimensionRange location are required by the local emulator."
            )
        tab = self._tab_by_id(book, span.get("sheetId", 0), where)
        limit = tab.column_count if span.get("dimension") == "COLUMNS" else tab.row_count
        if not 0 <= span.get("startIndex", -1) < span.get("endIndex", -1) <= limit:
            raise invalid(f"Invalid {where}: the dimensionRange is outside the grid.")
        # DeveloperMetadata.metadataId: "The spreadsheet-scoped unique ID that identifies the metadata. IDs may
        # be specified when metadata is created, otherwise one will be randomly generated and assigned. Must be
        # positive." (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.developerMetadata)
        if "metadataId" in metadata:
            if not isinstance(metadata["metadataId"], int) or not 0 < metadata["metadataId"] < 2**31:
                raise invalid(f"Invalid {where}: metadataId must be a positive 32-bit integer.")
            if any(m["metadataId"] == metadata["metadataId"] for m in book.developer_metadata):
                raise invalid(f"Invalid {where}: metadataId {metadata['metadataId']} is already in use.")
        else:
            metadata["metadataId"] = _new_metadata_id(book)
        metadata.setdefault("visibility", "DOCUMENT")
        location["locationType"] = "COLUMN" if span["dimension"] == "COLUMNS" else "ROW"
        metadata["location"] = location
        book.developer_metadata.append(metadata)
        return {"createDeveloperMetadata": {"developerMetadata": copy.deepcopy(metadata)}}

    def _search_developer_metadata(self, book: Spreadsheet, body: dict) -> dict:
        # spreadsheets.developerMetadata.search: every entry selected by any of the lookups, each with the
        # filters that matched it (https://developers.google.com/sheets/api/reference/rest/v4/
        # spreadsheets.developerMetadata/search). Location filters (a1Range, gridRange) are not emulated.
        matched: list[dict] = []
        for index, data_filter in enumerate(body.get("dataFilters") or []):
            lookup = (data_filter or {}).get("developerMetadataLookup")
            if lookup is None:
                raise invalid(
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

    def _duplicate_sheet(self, book: Spreadsheet, spec: dict, where: str) -> dict:
        """DuplicateSheetRequest (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets/request
        #DuplicateSheetRequest): a copy of the tab's cells, inserted after it. The reference does not say
        whether the copy carries the source's developer metadata; the emulator copies every entry on the tab
        (same key, value, visibility, location on the copy) under new ids, the worst case it allows."""
        source = self._tab_by_id(book, spec.get("sourceSheetId", 0), where)
        title = spec.get("newSheetName") or f"Copy of {source.title}"
        if any(tab.title == title for tab in book.tabs):
            raise invalid(
                f'Invalid {where}: A sheet with the name "{title}" already exists. Please enter another name.'
            )
        new_id = spec.get("newSheetId")
        if new_id is None:
            new_id = max(tab.sheet_id for tab in book.tabs) + 1
        elif any(tab.sheet_id == new_id for tab in book.tabs):
            raise invalid(f"Invalid {where}: A sheet with the id {new_id} already exists.")
        copied = Tab(title, new_id, copy.deepcopy(source.rows), source.row_count, source.column_count)
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

    def _delete_developer_metadata(self, book: Spreadsheet, spec: dict, where: str) -> dict:
        lookup = (spec.get("dataFilter") or {}).get("developerMetadataLookup")
        if lookup is None:
            raise invalid(f"Invalid {where}: the local emulator deletes by developerMetadataLookup only.")
        doomed = self._lookup(book, lookup, where)
        book.developer_metadata = [m for m in book.developer_metadata if m not in doomed]
        return {"deleteDeveloperMetadata": {"deletedDeveloperMetadata": copy.deepcopy(doomed)}}

    def _values_write(self, book: Spreadsheet, data: list[dict], option: str | None) -> dict:
        planned = []
        for item in data:
            grid_range = parse_a1(item.get("range", ""))
            tab = self._tab(book.spreadsheet_id, grid_range.tab)
            planned.append(self._plan_write(tab, grid_range, item, item.get("range", "")))
        return self._write_planned(book, planned, option)

    @staticmethod
    def _plan_write(tab: Tab, grid_range: GridRange, item: dict, where: str, *, limit: bool = False) -> tuple:
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
            raise invalid(f"Invalid {where}: the values exceed the range matched by the data filter.")
        check_bounds(tab, row_end, col_end, where)
        return (tab, grid_range, values, row_end, col_end, item.get("dataFilter"))

    def _write_planned(self, book: Spreadsheet, planned: list[tuple], option: str | None) -> dict:
        if option not in ("RAW", "USER_ENTERED"):
            raise invalid("'valueInputOption' is required but not specified")
        responses, cells = [], 0
        for tab, grid_range, values, row_end, col_end, _filter in planned:
            for r, row in enumerate(values):
                for c, value in enumerate(row):
                    if value is None:  # Google: "Null values will be skipped."
                        continue
                    stored = parse_user_entered(value) if option == "USER_ENTERED" else value
                    put(
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

    def _batch_update(self, book: Spreadsheet, requests: list[dict]) -> dict:
        # Google applies a batch atomically: work on a copy and swap it in only if every request succeeds.
        staged = copy.copy(book)
        staged.tabs = [copy.copy(tab) for tab in book.tabs]
        for tab in staged.tabs:
            tab.rows = list(tab.rows)
        staged.developer_metadata = copy.deepcopy(book.developer_metadata)
        replies = []
        for index, request in enumerate(requests):
            if len(request) != 1:
                raise invalid(f"Invalid requests[{index}]: exactly one kind of request must be set.")
            ((name, spec),) = request.items()
            apply = BATCH_REQUESTS.get(name)
            if apply is None:
                raise invalid(
                    f"Invalid requests[{index}]: {name} is not supported by the local Google emulator."
                )
            replies.append(apply(self, staged, spec, f"requests[{index}].{name}") or {})
        book.tabs, book.developer_metadata = staged.tabs, staged.developer_metadata
        return {"spreadsheetId": book.spreadsheet_id, "replies": replies}

    def _update_cells(self, book: Spreadsheet, spec: dict, where: str) -> None:
        if "start" in spec:
            start = spec["start"]
            tab = self._tab_by_id(book, start.get("sheetId", 0), where)
            row0, col0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
        else:
            grid = spec.get("range", {})
            tab = self._tab_by_id(book, grid.get("sheetId", 0), where)
            row0, col0 = grid.get("startRowIndex", 0), grid.get("startColumnIndex", 0)
        if not spec.get("fields"):
            raise invalid(f"Invalid {where}: At least one field must be specified in 'fields'.")
        rows = spec.get("rows", [])
        width = max((len(row.get("values", [])) for row in rows), default=0)
        check_bounds(tab, row0 + len(rows), col0 + width, where)
        _copy_rows_on_write(tab, row0, row0 + len(rows))
        for r, row in enumerate(rows):
            for c, data in enumerate(row.get("values", [])):
                put(tab, row0 + r, col0 + c, from_extended_value(data))

    def _append_dimension(self, book: Spreadsheet, spec: dict, where: str) -> None:
        tab = self._tab_by_id(book, spec.get("sheetId", 0), where)
        if spec.get("dimension") == "COLUMNS":
            tab.column_count += int(spec.get("length", 0))
        else:
            tab.row_count += int(spec.get("length", 0))

    def _insert_dimension(self, book: Spreadsheet, spec: dict, where: str) -> None:
        tab, dimension, start, end = self._dimension_span(book, spec.get("range", {}), where)
        count = end - start
        if dimension == "ROWS":
            pad_rows(tab, start)
            tab.rows[start:start] = [[] for _ in range(count)]
            tab.row_count += count
        else:
            tab.rows = [
                row[:start] + [None] * count + row[start:] if len(row) > start else row for row in tab.rows
            ]
            tab.column_count += count
        remap_metadata(book, tab.sheet_id, dimension, lambda i: i if i < start else i + count)

    def _delete_dimension(self, book: Spreadsheet, spec: dict, where: str) -> None:
        tab, dimension, start, end = self._dimension_span(book, spec.get("range", {}), where)
        limit = tab.row_count if dimension == "ROWS" else tab.column_count
        if end > limit:
            raise invalid(
                f"Invalid {where}: Range ({start}:{end}) exceeds grid limits. Max {dimension.lower()}: {limit}"
            )
        count = end - start
        if dimension == "ROWS":
            del tab.rows[start:end]
            tab.row_count -= count
        else:
            tab.rows = [row[:start] + row[end:] for row in tab.rows]
            tab.column_count -= count
        remap_metadata(
            book, tab.sheet_id, dimension, lambda i: i if i < start else i - count, deleted=range(start, end)
        )

    def _move_dimension(self, book: Spreadsheet, spec: dict, where: str) -> None:
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
            pad_rows(tab, size)
            tab.rows = [tab.rows[old] for old in order]
        else:
            tab.rows = [[row[old] if old < len(row) else None for old in order] for row in tab.rows]
        remap_metadata(book, tab.sheet_id, dimension, lambda i: position.get(i, i))

    def _dimension_span(self, book: Spreadsheet, span: dict, where: str) -> tuple[Tab, str, int, int]:
        dimension = span.get("dimension")
        if dimension not in ("ROWS", "COLUMNS"):
            raise invalid(f"Invalid {where}: dimension must be ROWS or COLUMNS.")
        tab = self._tab_by_id(book, span.get("sheetId", 0), where)
        return tab, dimension, int(span.get("startIndex", 0)), int(span.get("endIndex", 0))


BATCH_REQUESTS: dict[str, Callable[[SheetsApi, Spreadsheet, dict, str], dict | None]] = {
    "updateCells": SheetsApi._update_cells,
    "appendDimension": SheetsApi._append_dimension,
    "insertDimension": SheetsApi._insert_dimension,
    "deleteDimension": SheetsApi._delete_dimension,
    "moveDimension": SheetsApi._move_dimension,
    "createDeveloperMetadata": SheetsApi._create_developer_metadata,
    "deleteDeveloperMetadata": SheetsApi._delete_developer_metadata,
    "duplicateSheet": SheetsApi._duplicate_sheet,
}


def _new_metadata_id(book: Spreadsheet) -> int:
    """A random positive 32-bit id not in use in the spreadsheet, as Google assigns one."""
    used = {entry["metadataId"] for entry in book.developer_metadata}
    while True:
        candidate = secrets.randbelow(2**31 - 1) + 1
        if candidate not in used:
            return candidate


def remap_metadata(
    book: Spreadsheet,
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


def _copy_rows_on_write(tab: Tab, start: int, end: int) -> None:
    """Give the staged tab its own copies of the rows a batch will edit (the rest stay shared)."""
    for index in range(start, min(end, len(tab.rows))):
        tab.rows[index] = list(tab.rows[index])
