"""The port sheet as people really keep it, through real ``port_sheet_sync_job`` runs against the emulator:
ids typed as numbers or booleans, dates in a non-UTC sheet, and people's edits between the push's read and
its write."""

from __future__ import annotations

import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.tasks import task_id_for
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]


def run_sync(*, succeed: bool = True):
    result = run_port_sheet_sync()
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
    (row,) = [row for row in table[1:] if row[header.index("id")] == key]
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
    result = run_port_sheet_sync(
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


# ------------------------------------------------------------------ people's edits between the read and the write

FAST = {"resources": {"google": {"config": {"retry_base_delay_s": 0.01}}}}


@pytest.fixture
def ports(google_emulator, google_token_file):
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [HEADER, ["a", "Lisbon", "do a"], ["b", "Porto", "do b"], ["c", "Faro"]],
    )
    return google_emulator


def sync_with(emulator, edit, *, before: str = "values_batch_update_by_data_filter"):
    """One run, with ``edit`` made by a person just before Google serves the push's write."""
    emulator.before(before, edit)
    result = run_port_sheet_sync(run_config=FAST, raise_on_error=False)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return materializations(result)["port_sheet_status"]


def column_values(emulator, letter: str) -> list:
    index = ord(letter) - ord("A")
    return [row[index] if index < len(row) else "" for row in rows(emulator)]


@pytest.mark.parametrize(
    ("letter", "what"),
    [("D", "before the owned columns"), ("C", "before the task column"), ("A", "before every column")],
)
def test_a_column_inserted_between_the_push_read_and_its_write_receives_nothing(ports, letter, what):
    metadata = sync_with(
        ports, lambda emulator: emulator.insert_column(PORT_SHEET_ID, PORT_SHEET_TAB, letter)
    )
    assert column_values(ports, letter) == [""] * 4, f"a column inserted {what} got pipeline values"
    assert cell(ports, "a", "agent_status") == "queued"
    assert cell(ports, "b", "agent_status") == "queued"
    assert cell(ports, "a", "task") == "do a", "the prompt is untouched"
    assert cell(ports, "c", "sync_issue") == ""
    assert metadata["row_check"].value == "every written row held its key when Google applied the write"
    # The next pull does not enqueue a task whose prompt is a status.
    assert materializations(run_sync())["port_sheet_tasks"]["enqueued"].value == 0


def test_an_owned_column_moved_between_the_read_and_the_write_still_gets_its_values(ports):
    def move(emulator):
        emulator.move_column(PORT_SHEET_ID, PORT_SHEET_TAB, "D", before="B")  # agent_status next to id

    sync_with(ports, move)
    header = rows(ports)[0]
    assert header[:3] == ["id", "agent_status", "port"]
    assert cell(ports, "a", "agent_status") == "queued"
    assert cell(ports, "a", "port") == "Lisbon" and cell(ports, "a", "task") == "do a"
    assert cell(ports, "b", "agent_turns") == 0


def test_a_column_deleted_between_the_read_and_the_write_takes_nothing_with_it(ports):
    def delete(emulator):
        emulator.delete_column(PORT_SHEET_ID, PORT_SHEET_TAB, "B")  # port

    sync_with(ports, delete)
    assert rows(ports)[0][:3] == ["id", "task", "agent_status"]
    assert cell(ports, "a", "task") == "do a"
    assert cell(ports, "a", "agent_status") == "queued"


def test_a_sort_and_a_row_insert_between_the_read_and_the_write_are_corrected_in_the_same_run(ports):
    def sort_and_insert(emulator):
        emulator.sort_rows(PORT_SHEET_ID, PORT_SHEET_TAB, column=1)  # by port: Faro, Lisbon, Porto
        emulator.insert_row(PORT_SHEET_ID, PORT_SHEET_TAB, 2, ["new", "Sines", "typed by a person"])

    metadata = sync_with(ports, sort_and_insert)
    assert [row[0] for row in rows(ports)[1:]] == ["new", "c", "a", "b"]
    assert cell(ports, "a", "agent_status") == "queued"
    assert cell(ports, "b", "agent_status") == "queued"
    # c has no task: whatever landed on its row in the window was put back.
    assert cell(ports, "c", "agent_status") == "" and cell(ports, "c", "agent_turns") == ""
    assert cell(ports, "new", "agent_status") == ""
    assert rows(ports)[1][:3] == ["new", "Sines", "typed by a person"]
    assert "put right in this run" in metadata["row_check"].value


def test_a_failed_write_followed_by_a_structural_edit_is_planned_again_not_re_sent(ports):
    def insert_then_fail(emulator):
        emulator.insert_column(PORT_SHEET_ID, PORT_SHEET_TAB, "D")
        emulator.fail_sheets(503, kinds=["values_batch_update_by_data_filter"], times=1)

    sync_with(ports, insert_then_fail)
    assert column_values(ports, "D") == [""] * 4
    assert cell(ports, "a", "agent_status") == "queued"


