"""The pull engine turns one read of the sheet into typed rows, one per key, quarantines what it cannot
trust with a reason, reports added/changed/removed keys, and its store round-trips a snapshot exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from jada_pipelines.port_sheet.pull import KeyChanges, build_snapshot, key_changes
from jada_pipelines.port_sheet.store import StoreError, read_snapshot, write_snapshot

PULLED = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
TYPES = {"berths": "integer", "depth_m": "float", "open": "boolean", "surveyed": "datetime"}
HEADER = ["id", "name", "berths", "depth_m", "open", "surveyed"]


def _pull(rows, *, key="id", types=TYPES):
    return build_snapshot(rows, key_column=key, column_types=types, pulled_at=PULLED)


def test_rows_are_typed_per_column_and_keys_are_text_as_the_sheet_shows_them():
    snapshot = _pull(
        [
            HEADER,
            ["007", "Lisbon", 12, 14.5, True, "2026-01-02T03:04:05Z"],
            [8, "Porto", "3", 9, "false", 46023],
        ]
    )

    rows = snapshot.rows
    assert list(rows["id"]) == ["007", "8"]
    assert list(rows["berths"]) == [12, 3]
    assert list(rows["depth_m"]) == [14.5, 9.0]
    assert list(rows["open"]) == [True, False]
    assert rows["surveyed"].iloc[0] == pd.Timestamp("2026-01-02T03:04:05Z")
    assert rows["surveyed"].iloc[1] == pd.Timestamp("2026-01-01", tz="UTC")  # a Sheets date serial
    assert {str(t) for t in rows.dtypes[["name", "berths", "depth_m", "open"]]} == {
        "string",
        "Int64",
        "Float64",
        "boolean",
    }
    assert list(rows["_row_number"]) == [2, 3]
    assert snapshot.quarantined == [] and snapshot.problems == []


def test_empty_cells_are_missing_values_not_errors():
    snapshot = _pull([HEADER, ["a", "", None], ["b"]])

    assert list(snapshot.rows["id"]) == ["a", "b"]
    assert snapshot.rows["berths"].isna().all()
    assert snapshot.quarantined == []


def test_rows_with_a_missing_key_a_duplicate_key_or_a_bad_value_are_quarantined_with_reasons():
    snapshot = _pull(
        [
            HEADER,
            ["a", "Lisbon", 1],
            ["", "no key"],
            ["dup", "first"],
            ["b", "Porto", "many"],
            ["dup", "second"],
            ["c", "Faro", 2, "deep", "maybe"],
        ]
    )

    assert list(snapshot.rows["id"]) == ["a"]
    reasons = {(q.row_number, q.key): q.reason for q in snapshot.quarantined}
    assert reasons == {
        (3, None): "the key column 'id' is empty",
        (4, "dup"): "the key 'dup' appears on rows 4, 6: give each row its own key",
        (5, "b"): "column 'berths': 'many' is not a whole number",
        (6, "dup"): "the key 'dup' appears on rows 4, 6: give each row its own key",
        (7, "c"): "column 'depth_m': 'deep' is not a number; column 'open': 'maybe' is not TRUE or FALSE",
    }


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("berths", 1e300, "1e+300 is too large for a whole-number column"),
        ("berths", "99999999999999999999", "'99999999999999999999' is too large for a whole-number column"),
        ("depth_m", "nan", "'nan' is not a number"),
        ("depth_m", "-inf", "'-inf' is not a number"),
        ("surveyed", "now", "'now' is not a date or time"),
    ],
)
def test_a_value_pandas_would_accept_or_choke_on_quarantines_its_row_only(column, value, reason):
    row = dict.fromkeys(HEADER, "")
    row.update(id="b", **{column: value})

    snapshot = _pull([HEADER, ["a", "Lisbon", 3], [row[name] for name in HEADER]])

    assert list(snapshot.rows["id"]) == ["a"]
    assert [(q.key, q.reason) for q in snapshot.quarantined] == [("b", f"column '{column}': {reason}")]


def test_blank_rows_are_skipped_without_being_reported():
    snapshot = _pull([HEADER, ["a"], [], ["", None, ""], ["b"]])

    assert list(snapshot.rows["_row_number"]) == [2, 5]
    assert snapshot.quarantined == []


def test_a_header_only_sheet_is_a_valid_empty_result():
    snapshot = _pull([HEADER])

    assert snapshot.rows.empty
    assert list(snapshot.rows.columns) == [*HEADER, "_row_number"]
    assert snapshot.problems == [] and snapshot.quarantined == []


def test_a_sheet_without_a_header_or_without_the_key_column_is_a_problem_not_an_empty_result():
    assert "no header row" in _pull([]).problems[0]
    missing_key = _pull([["name", "berths"], ["Lisbon", 3]])
    assert "key column 'id' is not in the header row (name, berths)" in missing_key.problems[0]
    assert "JADA_PORT_SHEET_KEY" in missing_key.problems[0]
    assert "repeats name" in _pull([["id", "name", "name"]]).problems[0]


def test_key_changes_report_added_changed_and_removed_keys_and_ignore_moved_rows():
    before = _pull([HEADER, ["a", "Lisbon"], ["b", "Porto"], ["c", "Faro"]])
    after = _pull([HEADER, ["d", "Sines"], ["c", "Faro"], ["a", "Lisboa"]])

    changes = key_changes(before, after)

    assert (changes.added, changes.changed, changes.removed) == (["d"], ["a"], ["b"])
    assert key_changes(None, before).added == ["a", "b", "c"]


def test_a_pull_without_its_key_column_reports_no_changes_and_is_no_baseline_for_the_next():
    good = _pull([HEADER, ["a", "Lisbon"]])
    broken = _pull([["name"], ["Lisbon"]])

    assert key_changes(good, broken) == KeyChanges([], [], [])
    assert key_changes(broken, good).added == ["a"]


def test_the_store_round_trips_a_snapshot_with_its_types(tmp_path):
    snapshot = _pull([HEADER, ["a", "Lisbon", 3, 1.5, True, "2026-01-02T00:00:00Z"], ["b"], ["", "x"]])
    path = tmp_path / "port_sheet_rows.json"

    write_snapshot(path, snapshot)
    loaded = read_snapshot(path)

    pd.testing.assert_frame_equal(loaded.rows, snapshot.rows)
    assert loaded.quarantined == snapshot.quarantined
    assert (loaded.header, loaded.key_column, loaded.pulled_at) == (HEADER, "id", PULLED)
    assert read_snapshot(tmp_path / "never-pulled.json") is None


@pytest.mark.parametrize(
    "content", ['{"header": [', "[]", '{"header": ["id"]}'], ids=["cut", "list", "no-dtypes"]
)
def test_an_unreadable_store_names_the_file_and_the_fix_instead_of_a_json_error(tmp_path, content):
    path = tmp_path / "port_sheet_rows.json"
    path.write_text(content)

    with pytest.raises(StoreError) as caught:
        read_snapshot(path)

    assert str(path) in str(caught.value)
    assert "The next pull of port_sheet_rows replaces it" in str(caught.value)
