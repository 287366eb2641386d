"""The status push against the Google emulator: people's edits survive, each status lands on its key's row,
values round-trip typed, and an unchanged sheet costs one read and no write."""

from __future__ import annotations

import pandas as pd
import pytest

from jada_pipelines.emulators.google import Formula
from jada_pipelines.google_api.resources import GoogleCredentialsResource
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.push import push_status
from jada_pipelines.port_sheet.store import SpreadsheetNotes, notes_path
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

HEADER = [
    "id",
    "name",
    "notes",
    "task",
    *DEFAULT_OWNED_COLUMNS,
]
OWNED = list(DEFAULT_OWNED_COLUMNS)


@pytest.fixture
def sheets(google_token_file):
    """A Sheets session from the `google` resource, pointed at the emulator by google_token_file."""
    session = GoogleCredentialsResource().sheets()
    yield session
    session.close()


@pytest.fixture
def sheet(google_emulator, google_token_file):
    """Three rows a, b, c; a formula in a people-owned column; no status yet."""
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [
            HEADER,
            ["a", "Lisbon", Formula('=UPPER("lisbon")', "LISBON"), "do a"],
            ["b", "Porto", "", "do b"],
            ["c", "Faro", "", ""],
        ],
    )
    google_emulator.reset_counters()
    return google_emulator


def wanted(rows: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", dtype=object).reindex(columns=OWNED)


def push(session, rows: dict[str, dict]):
    return push_status(
        session,
        spreadsheet_id=PORT_SHEET_ID,
        tab=PORT_SHEET_TAB,
        key_column="id",
        wanted=wanted(rows),
        notes=SpreadsheetNotes(notes_path()),
    )


def row_of(emulator, key: str) -> list:
    return next(row for row in emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB) if row and row[0] == key)


def cells(row: list, *names: str) -> list:
    return [row[HEADER.index(name)] if HEADER.index(name) < len(row) else "" for name in names]


def test_statuses_land_on_their_rows_in_one_read_and_one_write(sheets, sheet):
    result = push(sheets, {"a": {"agent_status": "done", "agent_turns": 4}, "b": {"agent_status": "queued"}})
    assert cells(row_of(sheet, "a"), "agent_status", "agent_turns") == ["done", 4]
    assert cells(row_of(sheet, "b"), "agent_status") == ["queued"]
    # The first push tags the columns once: a metadata read (the tab's sheetId), a search of the push's tags,
    # a batchUpdate and the read that checks it.
    assert (result.setup_calls, sheet.calls["metadata"], sheet.calls["batch_update"]) == (4, 1, 1)
    assert sheet.calls["developer_metadata_search"] == 1
    assert sheet.calls["values_batch_update_by_data_filter"] == 1
    assert sheet.sheets_calls() - result.setup_calls == 2
    sheet.reset_counters()
    result = push(sheets, {"a": {"agent_status": "running"}})
    assert result.setup_calls == 0 and sheet.sheets_calls() == 2
    assert cells(row_of(sheet, "a"), "agent_status") == ["running"]


def test_a_second_sync_with_no_changes_makes_no_write_call(sheets, sheet):
    status = {"a": {"agent_status": "done", "agent_turns": 4, "agent_cost_usd": 0.0123}}
    push(sheets, status)
    sheet.reset_counters()
    result = push(sheets, status)
    assert result.write_calls == 0
    assert sheet.calls["values_batch_update_by_data_filter"] == 0 and sheet.sheets_calls() == 1


def test_a_row_inserted_above_since_the_pull_keeps_its_content_and_the_status_finds_its_row(sheets, sheet):
    sheet.insert_row(PORT_SHEET_ID, PORT_SHEET_TAB, 2, ["new", "Sines", "", "typed by a person"])
    push(sheets, {"a": {"agent_status": "done"}, "b": {"agent_status": "running"}})
    assert row_of(sheet, "new") == ["new", "Sines", "", "typed by a person"]
    assert cells(row_of(sheet, "a"), "agent_status") == ["done"]
    assert cells(row_of(sheet, "b"), "agent_status") == ["running"]


def test_a_sort_since_the_pull_still_puts_each_status_on_its_own_key(sheets, sheet):
    sheet.sort_rows(PORT_SHEET_ID, PORT_SHEET_TAB, column=1)  # by name: Faro, Lisbon, Porto
    push(sheets, {"a": {"agent_status": "done"}, "b": {"agent_status": "failed"}, "c": {"agent_status": ""}})
    values = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    assert [row[0] for row in values[1:]] == ["c", "a", "b"]
    assert cells(row_of(sheet, "a"), "name", "agent_status") == ["Lisbon", "done"]
    assert cells(row_of(sheet, "b"), "name", "agent_status") == ["Porto", "failed"]


