"""The push writes only its own tab, through real syncs (``port_sheet_sync_job``, then ``port_sheet_push_job``) against the emulator: a tab
duplicated between two syncs or between the push's read and its write (its copies of the column tags come
along, the worst case Google's reference allows), and two tabs synced by two configurations of one
spreadsheet. In each, the other tab is byte-for-byte unchanged and both tabs keep their own tags."""

from __future__ import annotations

import copy

import pytest

from jada_pipelines.port_sheet.columns import tag_id
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]
TRACKED = ["id", *DEFAULT_OWNED_COLUMNS]


def run_sync(tab: str | None = None):
    config = {"resources": {"google": {"config": {"retry_base_delay_s": 0.01}}}}
    if tab is not None:
        config["resources"]["port_sheet"] = {"config": {"sheet_tab": tab}}
    result = run_port_sheet_sync(run_config=config)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def sheet_id(emulator, title: str) -> int:
    return next(tab.sheet_id for tab in emulator._book(PORT_SHEET_ID).tabs if tab.title == title)


def stored(emulator, title: str) -> tuple[list, list]:
    """The tab exactly as the emulator stores it (cells, formulas, empties) and its developer metadata."""
    with emulator._lock:
        tab = emulator._tab(PORT_SHEET_ID, title)
        tags = [
            entry
            for entry in emulator.developer_metadata(PORT_SHEET_ID)
            if entry["location"]["dimensionRange"]["sheetId"] == tab.sheet_id
        ]
        return copy.deepcopy(tab.rows), sorted(tags, key=lambda entry: entry["metadataId"])


def own_tags(emulator, title: str) -> dict[str, int]:
    """The tab's tags that carry the push's own id for their name, by name, with the column each is on."""
    tab_id = sheet_id(emulator, title)
    return {
        entry["metadataValue"]: entry["location"]["dimensionRange"]["startIndex"]
        for entry in stored(emulator, title)[1]
        if entry["metadataId"] == tag_id(tab_id, entry["metadataValue"])
    }


def cell(emulator, title: str, key: str, name: str):
    rows = emulator.sheet_values(PORT_SHEET_ID, title)
    row = next(row for row in rows[1:] if row and row[0] == key)
    index = rows[0].index(name)
    return row[index] if index < len(row) else ""


@pytest.fixture
def ports(google_emulator, google_token_file):
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [HEADER, ["a", "Lisbon", "do a"], ["b", "Porto", "do b"], ["c", "Faro"]],
    )
    return google_emulator


def test_a_tab_duplicated_between_two_syncs_is_never_written_and_keeps_its_copies_of_the_tags(ports):
    run_sync()
    copy_id = ports.duplicate_tab(PORT_SHEET_ID, PORT_SHEET_TAB)
    before = stored(ports, "Ports (copy)")
    assert len(before[1]) == len(TRACKED), "the copy carries the tags along, the worst case"
    # A person overwrites two owned cells in Ports: the next sync puts them back, in Ports only.
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "tampered")
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "I4", "tampered")
    metadata = run_sync()["port_sheet_status"]
    assert metadata["write_calls"].value == 1
    assert cell(ports, PORT_SHEET_TAB, "a", "agent_status") == "queued"
    assert cell(ports, PORT_SHEET_TAB, "c", "sync_issue") == ""
    assert stored(ports, "Ports (copy)") == before, "the duplicated tab was written or lost its tags"
    assert own_tags(ports, PORT_SHEET_TAB) == {name: HEADER.index(name) for name in TRACKED}
    assert copy_id != sheet_id(ports, PORT_SHEET_TAB)


def test_a_tab_duplicated_between_the_push_read_and_its_write_is_never_written(ports):
    run_sync()
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "tampered")
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D3", "tampered")
    seen = {}

    def duplicate(emulator):
        emulator.duplicate_tab(PORT_SHEET_ID, PORT_SHEET_TAB, "Ports archive")
        seen["copy"] = stored(emulator, "Ports archive")

    ports.before("values_batch_update_by_data_filter", duplicate)
    metadata = run_sync()["port_sheet_status"]
    assert metadata["write_calls"].value == 1
    assert stored(ports, "Ports archive") == seen["copy"], "the write landed in the duplicated tab too"
    assert cell(ports, "Ports archive", "a", "agent_status") == "tampered"
    assert cell(ports, PORT_SHEET_TAB, "a", "agent_status") == "queued"
    assert cell(ports, PORT_SHEET_TAB, "b", "agent_status") == "queued"
    assert own_tags(ports, PORT_SHEET_TAB) == {name: HEADER.index(name) for name in TRACKED}


