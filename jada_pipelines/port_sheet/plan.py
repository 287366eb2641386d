"""The push's plan (plain pandas, no Dagster, no HTTP): which pipeline-owned cells differ from the sheet.

The push (``push.py``) reads the key column and the owned columns where Google finds them now
(``columns.py``), as ``SheetColumns``, and asks ``plan_push`` which cells to write: as
``CellWrite``s for a write addressed by column metadata, or as one ``values:batchUpdate`` body.

Why keyed: people insert, delete and sort rows at any time, so a row's position at the pull means nothing at
the push. Every write is addressed by where the row's key is *now*, in a read made just before the write.
Why RAW and typed: ``USER_ENTERED`` would turn "007" into 7 and ISO dates into serial numbers.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from jada_pipelines.port_sheet.a1 import column_letter, column_runs, quote_tab
from jada_pipelines.port_sheet.keys import key_texts

# Column contents (pandas.api.types.infer_dtype, NA skipped) that cannot hold a bool.
_NO_BOOLS = {"string", "integer", "floating", "mixed-integer-float", "empty"}


@dataclass(frozen=True)
class SheetColumns:
    """A fresh read of some columns: the whole header row and, per column read, the cells below it.

    Every column in ``cells`` has the same length (one entry per sheet row below the header), padded with
    "" where the API left trailing empties out.
    """

    header: list[str]
    cells: dict[str, list[Any]]

    @property
    def row_count(self) -> int:
        return max((len(column) for column in self.cells.values()), default=0)


class CellWrite(NamedTuple):
    """One owned cell to write: its column's name, its 1-based sheet row, the key read on that row, a value.

    A named tuple, not a dataclass: a full change of a big sheet makes hundreds of thousands of them.
    """

    column: str
    row: int
    key: str
    value: Any


@dataclass(frozen=True)
class PushPlan:
    """What one push will write, and what it could not.

    ``body`` is a ``values:batchUpdate`` request body, or None when no cell differs (then make no call).
    """

    body: dict[str, Any] | None
    changed_cells: int
    changed_rows: int
    ranges: int
    missing_columns: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)
    # Every changed cell, for a write addressed by column metadata instead of A1 ranges.
    writes: list[CellWrite] = field(default_factory=list)


def plan_push(
    wanted: pd.DataFrame,
    sheet: SheetColumns,
    *,
    tab: str,
    key_column: str,
    every_row_columns: Sequence[str] = (),
    keyless_columns: Sequence[str] = (),
    a1_body: bool = True,
) -> PushPlan:
    """Plan one RAW, typed write of the wanted cells that differ from the sheet, each on its key's current row.

    ``wanted`` is indexed by key text and has one column per owned column to sync; a missing value there
    (None/NaN) leaves the cell alone. Keys that are missing from the sheet or on several rows now, and wanted
    columns missing from its header, are reported and not written, except that a key on several rows gets
    its ``every_row_columns`` cells (the quarantine reason: the same for each of those rows) on every one of
    them. A row with no key gets its non-empty ``keyless_columns`` cells emptied (a status written there was
    meant for a keyed row that moved; nothing can put it back by key). Nothing else is ever written: no row
    is added, deleted, moved or cleared.
    """
    missing_columns = [name for name in wanted.columns if name not in sheet.header]
    columns = sorted(
        (name for name in wanted.columns if name in sheet.cells and name != key_column),
        key=sheet.header.index,
    )
    keys = key_texts(sheet.cells.get(key_column, []))
    counts = keys.value_counts()
    duplicated = set(counts.index[counts > 1])
    unique = keys[keys.notna() & ~keys.isin(duplicated)]
    offsets = pd.Index(unique.to_numpy()).get_indexer(wanted.index)
    found = offsets >= 0
    wanted_rows = np.flatnonzero(found)
    sheet_offsets = unique.index.to_numpy()[offsets[found]]
    shared = [position for position, name in enumerate(columns) if name in every_row_columns]
    if shared and duplicated:
        # Each (wanted row, sheet row) pair of a key that sits on several rows: only its shared cells are set.
        pairs = [
            (wanted.index.get_loc(key), offset)
            for key in wanted.index.intersection(list(duplicated))
            for offset in np.flatnonzero((keys == key).to_numpy())
        ]
        wanted_rows = np.r_[wanted_rows, [w for w, _ in pairs]].astype(np.int64)
        sheet_offsets = np.r_[sheet_offsets, [o for _, o in pairs]].astype(np.int64)

    wanted_cells = wanted[columns].to_numpy(dtype=object)[wanted_rows]
    others = [position for position in range(len(columns)) if position not in shared]
    if shared and duplicated and others:
        wanted_cells[np.ix_(np.arange(found.sum(), len(wanted_rows)), others)] = None
    sheet_cells = np.empty_like(wanted_cells)
    for position, name in enumerate(columns):
        sheet_cells[:, position] = np.asarray(sheet.cells[name], dtype=object)[sheet_offsets]
    changed = _changed(sheet_cells, wanted_cells)

    # Sheet row numbers: 1-based, and row 1 is the header.
    row_numbers = sheet_offsets + 2
    if a1_body:
        data = _coalesce(changed, wanted_cells, row_numbers, [sheet.header.index(n) for n in columns], tab)
    else:
        data = []
    unlocated = wanted.index[~found]
    at, where = np.nonzero(changed)
    # Column by column, top to bottom: the order the metadata write sends them in.
    order = np.lexsort((row_numbers[at], where))
    at, where = at[order], where[order]
    names = np.asarray(columns, dtype=object)[where].tolist() if len(columns) else []
    keys_of = wanted.index.to_numpy()[wanted_rows][at].tolist()
    values = wanted_cells[at, where].tolist()
    with _collector_paused():
        writes = list(
            map(CellWrite._make, zip(names, row_numbers[at].tolist(), keys_of, values, strict=True))
        )
    cleared = _keyless_clears(sheet, keys, [name for name in columns if name in keyless_columns])
    if cleared:
        writes = sorted([*writes, *cleared], key=lambda cell: (columns.index(cell.column), cell.row))
    return PushPlan(
        body={"valueInputOption": "RAW", "data": data} if data else None,
        changed_cells=int(changed.sum()) + len(cleared),
        changed_rows=int(changed.any(axis=1).sum()) + len({cell.row for cell in cleared}),
        ranges=len(data),
        missing_columns=missing_columns,
        missing_keys=[str(key) for key in unlocated if key not in duplicated],
        duplicate_keys=[str(key) for key in unlocated if key in duplicated],
        writes=writes,
    )


def _keyless_clears(sheet: SheetColumns, keys: pd.Series, columns: list[str]) -> list[CellWrite]:
    """An empty value for each non-empty cell of ``columns`` on a row whose key cell is empty."""
    keyless = np.flatnonzero(keys.isna().to_numpy())
    cleared = []
    for name in columns:
        column = sheet.cells[name]
        cleared += [
            CellWrite(name, int(offset) + 2, None, "")  # type: ignore[arg-type]
            for offset in keyless
            if offset < len(column) and column[offset] not in ("", None)
        ]
    return cleared


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a full change builds hundreds of thousands of small
    tuples: it would otherwise rescan them over and over (half the time at 100,000 rows). They hold no
    cycles, so nothing is left for it to find afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _changed(sheet_cells: np.ndarray, wanted_cells: np.ndarray) -> np.ndarray:
    """Cells whose wanted value is set and differs from the sheet's as the Sheets API types values.

    Sheet cells come from JSON, so an empty cell is "" there, never None.
    """
    keep = pd.isna(wanted_cells)
    equal = (sheet_cells == wanted_cells) | ((sheet_cells == "") & (wanted_cells == ""))
    for column in range(wanted_cells.shape[1]):
        # Python says True == 1 and False == 0.0; the sheet does not. Only a column holding a bool on
        # either side needs a type look, and infer_dtype tells that in one C pass.
        if {infer_dtype(sheet_cells[:, column]), infer_dtype(wanted_cells[:, column])} <= _NO_BOOLS:
            continue
        suspect = np.flatnonzero(equal[:, column])
        equal[suspect, column] = [
            isinstance(a, bool) == isinstance(b, bool)
            for a, b in zip(sheet_cells[suspect, column], wanted_cells[suspect, column], strict=True)
        ]
    return ~keep & ~equal


def _coalesce(
    changed: np.ndarray,
    wanted_cells: np.ndarray,
    row_numbers: np.ndarray,
    column_indices: list[int],
    tab: str,
) -> list[dict[str, Any]]:
    """One range per rectangle of changed cells: adjacent sheet rows with the same changed columns, split
    into runs of adjacent sheet columns. Unchanged cells are never inside a range, so never rewritten."""
    # One bit per owned column (at most 63 of them): rows with equal masks changed the same columns.
    masks = changed.astype(np.int64) @ (np.int64(1) << np.arange(changed.shape[1], dtype=np.int64))
    order = np.argsort(row_numbers, kind="stable")
    order = order[masks[order] != 0]
    rows, masks = row_numbers[order], masks[order]
    if not len(rows):
        return []
    starts = np.flatnonzero(np.r_[True, (np.diff(rows) != 1) | (masks[1:] != masks[:-1])])
    ends = np.r_[starts[1:], len(rows)]
    position_of = {index: position for position, index in enumerate(column_indices)}
    data = []
    for start, end in zip(starts, ends, strict=True):
        indices = [index for position, index in enumerate(column_indices) if masks[start] >> position & 1]
        block = wanted_cells[order[start:end]]
        for run in column_runs(indices):
            picked = [position_of[index] for index in run]
            # ROWS is the default major dimension, and a one-cell range needs no ":": bytes count at 1% change.
            first = f"{column_letter(run[0])}{rows[start]}"
            last = f"{column_letter(run[-1])}{rows[end - 1]}"
            a1 = first if first == last else f"{first}:{last}"
            data.append({"range": f"{quote_tab(tab)}!{a1}", "values": block[:, picked].tolist()})
    return data