def test_a_deleted_row_is_reported_and_nothing_is_written_in_its_place(sheets, sheet):
    sheet.delete_row(PORT_SHEET_ID, PORT_SHEET_TAB, 2)  # row a
    result = push(sheets, {"a": {"agent_status": "done"}, "c": {"agent_status": "queued"}})
    assert result.plan.missing_keys == ["a"]
    values = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    assert [row[0] for row in values[1:]] == ["b", "c"]
    assert cells(row_of(sheet, "b"), "agent_status") == [""]
    assert cells(row_of(sheet, "c"), "agent_status") == ["queued"]


def test_a_person_editing_the_same_row_keeps_their_edit(sheets, sheet):
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "B3", "Porto (renamed)")
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D3", "do b, but carefully")
    push(sheets, {"b": {"agent_status": "running", "agent_turns": 2}})
    assert row_of(sheet, "b")[:6] == ["b", "Porto (renamed)", "", "do b, but carefully", "running", 2]


def test_a_formula_in_a_people_owned_column_is_still_a_formula_after_the_sync(sheets, sheet):
    push(sheets, {"a": {"agent_status": "done", "agent_summary": "ok"}})
    assert sheet.cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2") == Formula('=UPPER("lisbon")', "LISBON")
    formulas = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB, render_option="FORMULA")
    assert formulas[1][2] == '=UPPER("lisbon")'


@pytest.mark.parametrize("value", ["007", "1e5", "TRUE", "2026-11-28", "2026-11-28T02:00:00Z", ""])
def test_text_that_looks_like_another_type_round_trips_unchanged(sheets, sheet, value):
    push(sheets, {"a": {"agent_summary": value}, "b": {"agent_summary": "x"}})
    stored = sheet.cell(PORT_SHEET_ID, PORT_SHEET_TAB, "H2")
    assert stored == value or (value == "" and stored in ("", None))
    sheet.reset_counters()
    assert push(sheets, {"a": {"agent_summary": value}}).write_calls == 0


def test_numbers_and_booleans_go_out_typed(sheets, sheet):
    push(sheets, {"a": {"agent_turns": 30, "agent_cost_usd": 0.5, "agent_summary": True}})
    assert cells(row_of(sheet, "a"), "agent_turns", "agent_cost_usd", "agent_summary") == [30, 0.5, True]


def test_one_changed_cell_in_ten_thousand_rows_is_one_write_sized_by_its_row(
    sheets, google_emulator, google_token_file
):
    rows = [HEADER] + [[f"P{i:05d}", f"port {i}", "", "", "done", 3] for i in range(10_000)]
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, rows)
    status = {f"P{i:05d}": {"agent_status": "done", "agent_turns": 3} for i in range(10_000)}
    push(sheets, status)  # tags the columns (one-time setup) and finds nothing to write
    status["P04242"]["agent_turns"] = 4
    google_emulator.reset_counters()
    result = push(sheets, status)
    assert (
        google_emulator.calls["values_batch_update_by_data_filter"] == 1
        and google_emulator.sheets_calls() == 2
    )
    assert result.plan.changed_cells == 1
    # The column is found by Google, and values start at its row 1: 4,243 rows left alone at 3 bytes each.
    assert result.bytes_sent < 3 * 4243 + 600
    assert google_emulator.cell(PORT_SHEET_ID, PORT_SHEET_TAB, "F4244") == 4


def test_an_owned_column_missing_from_the_header_is_reported_and_the_others_still_land(sheets, sheet):
    header = HEADER[:-1]  # no sync_issue column
    sheet.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [header, ["a", "Lisbon"]])
    result = push(sheets, {"a": {"agent_status": "done", "sync_issue": "bad"}})
    assert result.plan.missing_columns == ["sync_issue"]
    assert sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB) == [header, ["a", "Lisbon", "", "", "done"]]


def test_a_write_over_the_size_limit_goes_out_in_several_requests_each_under_it(
    sheets, google_emulator, google_token_file
):
    rows = [HEADER] + [[f"P{i:05d}", f"port {i}"] for i in range(5_000)]
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, rows)
    status = {
        f"P{i:05d}": {"agent_status": "done", "agent_summary": f"ported {i} " + "x" * 40}
        for i in range(5_000)
    }
    google_emulator.reset_counters()
    # The limit is Google's 2 MB in production; a small one here makes the same split on a small sheet.
    result = push_status(
        sheets,
        spreadsheet_id=PORT_SHEET_ID,
        tab=PORT_SHEET_TAB,
        key_column="id",
        wanted=wanted(status),
        max_bytes=100_000,
    )
    writes = [r for r in google_emulator.requests if r["kind"] == "values_batch_update_by_data_filter"]
    assert len(writes) >= 3 and all(r["status"] == 200 for r in writes)
    assert max(r["bytes"] for r in writes) <= 100_000
    assert result.write_calls == len(writes) and result.unverified_cells == 0
    assert cells(row_of(google_emulator, "P04999"), "agent_status", "agent_summary") == [
        "done",
        "ported 4999 " + "x" * 40,
    ]
    assert all(row[4] == "done" for row in google_emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)[1:])
