"""The local port-sheet store (plain Python): each snapshot as JSON under ``$JADA_DATA_DIR/port_sheet/``.

Snapshots survive restarts, and the next pull compares against the last one. ``PortSheetStore`` in
``resources.py`` is the Dagster IO manager that reads and writes through these functions.

JSON rather than pickle: it stays readable by a person and by the next pandas version. Dtypes are stored
beside the values, so a reloaded snapshot is typed exactly as it was pulled.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jada_pipelines import settings
from jada_pipelines.google_api.tokens import write_private_json
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot, QuarantinedRow

if TYPE_CHECKING:
    import pandas as pd


class StoreError(RuntimeError):
    """A stored snapshot exists but cannot be read (truncated, hand-edited, or from an incompatible version)."""


def snapshot_path(name: str) -> Path:
    return settings.data_dir() / "port_sheet" / f"{name}.json"


def write_snapshot(path: Path, snapshot: PortSheetSnapshot) -> None:
    """Replace the stored snapshot atomically: a crash leaves the old one or the new one, never half of each."""
    frame = snapshot.rows
    document = {
        "header": snapshot.header,
        "key_column": snapshot.key_column,
        "pulled_at": snapshot.pulled_at.isoformat(),
        "problems": snapshot.problems,
        "quarantined": [asdict(row) for row in snapshot.quarantined],
        "dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()},
        "rows": _json_rows(frame),
    }
    # Compact: at 100,000 rows indenting costs more than the rest of the write.
    write_private_json(path, document, indent=None)


def read_snapshot(path: Path) -> PortSheetSnapshot | None:
    """The stored snapshot, or None when nothing was pulled yet; :class:`StoreError` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return _parse_snapshot(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(
            f"The stored port-sheet snapshot {path} cannot be read ({type(exc).__name__}: {str(exc)[:100]}). "
            "The next pull of port_sheet_rows replaces it (and reports every key as added); or delete the file."
        ) from None


def _parse_snapshot(text: str) -> PortSheetSnapshot:
    import pandas as pd

    document = json.loads(text)
    dtypes: dict[str, str] = document["dtypes"]
    frame = pd.DataFrame(document["rows"], columns=list(dtypes), dtype=object)
    for name, dtype in dtypes.items():
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").astype(dtype)
        else:
            frame[name] = frame[name].astype(dtype)
    return PortSheetSnapshot(
        header=document["header"],
        key_column=document["key_column"],
        rows=frame,
        quarantined=[QuarantinedRow(**row) for row in document["quarantined"]],
        pulled_at=datetime.fromisoformat(document["pulled_at"]),
        problems=document["problems"],
    )


def _json_rows(frame: pd.DataFrame) -> list[list[Any]]:
    cells = frame.astype(object)
    for name, dtype in frame.dtypes.items():
        if str(dtype).startswith("datetime64"):
            cells[name] = frame[name].map(lambda stamp: stamp.isoformat(), na_action="ignore")
    return cells.where(frame.notna(), None).to_numpy().tolist()


class SpreadsheetNotes:
    """What the push has learned about each spreadsheet, kept beside the snapshots
    (``$JADA_DATA_DIR/port_sheet/spreadsheets.json``) so later syncs start from it: each tab's ``sheetId``
    (the tags' ids derive from it), how Google answers the write's row check, and the tags the last set-up
    found on other tabs. ``path=None`` keeps the notes in memory only (engine tests, the benchmark).

    Losing the file costs one metadata read (and, at worst, one refused write that is sent again): every
    note is learned again from Google's answers.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._document: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}  # unreadable notes are relearned from Google's answers
        return document if isinstance(document, dict) else {}

    def get(self, spreadsheet_id: str) -> dict[str, Any]:
        notes = self._document.get(spreadsheet_id)
        return dict(notes) if isinstance(notes, dict) else {}

    def update(self, spreadsheet_id: str, **facts: Any) -> None:
        if self.path is not None:
            # Another configuration's push may have noted something since this one read the file.
            self._document = self._load()
        self._document[spreadsheet_id] = {**self.get(spreadsheet_id), **facts}
        if self.path is not None:
            write_private_json(self.path, self._document)


def notes_path() -> Path:
    return settings.data_dir() / "port_sheet" / "spreadsheets.json"
