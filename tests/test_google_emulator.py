"""The local Google emulator answers like Google: OAuth grants and errors, Sheets v4 reads with each
valueRenderOption, RAW vs USER_ENTERED writes, atomic batchUpdate, Google-shaped errors, switchable
faults, call counts, and direct edits that stand in for a person working in the sheet."""

from __future__ import annotations

import pytest
import requests

from jada_pipelines.emulators.google import (
    SHEETS_READONLY_SCOPE,
    SHEETS_SCOPE,
    Formula,
    GoogleEmulator,
    SheetsError,
    parse_a1,
)

SID = "sheet-1"


def _token(emulator: GoogleEmulator, scopes=(SHEETS_SCOPE,)) -> str:
    response = requests.post(
        emulator.token_uri,
        data={
            "grant_type": "refresh_token",
            "refresh_token": emulator.issue_refresh_token(scopes),
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
        },
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()["access_token"]


@pytest.fixture
def api(google_emulator):
    """A bearer-authorized requests session on the emulator's Sheets API."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {_token(google_emulator)}"
    base = f"{google_emulator.base_url}/v4/spreadsheets/{SID}"

    def call(method: str, path: str = "", **kwargs):
        return session.request(method, base + path, timeout=5, **kwargs)

    yield call
    session.close()


def _get(api, a1: str, option: str = "UNFORMATTED_VALUE"):
    return api(
        "GET", f"/values/{requests.utils.quote(a1, safe='')}", params={"valueRenderOption": option}
    ).json()


def test_reads_render_values_and_formulas_per_value_render_option(google_emulator, api):
    google_emulator.set_sheet(
        SID, "My Ports", [["id", "n", "double", "ok"], ["007", 1.5, Formula("=B2*2", 3.0), True]]
    )

    assert _get(api, "'My Ports'!A2:D2", "FORMATTED_VALUE")["values"] == [["007", "1.5", "3", "TRUE"]]
    assert _get(api, "'My Ports'!A2:D2", "UNFORMATTED_VALUE")["values"] == [["007", 1.5, 3, True]]
    assert _get(api, "'My Ports'!A2:D2", "FORMULA")["values"] == [["007", 1.5, "=B2*2", True]]


def test_trailing_empty_cells_and_rows_are_left_out_and_the_range_is_the_grids(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["a", None, "c", None], [None, "b", None], [], [None, None]])

    body = _get(api, "Ports")

    assert body == {
        "range": "Ports!A1:Z1000",
        "majorDimension": "ROWS",
        "values": [["a", "", "c"], ["", "b"]],
    }
    assert "values" not in _get(api, "Ports!A5:B9")


def test_a1_ranges_parse_like_googles():
    # Quotes around a plain tab name are optional; an apostrophe inside a quoted name is doubled.
    assert parse_a1("'Ports'!A1:B2") == parse_a1("Ports!A1:B2")
    grid = parse_a1("'It''s'!B2:C")
    assert (grid.tab, grid.row_start, grid.row_end, grid.col_start, grid.col_end) == ("It's", 1, None, 1, 3)
    assert parse_a1("Ports!2:5").row_end == 5
    assert parse_a1("A1:B2").tab is None
    # A single apostrophe inside a quoted name ends the quote early: Google cannot parse the range.
    with pytest.raises(SheetsError) as unparsable:
        parse_a1("'It's'!A1")
    assert (unparsable.value.code, unparsable.value.message) == (400, "Unable to parse range: 'It's'!A1")


def test_raw_writes_keep_text_as_typed_and_user_entered_parses_it(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id", "code", "f"], ["a", "old", "keep"]])

    def write(option, values):
        return api(
            "POST",
            "/values:batchUpdate",
            json={"valueInputOption": option, "data": [{"range": "Ports!B2", "values": values}]},
        )

    reply = write("RAW", [["007", None, "=1+1"]]).json()
    assert reply["totalUpdatedCells"] == 2 and reply["responses"][0]["updatedRange"] == "Ports!B2:D2"
    assert google_emulator.cell(SID, "Ports", "B2") == "007"
    assert google_emulator.cell(SID, "Ports", "C2") == "keep", "a null value skips its cell"
    assert google_emulator.cell(SID, "Ports", "D2") == "=1+1"

    write("USER_ENTERED", [["007", "", "=B2+1"]])
    assert google_emulator.cell(SID, "Ports", "B2") == 7
    assert google_emulator.cell(SID, "Ports", "C2") is None, "an empty string clears the cell"
    assert google_emulator.cell(SID, "Ports", "D2") == Formula("=B2+1")


def test_batch_update_writes_typed_cells_and_is_atomic(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id", "turns"], ["a", 1]])
    update = {
        "updateCells": {
            "start": {"sheetId": 0, "rowIndex": 1, "columnIndex": 1},
            "rows": [{"values": [{"userEnteredValue": {"numberValue": 5}}]}],
            "fields": "userEnteredValue",
        }
    }

    refused = api("POST", ":batchUpdate", json={"requests": [update, {"addSheet": {"properties": {}}}]})

    assert refused.status_code == 400
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "requests[1]" in refused.json()["error"]["message"]
    assert google_emulator.cell(SID, "Ports", "B2") == 1, "a refused batch applies nothing"

    assert api("POST", ":batchUpdate", json={"requests": [update]}).json() == {
        "spreadsheetId": SID,
        "replies": [{}],
    }
    assert google_emulator.cell(SID, "Ports", "B2") == 5


def test_writes_beyond_the_grid_are_refused_until_rows_are_appended(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id"]], row_count=2)
    body = {"valueInputOption": "RAW", "data": [{"range": "Ports!A3", "values": [["x"]]}]}

    refused = api("POST", "/values:batchUpdate", json=body)
    assert refused.status_code == 400 and "exceeds grid limits" in refused.json()["error"]["message"]

    api(
        "POST",
        ":batchUpdate",
        json={"requests": [{"appendDimension": {"sheetId": 0, "dimension": "ROWS", "length": 1}}]},
    )
    assert api("POST", "/values:batchUpdate", json=body).status_code == 200
    assert google_emulator.sheet_values(SID, "Ports") == [["id"], [], ["x"]]


def test_sheets_calls_need_a_bearer_token_with_a_fitting_scope(google_emulator):
    google_emulator.set_sheet(SID, "Ports", [["id"]])
    url = f"{google_emulator.base_url}/v4/spreadsheets/{SID}"

    anonymous = requests.get(url, timeout=5)
    assert (anonymous.status_code, anonymous.json()["error"]["status"]) == (401, "UNAUTHENTICATED")

    readonly = {"Authorization": f"Bearer {_token(google_emulator, [SHEETS_READONLY_SCOPE])}"}
    assert requests.get(url, headers=readonly, timeout=5).status_code == 200
    write = requests.post(f"{url}:batchUpdate", json={"requests": []}, headers=readonly, timeout=5)
    assert write.status_code == 403
    assert write.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


def test_token_faults_have_googles_shapes(google_emulator):
    google_emulator.fail_token("invalid_rapt", times=1)
    form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "y", "client_secret": "z"}

    rapt = requests.post(google_emulator.token_uri, data=form, timeout=5)
    assert rapt.status_code == 400
    assert (rapt.json()["error"], rapt.json()["error_subtype"]) == ("invalid_grant", "invalid_rapt")

    unknown_client = requests.post(google_emulator.token_uri, data=form, timeout=5)
    assert (unknown_client.status_code, unknown_client.json()["error"]) == (401, "invalid_client")

    google_emulator.fail_token("unavailable", times=1)
    assert requests.post(google_emulator.token_uri, data=form, timeout=5).status_code == 503
    google_emulator.fail_token("rate_limited", times=1)
    assert requests.post(google_emulator.token_uri, data=form, timeout=5).status_code == 429
    google_emulator.fail_token("bad_gateway", times=1)
    html = requests.post(google_emulator.token_uri, data=form, timeout=5)
    assert (html.status_code, html.headers["Content-Type"].split(";")[0]) == (502, "text/html")


def test_sheets_faults_hit_the_chosen_kinds_for_the_chosen_number_of_times(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id"]])
    google_emulator.fail_sheets(503, kinds=["values_get"], times=2)

    assert api("GET").status_code == 200
    assert [_status(api) for _ in range(3)] == [503, 503, 200]
    google_emulator.fail_sheets(502)
    html = api("GET")
    assert html.status_code == 502 and html.headers["Content-Type"].startswith("text/html")
    assert google_emulator.calls["values_get"] == 3 and google_emulator.calls["metadata"] == 2


def _status(api) -> int:
    return api("GET", "/values/Ports").status_code


def test_recorded_requests_carry_no_token_or_secret(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id"]])
    api("GET")

    recorded = repr(google_emulator.requests)
    assert google_emulator.client_secret not in recorded
    assert "ya29" not in recorded and "Bearer" not in recorded
    assert [r["kind"] for r in google_emulator.requests] == ["token", "metadata"]


def test_direct_edits_insert_delete_sort_and_hooks_run_before_a_request(google_emulator, api):
    google_emulator.set_sheet(SID, "Ports", [["id", "n"], ["b", 2], ["c", 3]])
    google_emulator.insert_row(SID, "Ports", 2, ["a", 1])
    google_emulator.delete_row(SID, "Ports", 4)
    google_emulator.set_formula(SID, "Ports", "C2", "=B2*10", 10)
    google_emulator.sort_rows(SID, "Ports", column=1, reverse=True)
    assert google_emulator.sheet_values(SID, "Ports", render_option="FORMULA") == [
        ["id", "n"],
        ["b", 2],
        ["a", 1, "=B2*10"],
    ]

    google_emulator.before("values_get", lambda emu: emu.set_cell(SID, "Ports", "A2", "edited"))
    assert _get(api, "Ports!A2")["values"] == [["edited"]]
    google_emulator.set_cell(SID, "Ports", "A2", "b")
    assert _get(api, "Ports!A2")["values"] == [["b"]], "a hook runs once"


def test_a_revoked_refresh_token_and_a_deleted_spreadsheet_answer_as_google_does(google_emulator, api):
    refresh_token = google_emulator.issue_refresh_token()
    google_emulator.revoke_refresh_token(refresh_token)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": google_emulator.client_id,
        "client_secret": google_emulator.client_secret,
    }
    revoked = requests.post(google_emulator.token_uri, data=form, timeout=5)
    assert (revoked.status_code, revoked.json()["error"]) == (400, "invalid_grant")

    google_emulator.set_sheet(SID, "Ports", [["id"]])
    google_emulator.delete_spreadsheet(SID)
    gone = api("GET")
    assert (gone.status_code, gone.json()["error"]["status"]) == (404, "NOT_FOUND")
