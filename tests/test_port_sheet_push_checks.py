"""The push's row check never claims what it did not check, through real syncs (``port_sheet_sync_job``, then ``port_sheet_push_job``): when
Google's answer to the write carries no key column, or Google refuses the write's empty key-column item, the
rows are verified by a separate read (and the refusal is remembered per spreadsheet, so later syncs do not
fail first); and a 400 on a write is not mistaken for a sheet the account cannot open."""

from __future__ import annotations

import pytest

from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]
WRITE = "values_batch_update_by_data_filter"


def run_sync(*, succeed: bool = True):
    result = run_port_sheet_sync(
        run_config={"resources": {"google": {"config": {"retry_base_delay_s": 0.01}}}}
    )
    if succeed:
        assert result.success, [event.message for event in result.all_events if event.is_failure]
    return result


def status_metadata(result) -> dict:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "port_sheet_status"
    ]
    return event.materialization.metadata


def cell(emulator, key: str, name: str):
    rows = emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    row = next(row for row in rows[1:] if row and row[0] == key)
    index = HEADER.index(name)
    return row[index] if index < len(row) else ""


@pytest.fixture
def ports(google_emulator, google_token_file):
    """A synced sheet (tags set up), with a person's overwrite of an owned cell for the next sync to undo."""
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [HEADER, ["a", "Lisbon", "do a"], ["b", "Porto", "do b"], ["c", "Faro"]],
    )
    run_sync()
    google_emulator.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "tampered")
    google_emulator.reset_counters()
    return google_emulator


def test_a_write_answered_as_the_reference_reads_is_checked_from_its_own_answer_in_four_calls(ports):
    metadata = status_metadata(run_sync())
    assert metadata["row_check"].value == "every written row held its key when Google applied the write"
    assert ports.sheets_calls() == 4


def test_a_write_answer_without_the_key_column_is_verified_by_a_separate_read_in_five_calls(ports):
    ports.answer_empty_items("omit")
    metadata = status_metadata(run_sync())
    assert metadata["row_check"].value.startswith("verified by a separate read")
    assert "no updatedData" in metadata["row_check"].value
    assert cell(ports, "a", "agent_status") == "queued"
    # The pull's two calls, the push's read, its write, and the read that checks the rows.
    assert ports.sheets_calls() == 5 and ports.calls["batch_get_by_data_filter"] == 2


def test_rows_sorted_in_the_window_are_still_found_and_put_right_by_the_separate_read(ports):
    ports.answer_empty_items("omit")

    def sort(emulator):
        emulator.sort_rows(PORT_SHEET_ID, PORT_SHEET_TAB, column=1, reverse=True)  # Porto, Lisbon, Faro

    ports.before(WRITE, sort)
    metadata = status_metadata(run_sync())
    assert "put right in this run" in metadata["row_check"].value
    assert "verified by a separate read" in metadata["row_check"].value
    assert cell(ports, "a", "agent_status") == "queued" and cell(ports, "b", "agent_status") == "queued"


def test_a_refused_key_column_item_is_sent_again_without_it_and_remembered_for_later_syncs(ports):
    ports.answer_empty_items("refuse")
    metadata = status_metadata(run_sync())
    assert cell(ports, "a", "agent_status") == "queued"
    assert metadata["row_check"].value.startswith("verified by a separate read")
    assert "refused" in metadata["row_check"].value
    writes = [request["status"] for request in ports.requests if request["kind"] == WRITE]
    assert writes == [400, 200]
    from jada_pipelines.port_sheet.store import SpreadsheetNotes, notes_path

    assert SpreadsheetNotes(notes_path()).get(PORT_SHEET_ID)["row_check_fallback"]
    # The next sync does not fail first: one write, without the item, checked by a separate read.
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D3", "tampered")
    ports.reset_counters()
    metadata = status_metadata(run_sync())
    assert [request["status"] for request in ports.requests if request["kind"] == WRITE] == [200]
    assert cell(ports, "b", "agent_status") == "queued"
    assert ports.sheets_calls() == 5


def test_a_400_on_the_write_is_not_reported_as_a_sheet_the_account_cannot_open(ports):
    ports.fail_sheets(400, kinds=[WRITE])
    result = run_sync(succeed=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    assert data.metadata["failure_class"].value == "request_refused"
    assert "access is fine" in data.description and "share the sheet" not in data.description
    assert cell(ports, "a", "agent_status") == "tampered", "nothing was written"
