"""A1 notation (plain Python): column letters, quoted tab names and ranges, as the Sheets API reads them.

One place for the pull, the push and the demo CLI ("A1 notation" in
https://developers.google.com/sheets/api/guides/concepts). The Google emulator keeps its own parser on
purpose, so the two are checked against each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_COLUMN = re.compile(r"^\$?([A-Za-z]+)")


def column_letter(index: int) -> str:
    """A1 column letters for a 0-based column index: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_index(a1: str) -> int:
    """The 0-based first column of an A1 range such as ``'Ports'!F1:F1000``."""
    cells = a1.rpartition("!")[2]
    match = _COLUMN.match(cells)
    if match is None:
        return -1
    index = 0
    for char in match.group(1).upper():
        index = index * 26 + ord(char) - 64
    return index - 1


def quote_tab(tab: str) -> str:
    """The tab name as A1 notation wants it: always quoted, inner quotes doubled."""
    return "'" + tab.replace("'", "''") + "'"


def sheet_range(tab: str) -> str:
    """The A1 range of the whole tab: one read returns every row and column."""
    return quote_tab(tab)


def column_runs(indices: Sequence[int]) -> list[list[int]]:
    """Split sorted column indices into runs of adjacent columns: [0, 1, 3] → [[0, 1], [3]]."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs
