"""One sync (the pull, then the push it starts) reads the sheet, queues the work it asks for and writes the status back,
within four Google calls; a rerun with nothing new writes nothing; quarantined rows get only their reason."""

from __future__ import annotations

import dagster as dg
import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.definitions import defs
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.tasks import task_id_for
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]


@pytest.fixture
def sheet(google_emulator, google_token_file):
    google_emulator.set_sheet(
        PORT_SHEET_ID,
        PORT_SHEET_TAB,
        [
            HEADER,
            ["a", "Lisbon", "do a"],
            ["b", "Porto"],
            # A person typed text into an integer column: the pull quarantines the row.
            ["c", "Faro", "", "", "lots"],
        ],
    )
    return google_emulator


def run_sync():
    result = run_port_sheet_sync()
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def row_of(emulator, key: str) -> list:
    row = next(row for row in emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB) if row and row[0] == key)
    return row + [""] * (len(HEADER) - len(row))


def column(row: list, name: str):
    return row[HEADER.index(name)]


def test_the_job_holds_the_three_assets_and_the_lineage_runs_rows_then_tasks_then_status():
    rows, tasks, status = (
        dg.AssetKey(name) for name in ("port_sheet_rows", "port_sheet_tasks", "port_sheet_status")
    )
    graph = defs.resolve_asset_graph()
    assert graph.get(tasks).parent_keys == {rows}
    assert graph.get(status).parent_keys == {rows, tasks}
    # The pull and the push are two runs: a failed pull plans nothing of the push (see port_sheet/jobs.py).
    assert defs.resolve_job_def("port_sheet_sync_job").asset_layer.selected_asset_keys == {rows}
    assert defs.resolve_job_def("port_sheet_push_job").asset_layer.selected_asset_keys == {tasks, status}


def test_one_run_queues_the_work_and_writes_its_status_within_four_google_calls(sheet):
    sheet.reset_counters()
    metadata = run_sync()
    assert set(metadata) == {"port_sheet_rows", "port_sheet_tasks", "port_sheet_status"}
    assert metadata["port_sheet_tasks"]["enqueued"].value == 1
    assert metadata["port_sheet_tasks"]["task_column"].value == "task"
    task = open_queue().get(task_id_for("a", "do a"))
    assert task.status == "queued" and task.source == "port_sheet:a"
    row = row_of(sheet, "a")
    assert [column(row, name) for name in ("agent_status", "agent_turns", "agent_cost_usd")] == [
        "queued",
        0,
        0,
    ]
    assert column(row, "agent_updated_at").endswith("Z")
    # The first run tags the key and owned columns once (developer metadata): counted apart. The tab's
    # sheetId, a search of the push's tags, the batchUpdate that tags, and the read that checks it.
    setup = metadata["port_sheet_status"]["setup_calls"].value
    assert setup == 4
    assert metadata["port_sheet_status"]["google_api_calls"].value - setup == 2
    assert sheet.sheets_calls() - setup <= 4
    # A person overwrote a pipeline-owned cell: the next run puts the status back, in the steady budget.
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "tampered")
    sheet.reset_counters()
    metadata = run_sync()
    assert column(row_of(sheet, "a"), "agent_status") == "queued"
    assert metadata["port_sheet_status"]["setup_calls"].value == 0
    assert metadata["port_sheet_status"]["write_calls"].value == 1
    assert sheet.sheets_calls() == 4


def test_a_quarantined_row_gets_its_reason_and_keeps_every_other_cell(sheet):
    run_sync()
    row = row_of(sheet, "c")
    assert "agent_turns" in column(row, "sync_issue")
    assert row[:5] == ["c", "Faro", "", "", "lots"]
    assert column(row_of(sheet, "b"), "sync_issue") == ""


def test_rows_sharing_a_key_each_get_the_reason_in_sync_issue_and_nothing_else(sheet):
    sheet.append_row(PORT_SHEET_ID, PORT_SHEET_TAB, ["b", "Porto again", "do b"])
    run_sync()
    values = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    rows = [row + [""] * (len(HEADER) - len(row)) for row in values[1:] if row[0] == "b"]
    assert [row[:4] for row in rows] == [["b", "Porto", "", ""], ["b", "Porto again", "do b", ""]]
    assert [column(row, "sync_issue") for row in rows] == [
        "the key 'b' appears on rows 3, 5: give each row its own key"
    ] * 2