def test_the_re_plan_after_a_failed_write_reads_the_sheet_again(ports):
    ports.fail_sheets(503, kinds=["values_batch_update_by_data_filter"], times=1)
    metadata = sync_with(ports, lambda emulator: None, before="metadata")
    assert metadata["replans"].value == 1
    assert ports.calls["values_batch_update_by_data_filter"] == 2
    # The initial read, the setup's checking read, and the read of the re-plan.
    assert ports.calls["batch_get_by_data_filter"] == 3


# ------------------------------------------------------------------------------ the people's side of tasks


def test_a_task_cell_emptied_while_queued_cancels_its_task_and_the_status_says_so(ports):
    run_sync()
    task_id = task_id_for("a", "do a")
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2", None)  # a person empties the task cell
    metadata = materializations(run_sync())
    assert metadata["port_sheet_tasks"]["cancelled"].value == 1
    assert open_queue().get(task_id).status == "cancelled"
    assert open_queue().get(task_id_for("b", "do b")).status == "queued", "other rows keep their work"
    assert cell(ports, "a", "agent_status") == "cancelled"
    assert cell(ports, "a", "agent_summary").startswith("request removed: the task cell was emptied")
    # Once shown, nothing more to write for that row.
    assert materializations(run_sync())["port_sheet_status"]["write_calls"].value == 0


def test_a_task_cell_emptied_while_its_session_runs_lets_the_session_finish(ports):
    run_sync()
    queue = open_queue()
    lease = queue.claim(worker="test", lease_seconds=600)
    assert lease is not None and lease.task.id == task_id_for("a", "do a")
    assert queue.mark_running(lease, run_id="run-1")
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2", "")
    metadata = materializations(run_sync())
    assert metadata["port_sheet_tasks"]["cancelled"].value == 0
    assert metadata["port_sheet_tasks"]["left_running"].value == 1
    assert queue.get(lease.task.id).status == "running"
    assert queue.heartbeat(lease, lease_seconds=600), "the session still holds its lease"
    assert cell(ports, "a", "agent_status") == "running"
    assert "this session finishes, no new one starts" in cell(ports, "a", "agent_summary")


def test_a_prompt_changed_while_its_session_runs_queues_the_new_one_and_says_the_old_finishes(ports):
    run_sync()
    queue = open_queue()
    lease = queue.claim(worker="test", lease_seconds=600)
    assert queue.mark_running(lease, run_id="run-1")
    ports.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2", "do a, differently")
    run_sync()
    assert queue.get(lease.task.id).status == "running"
    assert queue.get(task_id_for("a", "do a, differently")).status == "queued"
    assert cell(ports, "a", "agent_status") == "queued"
    assert cell(ports, "a", "agent_summary").startswith(
        "request changed: the session on the previous request"
    )


def test_owned_columns_renamed_through_the_resource_are_filled_under_their_new_names(
    google_emulator, google_token_file
):
    renamed = ["Status", "Turns", "Cost (USD)", "Summary", "Updated", "Problem"]
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [["id", "port", "task", *renamed], ["a", "Lisbon", "do a"], ["b", "Porto", "", "", "lots"]],
    )
    result = run_port_sheet_sync(
        run_config={
            "resources": {
                "port_sheet": {"config": {"owned_columns": renamed, "column_types": {"Turns": "integer"}}}
            }
        },
        raise_on_error=False,
    )
    assert result.success
    assert cell(google_emulator, "a", "Status") == "queued"
    assert cell(google_emulator, "a", "Turns") == 0
    assert cell(google_emulator, "a", "Updated").endswith("Z")
    assert "Turns" in cell(google_emulator, "b", "Problem")


@pytest.mark.parametrize(
    "row_number", [2, 3, 4, 5], ids=["at the top", "in the middle", "above the last row", "at the end"]
)
def test_a_blank_row_inserted_just_before_the_write_ends_the_sync_with_empty_owned_cells(ports, row_number):
    def insert_blank(emulator):
        emulator.insert_row(PORT_SHEET_ID, PORT_SHEET_TAB, row_number)

    metadata = sync_with(ports, insert_blank)
    table = rows(ports)
    # Google leaves a trailing empty row out of its answer: an empty row at the end reads as no row.
    blank = table[row_number - 1] if row_number <= len(table) else [""] * len(HEADER)
    assert blank == [""] * len(HEADER), f"a status stayed on the keyless row: {blank}"
    assert [row[0] for row in table[1:] if row[0]] == ["a", "b", "c"]
    assert cell(ports, "a", "agent_status") == "queued" and cell(ports, "b", "agent_status") == "queued"
    assert cell(ports, "c", "sync_issue") == ""
    if row_number <= 3:  # the rows written for a and b moved under the write: put right in the same run
        assert "put right in this run" in metadata["row_check"].value