def test_two_tabs_synced_by_two_configurations_keep_their_own_tags_and_never_write_each_other(ports):
    # The archive keeps its columns in another order, so a tag written through would land elsewhere.
    archive_header = ["id", "task", "port", *reversed(DEFAULT_OWNED_COLUMNS)]
    ports.set_sheet(PORT_SHEET_ID, "Archive", [archive_header, ["x", "do x", "Sines"], ["y", "", "Tavira"]])
    run_sync()
    ports_after_its_sync = stored(ports, PORT_SHEET_TAB)
    metadata = run_sync("Archive")["port_sheet_status"]
    assert metadata["write_calls"].value == 1
    # Archive's set-up saw Ports' tags: reported, never written or deleted.
    reported = metadata["tags_on_other_tabs"].value
    assert all(f"{name} on tab {sheet_id(ports, PORT_SHEET_TAB)}" in reported for name in TRACKED)
    assert cell(ports, "Archive", "x", "agent_status") == "queued"
    assert cell(ports, "Archive", "y", "sync_issue") == ""
    assert stored(ports, PORT_SHEET_TAB) == ports_after_its_sync, "syncing Archive touched Ports"
    archive_after_its_sync = stored(ports, "Archive")
    # A person tampers with Ports; its sync puts it back and leaves Archive exactly as it was.
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "tampered")
    assert run_sync()["port_sheet_status"]["write_calls"].value == 1
    assert cell(ports, PORT_SHEET_TAB, "a", "agent_status") == "queued"
    assert stored(ports, "Archive") == archive_after_its_sync, "syncing Ports touched Archive"
    assert own_tags(ports, PORT_SHEET_TAB) == {name: HEADER.index(name) for name in TRACKED}
    assert own_tags(ports, "Archive") == {name: archive_header.index(name) for name in TRACKED}
    # Each configuration's steady sync stays within the budget: no set-up after the first.
    assert run_sync("Archive")["port_sheet_status"]["setup_calls"].value == 0


def test_a_sync_pointed_at_a_copied_spreadsheet_uses_the_copied_tags_and_leaves_the_original_alone(
    ports, monkeypatch
):
    run_sync()
    ports.copy_spreadsheet(PORT_SHEET_ID, "copied-sheet")
    original = stored(ports, PORT_SHEET_TAB)
    monkeypatch.setenv("JADA_PORT_SHEET_ID", "copied-sheet")
    ports.set_cell("copied-sheet", PORT_SHEET_TAB, "D2", "tampered")
    metadata = run_sync()["port_sheet_status"]
    # The copy kept the tab's sheetId and the tags' ids: one read of the copy's sheetId, no tagging.
    assert (metadata["write_calls"].value, metadata["setup_calls"].value) == (1, 1)
    assert ports.sheet_values("copied-sheet", PORT_SHEET_TAB)[1][3] == "queued"
    assert stored(ports, PORT_SHEET_TAB) == original


def test_a_second_tag_for_a_name_on_the_tab_is_removed_by_the_set_up_and_reported(ports):
    # A tag from before tags had ids: the same key and value, a random id, on this tab's agent_status column.
    ports._book(PORT_SHEET_ID).developer_metadata.append(
        {
            "metadataId": 4242,
            "metadataKey": "jada_pipelines.port_sheet.column",
            "metadataValue": "agent_status",
            "visibility": "DOCUMENT",
            "location": {
                "locationType": "COLUMN",
                "dimensionRange": {"sheetId": 0, "dimension": "COLUMNS", "startIndex": 3, "endIndex": 4},
            },
        }
    )
    metadata = run_sync()["port_sheet_status"]
    assert metadata["extra_tags_removed"].value == 1
    assert 4242 not in {entry["metadataId"] for entry in ports.developer_metadata(PORT_SHEET_ID)}
    assert own_tags(ports, PORT_SHEET_TAB) == {name: HEADER.index(name) for name in TRACKED}