def test_a_second_run_with_nothing_new_makes_no_write_call(sheet):
    run_sync()
    sheet.reset_counters()
    metadata = run_sync()
    assert sheet.calls["values_batch_update_by_data_filter"] == 0
    assert metadata["port_sheet_tasks"]["already_known"].value == 1
    assert metadata["port_sheet_status"]["write_calls"].value == 0


def test_editing_a_prompt_in_the_sheet_supersedes_the_old_task(sheet):
    run_sync()
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2", "do a, differently")
    metadata = run_sync()
    assert metadata["port_sheet_tasks"]["superseded"].value == 1
    queue = open_queue()
    assert queue.get(task_id_for("a", "do a")).status == "superseded"
    assert queue.get(task_id_for("a", "do a, differently")).status == "queued"
    assert column(row_of(sheet, "a"), "agent_status") == "queued"


def test_a_sheet_without_its_task_column_says_so_in_the_tasks_metadata(sheet):
    sheet.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [["id", "port", "Prompt", *DEFAULT_OWNED_COLUMNS], ["a"]])
    metadata = run_sync()
    assert metadata["port_sheet_tasks"]["requested"].value == 0
    assert metadata["port_sheet_tasks"]["task_column"].value == (
        "task (not in the header row: no row can ask for work)"
    )


def test_a_missing_owned_column_fails_its_check_naming_the_column_to_add(sheet):
    header = HEADER[:-1]
    sheet.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [header, ["a", "Lisbon", "do a"]])
    result = run_port_sheet_sync()
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    check = evaluations["port_sheet_status_columns_present"]
    assert not check.passed
    assert "Add the column(s) 'sync_issue' to the header row of tab 'Ports'" in check.description
    assert column([*row_of(sheet, "a"), ""], "agent_status") == "queued"


def test_rows_people_insert_and_sort_between_the_pull_and_the_push_keep_their_content(sheet):
    def person_edits(emulator):
        emulator.insert_row(PORT_SHEET_ID, PORT_SHEET_TAB, 2, ["new", "Sines", "typed by a person"])
        emulator.sort_rows(PORT_SHEET_ID, PORT_SHEET_TAB, column=1, reverse=True)  # by port, Z to A

    # The person's edits land between the pull's read and the push's read.
    sheet.before("batch_get_by_data_filter", person_edits)
    run_sync()
    values = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    assert [row[0] for row in values[1:]] == ["new", "b", "a", "c"]
    assert row_of(sheet, "new")[:3] == ["new", "Sines", "typed by a person"]
    assert column(row_of(sheet, "new"), "agent_status") == ""
    assert column(row_of(sheet, "a"), "agent_status") == "queued"
    assert "agent_turns" in column(row_of(sheet, "c"), "sync_issue")


def test_a_row_deleted_and_a_people_cell_edited_between_the_pull_and_the_push_are_kept(sheet):
    def person_edits(emulator):
        emulator.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "B2", "Lisboa")  # row a, a people-owned cell
        emulator.delete_row(PORT_SHEET_ID, PORT_SHEET_TAB, 3)  # row b: c moves up from row 4 to row 3

    sheet.before("batch_get_by_data_filter", person_edits)
    run_sync()
    values = sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    assert [row[0] for row in values[1:]] == ["a", "c"], "no row was added where b or c used to be"
    assert row_of(sheet, "a")[:2] == ["a", "Lisboa"]
    assert column(row_of(sheet, "a"), "agent_status") == "queued"
    assert "agent_turns" in column(row_of(sheet, "c"), "sync_issue")


def test_a_header_renamed_between_the_pull_and_the_push_gets_no_value_and_the_others_still_land(sheet):
    def rename(emulator):
        emulator.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D1", "status (people)")
        emulator.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "D2", "mine")

    run_sync()  # tags the columns
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "C2", "do a again")
    sheet.before("batch_get_by_data_filter", rename)
    result = run_sync_result()
    assert result.success
    # The column renamed to a people's name is theirs now: what they typed stays; the other columns land.
    assert column(row_of(sheet, "a"), "agent_status") == "mine"
    assert column(row_of(sheet, "a"), "agent_turns") == 0
    assert column(row_of(sheet, "a"), "agent_updated_at").endswith("Z")
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    check = checks["port_sheet_status_columns_present"]
    assert not check.passed and "'agent_status'" in check.description


def run_sync_result():
    return run_port_sheet_sync()
