"""Wall time and Google calls of the port-sheet pull, split into its stages, at 1,000 / 10,000 / 100,000 rows.

Runs against the LOCAL Google emulator (not Google), through the real google-auth + gspread HTTP stack:
- refresh: the token refresh that precedes any Sheets call (one POST to the token endpoint);
- read: the one ``values:batchGet`` of the whole tab (UNFORMATTED_VALUE), JSON decoding included;
- type: ``build_snapshot`` (typed DataFrame, quarantine of 1% bad rows);
- diff: ``key_changes`` against the previous pull with 1% of rows changed;
- store: the atomic JSON write under JADA_DATA_DIR.
The emulator serves from the same process, so "read" includes its rendering of the grid.

Run: ``.venv/bin/python bench/port_sheet_pull.py [--rows 1000 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from jada_pipelines.emulators.google import GoogleEmulator
from jada_pipelines.google_api.resources import GoogleCredentialsResource
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.pull import build_snapshot, key_changes, read_values
from jada_pipelines.port_sheet.resources import DEFAULT_COLUMN_TYPES
from jada_pipelines.port_sheet.store import write_snapshot

SPREADSHEET_ID = "bench-port-sheet"
TAB = "Ports"
HEADER = ["id", "port", "country", "owner", "berths", "notes", *DEFAULT_OWNED_COLUMNS]
TYPES = {**DEFAULT_COLUMN_TYPES, "berths": "integer"}


def rows(count: int, *, changed_every: int = 0) -> list[list]:
    body = []
    for n in range(count):
        berths = "lots" if n % 100 == 99 else n % 40  # 1% of rows fail their type and are quarantined
        name = f"Port {n}" + (" (renamed)" if changed_every and n % changed_every == 0 else "")
        body.append([f"P{n:06d}", name, "PT", "ops", berths, "", "done", 3, 0.12, "ok", "2026-11-28", ""])
    return [HEADER, *body]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def measure(emulator: GoogleEmulator, count: int, data_dir: Path) -> dict:
    emulator.set_sheet(SPREADSHEET_ID, TAB, rows(count))
    previous = build_snapshot(
        read_values(_session(), SPREADSHEET_ID, TAB), key_column="id", column_types=TYPES, pulled_at=_now()
    )
    emulator.set_sheet(SPREADSHEET_ID, TAB, rows(count, changed_every=100))
    emulator.reset_counters()
    session, refresh_s = timed(_session)
    values, read_s = timed(lambda: read_values(session, SPREADSHEET_ID, TAB))
    snapshot, type_s = timed(
        lambda: build_snapshot(values, key_column="id", column_types=TYPES, pulled_at=_now())
    )
    changes, diff_s = timed(lambda: key_changes(previous, snapshot))
    _, store_s = timed(lambda: write_snapshot(data_dir / "port_sheet_rows.json", snapshot))
    return {
        "rows": count,
        "token_calls": emulator.calls["token"],
        "sheets_calls": emulator.sheets_calls(),
        "refresh_s": round(refresh_s, 3),
        "read_s": round(read_s, 3),
        "type_s": round(type_s, 3),
        "diff_s": round(diff_s, 3),
        "store_s": round(store_s, 3),
        "total_s": round(refresh_s + read_s + type_s + diff_s + store_s, 3),
        "valid_rows": len(snapshot.rows),
        "quarantined": len(snapshot.quarantined),
        "changed_keys": len(changes.changed),
    }


def _session():
    return GoogleCredentialsResource().sheets()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    emulator = GoogleEmulator()
    emulator.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            token = Path(tmp) / "token.json"
            token.write_text(json.dumps(emulator.authorized_user_info()))
            os.environ.update(
                JADA_GOOGLE_TOKEN_FILE=str(token),
                JADA_GOOGLE_TOKEN_URI=emulator.token_uri,
                JADA_SHEETS_API_URL=emulator.base_url,
            )
            print(
                "rows     calls(token+sheets)  refresh  read    type    diff    store   total   quarantined changed"
            )
            for count in args.rows:
                m = measure(emulator, count, Path(tmp))
                print(
                    f"{m['rows']:>7}  {m['token_calls']}+{m['sheets_calls']:<18} {m['refresh_s']:<8} {m['read_s']:<7} "
                    f"{m['type_s']:<7} {m['diff_s']:<7} {m['store_s']:<7} {m['total_s']:<7} {m['quarantined']:<11} "
                    f"{m['changed_keys']}"
                )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
