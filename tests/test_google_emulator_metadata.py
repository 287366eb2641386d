"""Developer metadata in the emulator behaves as Google's metadata guide describes: it moves with the
column or row it is on as people insert, delete and move them, it goes when its columns are deleted, and
values:batchGetByDataFilter / values:batchUpdateByDataFilter resolve it when the request is served."""

from __future__ import annotations

import pytest

from tests.fixtures.google import authorized_session

SID = "sheet-metadata"


@pytest.fixture
def api(google_emulator):
    session = authorized_session(google_emulator)
    base = f"{google_emulator.base_url}/v4/spreadsheets/{SID}"
    google_emulator.set_sheet(SID, "Ports", [["id", "port", "status"], ["a", "Lisbon"], ["b", "Porto"]])

    def call(method: str, path: str = "", **kwargs):
        response = session.request(method, base + path, timeout=5, **kwargs)
        return response.status_code, response.json()

    yield call
    session.close()


def tag(api, name: str, column: int, dimension: str = "COLUMNS") -> dict:
    status, reply = api(
        "POST",
        ":batchUpdate",
        json={
            "requests": [
                {
                    "createDeveloperMetadata": {
                        "developerMetadata": {
                            "metadataKey": "owner",
                            "metadataValue": name,
                            "visibility": "DOCUMENT",
                            "location": {
                                "dimensionRange": {
                                    "sheetId": 0,
                                    "dimension": dimension,
                                    "startIndex": column,
                                    "endIndex": column + 1,
                                }
                            },
                        }
                    }
                }
            ]
        },
    )
    assert status == 200
    return reply["replies"][0]["createDeveloperMetadata"]["developerMetadata"]


def lookup(name: str) -> dict:
    return {"developerMetadataLookup": {"metadataKey": "owner", "metadataValue": name}}


def where(google_emulator, name: str) -> tuple[str, int] | None:
    for entry in google_emulator.developer_metadata(SID):
        if entry["metadataValue"] == name:
            span = entry["location"]["dimensionRange"]
            return span["dimension"], span["startIndex"]
    return None


def test_created_metadata_has_an_id_and_a_location_type(api):
    created = tag(api, "status", 2)
    assert created["metadataId"] >= 1 and created["location"]["locationType"] == "COLUMN"


def test_column_metadata_moves_with_inserted_moved_and_deleted_columns(google_emulator, api):
    tag(api, "status", 2)
    google_emulator.insert_column(SID, "Ports", "A")
    assert where(google_emulator, "status") == ("COLUMNS", 3)
    google_emulator.move_column(SID, "Ports", "D", before="A")
    assert where(google_emulator, "status") == ("COLUMNS", 0)
    assert google_emulator.sheet_values(SID, "Ports")[0] == ["status", "", "id", "port"]
    google_emulator.delete_column(SID, "Ports", "A")
    assert where(google_emulator, "status") is None


def test_row_metadata_moves_with_inserted_and_deleted_rows(google_emulator, api):
    tag(api, "b-row", 2, dimension="ROWS")
    google_emulator.insert_row(SID, "Ports", 2, ["new"])
    assert where(google_emulator, "b-row") == ("ROWS", 3)
    google_emulator.delete_row(SID, "Ports", 2)
    assert where(google_emulator, "b-row") == ("ROWS", 2)
    google_emulator.delete_row(SID, "Ports", 3)
    assert where(google_emulator, "b-row") is None


def test_a_read_by_data_filter_finds_the_column_where_it_is_now(google_emulator, api):
    tag(api, "status", 2)
    google_emulator.insert_column(SID, "Ports", "B")
    status, reply = api(
        "POST",
        "/values:batchGetByDataFilter",
        json={"dataFilters": [lookup("status"), lookup("nobody")], "majorDimension": "COLUMNS"},
    )
    assert status == 200
    (matched,) = reply["valueRanges"]
    assert matched["dataFilters"] == [lookup("status")]
    assert matched["valueRange"]["range"] == "Ports!D1:D1000"
    assert matched["valueRange"]["values"] == [["status"]]


def test_a_write_by_data_filter_lands_where_the_column_is_when_served_and_answers_the_range(
    google_emulator, api
):
    tag(api, "status", 2)
    tag(api, "id", 0)
    google_emulator.insert_column(SID, "Ports", "C")  # between port and status
    status, reply = api(
        "POST",
        "/values:batchUpdateByDataFilter",
        json={
            "valueInputOption": "RAW",
            "includeValuesInResponse": True,
            "responseValueRenderOption": "UNFORMATTED_VALUE",
            "data": [
                {"dataFilter": lookup("status"), "majorDimension": "ROWS", "values": [[], [], ["done"]]},
                {"dataFilter": lookup("id"), "majorDimension": "ROWS", "values": [[]]},
            ],
        },
    )
    assert status == 200
    assert google_emulator.sheet_values(SID, "Ports") == [
        ["id", "port", "", "status"],
        ["a", "Lisbon"],
        ["b", "Porto", "", "done"],
    ]
    written, verify = reply["responses"]
    assert written["updatedCells"] == 1 and written["dataFilter"] == lookup("status")
    # "the response includes all values in the requested range": the whole id column, as it is now.
    assert verify["updatedData"]["values"] == [["id"], ["a"], ["b"]]


