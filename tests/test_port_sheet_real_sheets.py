"""The port sheet as people really keep it, through real ``port_sheet_sync_job`` runs against the emulator:
ids typed as numbers or booleans, dates in a non-UTC sheet, and people's edits between the push's read and
its write."""

from __future__ import annotations

import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.definitions import defs
from jada_pipelines.port_sheet.resources import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.tasks import task_id_for
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]


def run_sync(*, succeed: bool = True):
    result = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(raise_on_error=False)
    if succeed:
        assert result.success, [event.message for event in result.all_events if event.is_failure]
    return result


def materializations(result) -> dict:
    return {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def rows(emulator) -> list[list]:
    values = emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    return [row + [""] * (len(values[0]) - len(row)) for row in values]


def cell(emulator, key, name):
    table = rows(emulator)
    header = table[0]
    (row,) = [row for row in table[1:] if row[0] == key]
    return row[header.index(name)]


@pytest.mark.parametrize(
    ("ids", "texts"),
    [
        ([101, 102], ["101", "102"]),
        ([101.0, 102.0], ["101", "102"]),
        ([True, False], ["TRUE", "FALSE"]),
    ],
    ids=["integers", "floats", "booleans"],
)
def test_a_sheet_whose_ids_are_all_numbers_or_booleans_syncs(google_emulator, google_token_file, ids, texts):
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [HEADER, [ids[0], "Lisbon", "do it"], [ids[1], "Porto"]],
    )
    metadata = materializations(run_sync())
    assert metadata["port_sheet_tasks"]["enqueued"].value == 1
    assert open_queue().get(task_id_for(texts[0], "do it")).status == "queued"
    assert cell(google_emulator, ids[0], "agent_status") == "queued"
    assert cell(google_emulator, ids[1], "sync_issue") == ""
    # The ids themselves are people's cells: still numbers (or booleans), untouched.
    assert [row[0] for row in rows(google_emulator)[1:]] == ids
