"""What one pull of the port sheet produced: typed rows keyed by the key column, and the rows set aside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd


@dataclass(frozen=True)
class QuarantinedRow:
    """A sheet row left out of ``rows`` and why (a missing or duplicate key, or a cell that fails its type)."""

    row_number: int
    key: str | None
    reason: str


@dataclass(frozen=True)
class PortSheetSnapshot:
    """The port sheet as of ``pulled_at``.

    ``rows`` holds the valid rows, typed, one per key, with ``_row_number`` (the 1-based sheet row).
    ``problems`` lists what makes the whole sheet unusable (no header, no key column); the
    ``port_sheet_rows_valid`` check fails with ERROR when it is not empty.
    """

    header: list[str]
    key_column: str
    rows: pd.DataFrame
    quarantined: list[QuarantinedRow]
    pulled_at: datetime
    problems: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [] if self.rows.empty else list(self.rows[self.key_column])