def test_values_beyond_the_matched_range_fail_the_whole_write(google_emulator, api):
    tag(api, "status", 2)
    status, reply = api(
        "POST",
        "/values:batchUpdateByDataFilter",
        json={
            "valueInputOption": "RAW",
            "data": [{"dataFilter": lookup("status"), "values": [["x", "spill"]]}],
        },
    )
    assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"
    assert google_emulator.sheet_values(SID, "Ports")[0] == ["id", "port", "status"]


def test_deleting_metadata_by_lookup_removes_every_match(google_emulator, api):
    tag(api, "status", 2)
    status, reply = api(
        "POST",
        ":batchUpdate",
        json={"requests": [{"deleteDeveloperMetadata": {"dataFilter": lookup("status")}}]},
    )
    assert status == 200
    assert len(reply["replies"][0]["deleteDeveloperMetadata"]["deletedDeveloperMetadata"]) == 1
    assert google_emulator.developer_metadata(SID) == []


def by_id(metadata_id: int) -> dict:
    return {"developerMetadataLookup": {"metadataId": metadata_id}}


def test_an_id_given_at_creation_is_kept_and_a_second_use_of_it_is_refused(google_emulator, api):
    status, _ = api("POST", ":batchUpdate", json={"requests": [create(77, "status", 2)]})
    assert status == 200 and [m["metadataId"] for m in google_emulator.developer_metadata(SID)] == [77]
    status, reply = api("POST", ":batchUpdate", json={"requests": [create(77, "id", 0)]})
    assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"


def test_a_duplicated_tab_carries_copies_of_its_tags_under_new_ids(google_emulator, api):
    original = tag(api, "status", 2)
    status, reply = api(
        "POST",
        ":batchUpdate",
        json={"requests": [{"duplicateSheet": {"sourceSheetId": 0, "newSheetName": "Old"}}]},
    )
    assert status == 200
    properties = reply["replies"][0]["duplicateSheet"]["properties"]
    assert properties["title"] == "Old" and properties["sheetId"] != 0
    assert google_emulator.sheet_values(SID, "Old") == google_emulator.sheet_values(SID, "Ports")
    tags = google_emulator.developer_metadata(SID)
    assert len(tags) == 2 and len({m["metadataId"] for m in tags}) == 2
    (copied,) = [m for m in tags if m["metadataId"] != original["metadataId"]]
    assert copied["metadataValue"] == "status"
    assert copied["location"]["dimensionRange"]["sheetId"] == properties["sheetId"]
    # A lookup by key and value now matches both tabs; a lookup by id matches one column.
    _, reply = api("POST", "/values:batchGetByDataFilter", json={"dataFilters": [lookup("status")]})
    assert {m["valueRange"]["range"].split("!")[0] for m in reply["valueRanges"]} == {"Ports", "Old"}
    _, reply = api(
        "POST", "/values:batchGetByDataFilter", json={"dataFilters": [by_id(original["metadataId"])]}
    )
    assert [m["valueRange"]["range"] for m in reply["valueRanges"]] == ["Ports!C1:C1000"]


def test_a_search_returns_each_matching_tag_with_its_id_and_location(google_emulator, api):
    created = tag(api, "status", 2)
    google_emulator.duplicate_tab(SID, "Ports")
    status, reply = api(
        "POST",
        "/developerMetadata:search",
        json={"dataFilters": [{"developerMetadataLookup": {"metadataKey": "owner"}}]},
    )
    assert status == 200
    found = [m["developerMetadata"] for m in reply["matchedDeveloperMetadata"]]
    assert created["metadataId"] in {m["metadataId"] for m in found}
    assert sorted(m["location"]["dimensionRange"]["sheetId"] for m in found) == [0, 1]
    _, reply = api("POST", "/developerMetadata:search", json={"dataFilters": [lookup("nobody")]})
    assert reply == {}


@pytest.mark.parametrize("answer", ["refuse", "omit"])
def test_the_write_answer_modes_for_an_empty_item(google_emulator, api, answer):
    tag(api, "status", 2)
    tag(api, "id", 0)
    google_emulator.answer_empty_items(answer)
    body = {
        "valueInputOption": "RAW",
        "includeValuesInResponse": True,
        "data": [
            {"dataFilter": lookup("status"), "values": [[], ["done"]]},
            {"dataFilter": lookup("id"), "values": [[]]},
        ],
    }
    status, reply = api("POST", "/values:batchUpdateByDataFilter", json=body)
    if answer == "refuse":
        assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"
        assert google_emulator.cell(SID, "Ports", "C2") is None, "a refused batch applies nothing"
    else:
        assert status == 200 and google_emulator.cell(SID, "Ports", "C2") == "done"
        written, verify = reply["responses"]
        assert "updatedData" in written and "updatedData" not in verify


def create(metadata_id: int, name: str, column: int) -> dict:
    span = {"sheetId": 0, "dimension": "COLUMNS", "startIndex": column, "endIndex": column + 1}
    return {
        "createDeveloperMetadata": {
            "developerMetadata": {
                "metadataId": metadata_id,
                "metadataKey": "owner",
                "metadataValue": name,
                "visibility": "DOCUMENT",
                "location": {"dimensionRange": span},
            }
        }
    }
