"""The sync engine writes only owned cells that differ, each on its key's current row, as RAW typed values."""

from __future__ import annotations

import json

import pandas as pd

from jada_pipelines.port_sheet.a1 import column_letter
from jada_pipelines.port_sheet.columns import (
    MAX_REQUEST_BYTES,
    keys_at_write,
    misplaced,
    parse_read,
    range_tab,
    read_body,
    setup_requests,
    survey_tags,
    tag_id,
    write_bodies,
)
from jada_pipelines.port_sheet.keys import key_text
from jada_pipelines.port_sheet.plan import CellWrite, SheetColumns, plan_push

HEADER = ["id", "name", "agent_status", "agent_turns", "notes", "sync_issue"]


def sheet(*rows: tuple) -> SheetColumns:
    """Columns id, agent_status, agent_turns and sync_issue, one tuple per sheet row from row 2 down."""
    names = ["id", "agent_status", "agent_turns", "sync_issue"]
    return SheetColumns(header=HEADER, cells={name: [row[i] for row in rows] for i, name in enumerate(names)})


def wanted(rows: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", dtype=object)


def test_column_letters_follow_a1_notation():
    assert [column_letter(i) for i in (0, 25, 26, 51, 702)] == ["A", "Z", "AA", "AZ", "AAA"]


def test_key_text_matches_a_numeric_key_cell_to_its_text_and_keeps_leading_zeros():
    assert key_text(7) == key_text(7.0) == key_text(" 7 ") == "7"
    assert key_text("007") == "007"
    assert key_text("") is None and key_text(None) is None


def test_nothing_differs_so_there_is_no_body_to_send():
    plan = plan_push(
        wanted({"a": {"agent_status": "done", "agent_turns": 3}}),
        sheet(("a", "done", 3, "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.body is None and plan.changed_cells == 0


def test_only_the_changed_cell_is_written_raw_and_typed_on_the_keys_row():
    plan = plan_push(
        wanted(
            {"a": {"agent_status": "done", "agent_turns": 3}, "b": {"agent_status": "done", "agent_turns": 5}}
        ),
        sheet(("a", "done", 3, ""), ("b", "done", 4, "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.body == {
        "valueInputOption": "RAW",
        "data": [{"range": "'Ports'!D3", "values": [[5]]}],
    }


def test_the_key_is_found_at_its_current_position_not_where_it_was_pulled():
    plan = plan_push(
        wanted({"b": {"agent_status": "running"}}),
        sheet(("new", "", "", ""), ("c", "", "", ""), ("b", "queued", "", "")),
        tab="Ports",
        key_column="id",
    )
    assert [item["range"] for item in plan.body["data"]] == ["'Ports'!C4"]


def test_a_number_and_its_digits_as_text_are_different_values():
    plan = plan_push(
        wanted({"a": {"agent_status": "007", "agent_turns": 7}}),
        sheet(("a", 7, "7", "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.body["data"][0]["values"] == [["007", 7]]


def test_a_boolean_is_not_the_number_one():
    plan = plan_push(
        wanted({"a": {"agent_turns": 1}}), sheet(("a", "", True, "")), tab="Ports", key_column="id"
    )
    assert plan.changed_cells == 1
    same = plan_push(
        wanted({"a": {"agent_turns": 1}}), sheet(("a", "", 1.0, "")), tab="Ports", key_column="id"
    )
    assert same.body is None


def test_an_unset_wanted_value_leaves_the_cell_alone_and_an_empty_string_clears_it():
    plan = plan_push(
        wanted({"a": {"agent_status": None, "sync_issue": ""}}),
        sheet(("a", "done", 3, "bad date")),
        tab="Ports",
        key_column="id",
    )
    assert plan.body["data"] == [{"range": "'Ports'!F2", "values": [[""]]}]


def test_adjacent_changed_cells_coalesce_into_one_rectangle():
    plan = plan_push(
        wanted({key: {"agent_status": "done", "agent_turns": 2} for key in "abc"}),
        sheet(("a", "", "", ""), ("b", "", "", ""), ("c", "", "", "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.ranges == 1
    assert plan.body["data"][0]["range"] == "'Ports'!C2:D4"
    assert plan.body["data"][0]["values"] == [["done", 2]] * 3


def test_cells_in_non_adjacent_columns_go_in_separate_ranges_and_skip_people_columns():
    plan = plan_push(
        wanted({"a": {"agent_status": "done", "sync_issue": "x"}}),
        sheet(("a", "", "", "")),
        tab="Ports",
        key_column="id",
    )
    assert [item["range"] for item in plan.body["data"]] == ["'Ports'!C2", "'Ports'!F2"]


def test_missing_and_duplicated_keys_are_reported_and_not_written():
    plan = plan_push(
        wanted(
            {
                "gone": {"agent_status": "done"},
                "twice": {"agent_status": "done"},
                "ok": {"agent_status": "done"},
            }
        ),
        sheet(("twice", "", "", ""), ("ok", "", "", ""), ("twice", "", "", "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.missing_keys == ["gone"]
    assert plan.duplicate_keys == ["twice"]
    assert [item["range"] for item in plan.body["data"]] == ["'Ports'!C3"]


def test_a_key_on_several_rows_gets_only_its_every_row_cells_on_each_of_them():
    plan = plan_push(
        wanted(
            {
                "twice": {"agent_status": None, "sync_issue": "the key 'twice' appears on rows 2, 4"},
                "copied": {"agent_status": "done", "sync_issue": "was fine at the pull"},
            }
        ),
        sheet(
            ("twice", "", "", ""), ("copied", "", "", ""), ("twice", "kept", 7, ""), ("copied", "", "", "")
        ),
        tab="Ports",
        key_column="id",
        every_row_columns=["sync_issue"],
    )
    assert plan.duplicate_keys == ["twice", "copied"]
    assert [(item["range"], item["values"]) for item in plan.body["data"]] == [
        ("'Ports'!F2:F5", [["the key 'twice' appears on rows 2, 4"], ["was fine at the pull"]] * 2)
    ]


def test_an_owned_column_missing_from_the_header_is_reported_not_invented():
    plan = plan_push(
        wanted({"a": {"agent_status": "done", "agent_summary": "did it"}}),
        sheet(("a", "", "", "")),
        tab="Ports",
        key_column="id",
    )
    assert plan.missing_columns == ["agent_summary"]
    assert [item["range"] for item in plan.body["data"]] == ["'Ports'!C2"]


SHEET_ID = 7


def lookup(name: str, sheet_id: int = SHEET_ID) -> dict:
    return read_body("Ports", sheet_id, [name])["dataFilters"][1]


def test_the_read_asks_for_the_header_by_position_and_each_column_by_its_tabs_own_tag_id():
    body = read_body("My 'Ports'", SHEET_ID, ["id", "agent_status"])
    assert body["dataFilters"][0] == {"a1Range": "'My ''Ports'''!1:1"}
    assert body["dataFilters"][1] == {"developerMetadataLookup": {"metadataId": tag_id(SHEET_ID, "id")}}
    assert (body["majorDimension"], body["dateTimeRenderOption"]) == ("COLUMNS", "FORMATTED_STRING")


def test_each_tab_has_its_own_tag_ids_and_they_are_positive_32_bit_integers():
    ids = {tag_id(sheet_id, name) for sheet_id in (0, 1, 1234567) for name in ("id", "agent_status")}
    assert len(ids) == 6 and all(0 < metadata_id < 2**31 for metadata_id in ids)
    assert tag_id(0, "id") == tag_id(0, "id"), "the same on every machine: no call needed to learn it"


def matched(a1: str, values: list, data_filter: dict) -> dict:
    return {"valueRange": {"range": a1, "values": values}, "dataFilters": [data_filter]}


def test_a_read_finds_each_column_where_its_metadata_is_and_pads_the_cells():
    response = {
        "valueRanges": [
            matched("Ports!A1:F1", [[h] for h in HEADER], {"a1Range": "Ports!1:1"}),
            matched("Ports!A1:A1000", [["id", "a", "b", "c"]], lookup("id")),
            matched("Ports!C1:C1000", [["agent_status", "done", "", "queued"]], lookup("agent_status")),
            matched("Ports!D1:D1000", [["agent_turns", 3]], lookup("agent_turns")),
        ]
    }
    read = parse_read(response, ["id", "agent_status", "agent_turns", "sync_issue"], tab="Ports", sheet_id=7)
    assert read.positions == {"id": 0, "agent_status": 2, "agent_turns": 3}
    assert read.sheet.cells == {
        "id": ["a", "b", "c"],
        "agent_status": ["done", "", "queued"],
        "agent_turns": [3, "", ""],
    }
    assert read.untagged == ["sync_issue"]  # in the header, not tagged yet: the setup tags it


def test_a_tag_on_a_column_a_person_renamed_is_never_written():
    response = {
        "valueRanges": [
            matched("Ports!A1:B1", [["id"], ["Status"]], {"a1Range": "Ports!1:1"}),
            matched("Ports!B1:B1000", [["Status", "mine"]], lookup("agent_status")),
        ]
    }
    read = parse_read(response, ["agent_status"], tab="Ports", sheet_id=7)
    assert read.positions == {} and read.lost == ["agent_status"]
    assert "agent_status" not in read.sheet.header


def test_a_write_starts_each_column_at_row_1_and_leaves_the_rows_between_alone():
    cells = [CellWrite("agent_status", 4, "c", "done"), CellWrite("agent_status", 2, "a", "queued")]
    ((body, written),) = write_bodies(cells, sheet_id=SHEET_ID, key_column="id")
    document = json.loads(body)
    status, verify = document["data"]
    assert status["dataFilter"] == lookup("agent_status")
    assert status["values"] == [[], ["queued"], [], ["done"]]
    assert verify == {"dataFilter": lookup("id"), "majorDimension": "ROWS", "values": [[]]}
    assert document["includeValuesInResponse"] is True and document["valueInputOption"] == "RAW"
    assert sorted(c.row for c in written) == [2, 4]


def test_a_write_over_the_size_limit_is_split_into_requests_under_it():
    cells = [CellWrite("agent_summary", row, f"k{row}", "x" * 150) for row in range(2, 20_002)]
    bodies = write_bodies(cells, sheet_id=SHEET_ID, key_column="id", max_bytes=MAX_REQUEST_BYTES)
    assert len(bodies) == 2
    assert all(len(body) <= MAX_REQUEST_BYTES for body, _ in bodies)
    assert sorted(c.row for _, written in bodies for c in written) == list(range(2, 20_002))
    second = json.loads(bodies[1][0])["data"][0]["values"]
    first_row = min(c.row for c in bodies[1][1])
    assert second[: first_row - 1] == [[]] * (first_row - 1)


def test_a_full_change_of_a_hundred_thousand_rows_is_split_into_requests_under_two_megabytes():
    owned = {"agent_status": "done", "agent_turns": 7, "agent_summary": "ported, see the log " + "x" * 60}
    cells = [
        CellWrite(name, row, f"P{row:06d}", value)
        for row in range(2, 100_002)
        for name, value in owned.items()
    ]
    bodies = write_bodies(cells, sheet_id=SHEET_ID, key_column="id")
    assert len(bodies) >= 5
    assert all(len(body) <= MAX_REQUEST_BYTES for body, _ in bodies)
    written = sorted((c.column, c.row) for _, part in bodies for c in part)
    assert written == sorted((c.column, c.row) for c in cells)
    # A later piece still lands on its rows: values start at row 1, the rows before it are left alone.
    for body, part in bodies[-1:]:
        first = min(c.row for c in part)
        for item in json.loads(body)["data"][:-1]:
            assert item["values"][: first - 1] == [[]] * (first - 1)


def test_the_write_answer_tells_which_cells_landed_on_another_keys_row():
    response = {
        "responses": [
            {"dataFilter": lookup("agent_status"), "updatedRange": "Ports!C1:C3"},
            {"dataFilter": lookup("id"), "updatedData": {"values": [["id"], ["b"], ["a"]]}},
        ]
    }
    keys = keys_at_write(response, SHEET_ID, "id")
    assert keys == ["id", "b", "a"]
    cells = [CellWrite("agent_status", 2, "a", "done"), CellWrite("agent_status", 3, "a", "x")]
    assert misplaced(cells, keys) == [(cells[0], "b")]


def test_one_changed_cell_in_a_hundred_rows_of_a_hundred_thousand_is_one_small_range_each():
    n = 100_000
    keys = [f"P{i:06d}" for i in range(n)]
    read = SheetColumns(
        header=HEADER,
        cells={"id": keys, "agent_status": ["done"] * n, "agent_turns": [3] * n, "sync_issue": [""] * n},
    )
    turns = [4 if i % 100 == 0 else 3 for i in range(n)]
    frame = pd.DataFrame(
        {"agent_status": ["done"] * n, "agent_turns": turns, "sync_issue": [""] * n}, index=keys
    )
    plan = plan_push(frame.astype(object), read, tab="Ports", key_column="id")
    assert plan.changed_cells == 1000 and plan.ranges == 1000
    assert len(json.dumps(plan.body)) < 100_000


def test_the_setup_tags_untagged_columns_where_the_header_has_them_and_drops_only_its_tabs_stale_tags():
    response = {
        "valueRanges": [
            matched(
                "Ports!A1:D1",
                [["id"], ["Status"], ["agent_status"], ["sync_issue"]],
                {"a1Range": "Ports!1:1"},
            ),
            matched("Ports!A1:A1000", [["id", "a"]], lookup("id")),
            # agent_status's tag is on the column a person renamed to "Status"; they added a new agent_status.
            matched("Ports!B1:B1000", [["Status", "mine"]], lookup("agent_status")),
        ]
    }
    read = parse_read(response, ["id", "agent_status", "sync_issue"], tab="Ports", sheet_id=7)
    assert read.untagged == ["agent_status", "sync_issue"]
    search = {
        "matchedDeveloperMetadata": [
            {"developerMetadata": tag(tag_id(7, "id"), "id", 7, 0)},
            {"developerMetadata": tag(tag_id(7, "agent_status"), "agent_status", 7, 1)},
            # A tag from before tags had ids, on this tab: an extra, deleted.
            {"developerMetadata": tag(55, "sync_issue", 7, 3)},
            # The copies a duplicated tab carries: reported, never touched.
            {"developerMetadata": tag(56, "agent_status", 8, 1)},
        ]
    }
    survey = survey_tags(search, 7, ["id", "agent_status", "sync_issue"])
    assert survey.own == {"id": tag_id(7, "id"), "agent_status": tag_id(7, "agent_status")}
    assert survey.extra == [55] and survey.foreign == ["agent_status on tab 8"]
    requests = setup_requests(7, read, survey)
    assert [next(iter(r)) for r in requests] == [
        "deleteDeveloperMetadata",
        "deleteDeveloperMetadata",
        "createDeveloperMetadata",
        "createDeveloperMetadata",
    ]
    deleted = [r["deleteDeveloperMetadata"]["dataFilter"]["developerMetadataLookup"] for r in requests[:2]]
    assert deleted == [{"metadataId": 55}, {"metadataId": tag_id(7, "agent_status")}]
    created = [r["createDeveloperMetadata"]["developerMetadata"] for r in requests[2:]]
    assert [m["metadataId"] for m in created] == [tag_id(7, "agent_status"), tag_id(7, "sync_issue")]
    assert [(m["metadataValue"], m["location"]["dimensionRange"]["startIndex"]) for m in created] == [
        ("agent_status", 2),
        ("sync_issue", 3),
    ]
    assert created[0]["location"]["dimensionRange"]["sheetId"] == 7


def tag(metadata_id: int, name: str, sheet_id: int, column: int) -> dict:
    span = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": column, "endIndex": column + 1}
    return {
        "metadataId": metadata_id,
        "metadataKey": "jada_pipelines.port_sheet.column",
        "metadataValue": name,
        "location": {"locationType": "COLUMN", "dimensionRange": span},
        "visibility": "DOCUMENT",
    }


def test_a_tag_id_that_resolves_on_another_tab_is_never_read_as_this_tabs_column():
    response = {
        "valueRanges": [
            matched("Ports!A1:B1", [["id"], ["agent_status"]], {"a1Range": "Ports!1:1"}),
            matched("'Ports (old)'!B1:B1000", [["agent_status", "x"]], lookup("agent_status")),
        ]
    }
    read = parse_read(response, ["agent_status"], tab="Ports", sheet_id=SHEET_ID)
    assert read.elsewhere == ["agent_status"] and read.positions == {}
    assert range_tab("'It''s'!A1") == "It's" and range_tab("Ports!A1:B2") == "Ports"


def test_a_row_with_no_key_gets_its_owned_cells_emptied_and_nothing_else():
    read = SheetColumns(
        header=["id", "agent_status", "sync_issue"],
        cells={"id": ["a", "", "b"], "agent_status": ["done", "queued", ""], "sync_issue": ["", "", ""]},
    )
    frame = pd.DataFrame({"agent_status": ["done"], "sync_issue": [""]}, index=["a"], dtype=object)
    plan = plan_push(
        frame,
        read,
        tab="Ports",
        key_column="id",
        keyless_columns=["agent_status", "sync_issue"],
        a1_body=False,
    )
    assert plan.writes == [CellWrite("agent_status", 3, None, "")]
