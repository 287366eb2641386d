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


def test_dates_times_and_date_times_come_through_as_people_see_them_in_a_non_utc_sheet(
    google_emulator, google_token_file
):
    header = ["id", "opened", "due", "slot", "seen_at", "share", "fee", "stay"]
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [header, ["a"], ["b"], ["c"]])
    google_emulator.set_time_zone(PORT_SHEET_ID, "America/New_York")
    typed = {
        # a: untyped columns keep what people see; `due` and `seen_at` are typed datetime.
        "B2": "2026-05-13",
        "C2": "2026-05-13",
        "D2": "13:45",
        "E2": "2026-07-01 09:30",
        "F2": "15%",
        "G2": "$1,234.50",
        "H2": "36:00:00",
        "B3": "5/13/2026",
        "C3": "1/15/2026",
        "E4": "1:45 PM",
    }
    for a1, text in typed.items():
        google_emulator.enter(PORT_SHEET_ID, PORT_SHEET_TAB, a1, text)
    result = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(
        run_config={
            "resources": {
                "port_sheet": {"config": {"column_types": {"due": "datetime", "seen_at": "datetime"}}}
            }
        },
        raise_on_error=False,
    )
    assert result.success
    metadata = materializations(result)["port_sheet_rows"]
    assert metadata["time_zone"].value == "America/New_York"
    from jada_pipelines.port_sheet.store import read_snapshot, snapshot_path

    snapshot = read_snapshot(snapshot_path("port_sheet_rows"))
    a = snapshot.rows.set_index("id").loc["a"]
    assert (a["opened"], a["slot"], a["share"], a["fee"], a["stay"]) == (
        "2026-05-13",
        "13:45:00",
        "0.15",
        "1234.5",
        "36:00:00",
    )
    # Midnight and 09:30 in New York (EDT, UTC-4) are 04:00 and 13:30 UTC.
    assert a["due"].isoformat() == "2026-05-13T04:00:00+00:00"
    assert a["seen_at"].isoformat() == "2026-07-01T13:30:00+00:00"
    assert snapshot.rows.set_index("id").loc["b", "opened"] == "5/13/2026"
    # In January New York is on EST (UTC-5).
    assert snapshot.rows.set_index("id").loc["b", "due"].isoformat() == "2026-01-15T05:00:00+00:00"
    # A time with no date in a datetime column would be a different instant on every pull: quarantined.
    (quarantined,) = snapshot.quarantined
    assert quarantined.key == "c" and "time without a date" in quarantined.reason
