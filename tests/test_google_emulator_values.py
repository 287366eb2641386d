"""The emulator stores dates and times as Google does (serial numbers with a format) and renders them per
valueRenderOption and dateTimeRenderOption; USER_ENTERED parses dates, percents, amounts and thousands
separators; majorDimension and reversed ranges are honoured. Expected shapes are those of Google's own
answers as recorded by gspread (tests/cassettes/WorksheetTest.test_get_all_values_date_time_render_options)."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.google import authorized_session

SID = "sheet-values"


@pytest.fixture
def api(google_emulator):
    session = authorized_session(google_emulator)
    base = f"{google_emulator.base_url}/v4/spreadsheets/{SID}"
    google_emulator.set_sheet(SID, "Sheet1", [], row_count=10, column_count=6)

    def call(method: str, path: str = "", **kwargs):
        response = session.request(method, base + path, timeout=5, **kwargs)
        return response.json()

    yield call
    session.close()


def _get(api, a1, **params):
    return api("GET", f"/values/{requests.utils.quote(a1, safe='')}", params=params)


def test_dates_typed_user_entered_read_back_as_google_answers_for_each_render_option(api):
    # The very cells gspread's recorded test writes, and Google's four recorded answers.
    api(
        "PUT",
        "/values/Sheet1!A1:D2",
        params={"valueInputOption": "USER_ENTERED"},
        json={"values": [["=4/2", "2020-01-01", "string", 53], ["=3/2", 0.12, "1999-01-02", ""]]},
    )
    serial = _get(
        api, "'Sheet1'", valueRenderOption="UNFORMATTED_VALUE", dateTimeRenderOption="SERIAL_NUMBER"
    )
    assert serial["values"][0][1:] == [43831, "string", 53]
    assert serial["values"][1][1:] == [0.12, 36162]
    shown = _get(
        api, "'Sheet1'", valueRenderOption="UNFORMATTED_VALUE", dateTimeRenderOption="FORMATTED_STRING"
    )
    assert shown["values"][0][1:] == ["2020-01-01", "string", 53]
    assert shown["values"][1][1:] == [0.12, "1999-01-02"]
    # The default is SERIAL_NUMBER; FORMATTED_VALUE ignores dateTimeRenderOption.
    assert _get(api, "'Sheet1'", valueRenderOption="UNFORMATTED_VALUE")["values"][0][1] == 43831
    for option in ("SERIAL_NUMBER", "FORMATTED_STRING"):
        formatted = _get(api, "'Sheet1'", valueRenderOption="FORMATTED_VALUE", dateTimeRenderOption=option)
        assert formatted["values"][0][1:] == ["2020-01-01", "string", "53"]
        assert formatted["values"][1][1:] == ["0.12", "1999-01-02"]


@pytest.mark.parametrize(
    ("typed", "unformatted", "formatted_string", "formatted_value"),
    [
        ("5/13/2026", 46155, "5/13/2026", "5/13/2026"),
        ("2026-05-13 13:45", 46155.5729166667, "2026-05-13 13:45:00", "2026-05-13 13:45:00"),
        ("13:45", 0.5729166667, "13:45:00", "13:45:00"),
        ("1:45 PM", 0.5729166667, "1:45:00 PM", "1:45:00 PM"),
        ("36:00:00", 1.5, "36:00:00", "36:00:00"),
        ("15%", 0.15, 0.15, "15%"),
        ("12.5%", 0.125, 0.125, "12.50%"),
        ("$1,234.50", 1234.5, 1234.5, "$1,234.50"),
        ("1,234", 1234, 1234, "1,234"),
        ("007", 7, 7, "7"),
        ("2026-02-30", "2026-02-30", "2026-02-30", "2026-02-30"),
    ],
)
def test_user_entered_parses_what_a_person_types_as_the_en_us_locale_does(
    api, typed, unformatted, formatted_string, formatted_value
):
    api("PUT", "/values/Sheet1!A1", params={"valueInputOption": "USER_ENTERED"}, json={"values": [[typed]]})
    assert _get(api, "Sheet1!A1", valueRenderOption="UNFORMATTED_VALUE")["values"] == [[unformatted]]
    assert _get(
        api, "Sheet1!A1", valueRenderOption="UNFORMATTED_VALUE", dateTimeRenderOption="FORMATTED_STRING"
    )["values"] == [[formatted_string]]
    assert _get(api, "Sheet1!A1", valueRenderOption="FORMATTED_VALUE")["values"] == [[formatted_value]]


def test_raw_writes_keep_dates_and_percents_as_the_text_sent(api):
    api(
        "PUT",
        "/values/Sheet1!A1:B1",
        params={"valueInputOption": "RAW"},
        json={"values": [["2026-05-13", "15%"]]},
    )
    assert _get(api, "Sheet1!A1:B1", valueRenderOption="UNFORMATTED_VALUE")["values"] == [
        ["2026-05-13", "15%"]
    ]


def test_major_dimension_columns_and_reversed_ranges_read_as_google_answers(api):
    api(
        "PUT",
        "/values/Sheet1!A1:B3",
        params={"valueInputOption": "RAW"},
        json={"values": [["id", "n"], ["a", 1], ["b"]]},
    )
    by_column = _get(api, "Sheet1!A1:B3", valueRenderOption="UNFORMATTED_VALUE", majorDimension="COLUMNS")
    assert by_column["majorDimension"] == "COLUMNS"
    assert by_column["values"] == [["id", "a", "b"], ["n", 1]]
    reversed_range = _get(api, "Sheet1!B3:A1", valueRenderOption="UNFORMATTED_VALUE")
    assert reversed_range["range"] == "Sheet1!A1:B3"
    assert reversed_range["values"] == [["id", "n"], ["a", 1], ["b"]]


def test_the_spreadsheet_reports_its_time_zone(google_emulator, api):
    google_emulator.set_time_zone(SID, "America/New_York")
    assert api("GET", "", params={"fields": "properties"})["properties"]["timeZone"] == "America/New_York"


def test_the_emulator_compresses_an_answer_only_when_asked_with_both_the_header_and_a_gzip_user_agent(
    google_emulator,
):
    from tests.fixtures.google import authorized_session

    google_emulator.set_sheet("gz", "Ports", [["id", "port"]] + [[f"p{i}", "Lisbon"] for i in range(500)])
    session = authorized_session(google_emulator)
    url = f"{google_emulator.base_url}/v4/spreadsheets/gz/values/Ports"
    for agent, encoding, compressed in [
        ("jada-pipelines/0.1.0 (gzip)", "gzip", True),
        ("jada-pipelines/0.1.0", "gzip", False),  # the header alone: plain bytes, as Google answers
        ("jada-pipelines/0.1.0 (gzip)", "identity", False),
    ]:
        response = session.get(url, headers={"User-Agent": agent, "Accept-Encoding": encoding}, timeout=5)
        assert response.json()["values"][1] == ["p0", "Lisbon"]
        assert (response.headers.get("Content-Encoding") == "gzip") is compressed
        assert google_emulator.requests[-1]["gzip"] is compressed
    packed, plain = google_emulator.requests[-3]["reply_bytes"], google_emulator.requests[-2]["reply_bytes"]
    assert packed < plain / 3
    session.close()


def test_the_sheets_client_asks_for_compressed_answers(google_emulator, google_token_file):
    from jada_pipelines.google_api.resources import GoogleCredentialsResource

    google_emulator.set_sheet("emulated-port-sheet", "Ports", [["id"]] + [[f"p{i}"] for i in range(500)])
    session = GoogleCredentialsResource().sheets()
    try:
        reply = session.values_batch_get("emulated-port-sheet", ["'Ports'"])
    finally:
        session.close()
    assert len(reply["valueRanges"][0]["values"]) == 501
    assert google_emulator.requests[-1]["gzip"] is True
