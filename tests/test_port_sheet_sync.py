"""The sync engine writes only owned cells that differ, each on its key's current row, as RAW typed values."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jada_pipelines.port_sheet.sync import (
    SheetChangedError,
    SheetColumns,
    column_letter,
    key_text,
    parse_read,
    plan_push,
    read_ranges,
)

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


def test_the_read_covers_the_header_row_and_each_run_of_adjacent_columns():
    columns = ["id", "agent_status", "agent_turns", "sync_issue", "agent_summary"]
    assert read_ranges("My 'Ports'", HEADER, columns) == [
        "'My ''Ports'''!1:1",
        "'My ''Ports'''!A:A",
        "'My ''Ports'''!C:D",
        "'My ''Ports'''!F:F",
    ]


def test_a_read_is_parsed_into_padded_columns():
    value_ranges = [
        {"values": [HEADER]},
        {"values": [["id"], ["a"], ["b"], ["c"]]},
        {"values": [["agent_status", "agent_turns"], ["done", 3], [], ["queued"]]},
        {"values": [["sync_issue"]]},
    ]
    read = parse_read(
        value_ranges, expected_header=HEADER, columns=["id", "agent_status", "agent_turns", "sync_issue"]
    )
    assert read.cells == {
        "id": ["a", "b", "c"],
        "agent_status": ["done", "", "queued"],
        "agent_turns": [3, "", ""],
        "sync_issue": ["", "", ""],
    }


def test_a_header_that_moved_since_the_pull_stops_the_write():
    moved = ["inserted", *HEADER]
    value_ranges = [{"values": [moved]}, {"values": [["inserted"]]}]
    with pytest.raises(SheetChangedError, match="column A was 'id' at the pull and is 'inserted' now"):
        parse_read(value_ranges, expected_header=HEADER, columns=["id"])


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
