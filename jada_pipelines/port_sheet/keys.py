"""The one definition of a row key (plain pandas), shared by the pull and the push.

A key cell may come back from ``UNFORMATTED_VALUE`` as text, a number or a boolean; both halves turn it into
the same text, so a key read as the number 7 by the pull matches the "7" the push finds at write time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pandas.api.types import infer_dtype


def key_text(value: Any) -> str | None:
    """A key cell as text, so a key read as the number 7 matches "7"; None when the cell is empty.

    "007" stays "007": only numbers are rewritten, and an integral float loses its ".0" the way the sheet
    shows it.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def key_texts(cells: Sequence[Any]) -> pd.Series:
    """``key_text`` of every cell; a column of strings (nearly every sheet) takes the vectorised path.

    pandas' ``.str`` accessor refuses a column holding no string at all (ids typed as numbers, which
    ``UNFORMATTED_VALUE`` returns as JSON numbers), so any other column goes cell by cell through
    ``key_text``, the one definition of a key shared with the pull.
    """
    raw = pd.Series(cells, dtype=object)
    if infer_dtype(raw, skipna=True) != "string":
        return raw.map(key_text).astype(object)
    texts = raw.str.strip().astype(object)
    return texts.where(texts.notna() & (texts != ""), None)
