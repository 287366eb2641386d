"""A1 notation as Google parses it, for the LOCAL Google emulator (not Google).

A1 notation: https://developers.google.com/sheets/api/guides/concepts#cell
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jada_pipelines.emulators.google.faults import invalid

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
        raise invalid(f"Unable to parse range: {a1}")
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
            raise invalid(f"Unable to parse range: {a1}")
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
        raise invalid(f"Unable to parse range: {a1}")
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
