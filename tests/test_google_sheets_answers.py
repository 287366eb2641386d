"""Google's real answers through real port_sheet_sync_job runs: the Sheets API disabled in the OAuth
client's project is its own class with Google's activation link, and a 429 is waited out as Google's
per-minute quota asks (Retry-After where present), within a bound, then fails the run with a quota
sentence. Waits run on a clock the test drives, shared by the emulator's quota window."""

from __future__ import annotations

import pytest

from jada_pipelines.google_api import retry
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]


class FakeClock:
    def __init__(self):
        self.now, self.waits = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(google_emulator, monkeypatch):
    fake = FakeClock()
    google_emulator.clock = fake
    monkeypatch.setattr(retry, "pause", fake.sleep)
    return fake


@pytest.fixture
def sheet(google_emulator, google_token_file):
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER, ["a", "Lisbon", "do a"]])
    return google_emulator


def run():
    return run_port_sheet_sync()


def failure_of(result):
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.step_key, event.step_failure_data.user_failure_data


def test_the_sheets_api_disabled_in_the_project_names_the_project_and_the_activation_link(sheet, clock):
    sheet.disable_api("123456789012")
    result = run()
    assert not result.success
    step, failure = failure_of(result)
    assert step == "port_sheet_rows"
    assert failure.metadata["failure_class"].value == "service_disabled"
    assert "not enabled in Cloud project 123456789012" in failure.description
    assert (
        "https://console.developers.google.com/apis/api/sheets.googleapis.com/overview?project=123456789012"
        in (failure.description)
    )
    assert "share the sheet" not in failure.description.lower()
    assert sheet.calls["values_batch_update_by_data_filter"] == 0
    assert clock.waits == [], "a disabled API is not retried"


def test_a_429_that_lasts_61_seconds_is_waited_out_per_minute_and_the_run_succeeds(sheet, clock):
    sheet.fail_sheets(429, for_seconds=61)
    result = run()
    assert result.success
    assert clock.waits and all(wait >= 60 for wait in clock.waits), clock.waits
    assert 61 <= sum(clock.waits) <= 150
    assert [row[3] for row in sheet.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)[1:]] == ["queued"]


def test_a_retry_after_from_google_is_the_wait(sheet, clock):
    sheet.fail_sheets(429, times=1, retry_after=7)
    assert run().success
    assert clock.waits == [7.0]


def test_a_quota_that_outlasts_the_bound_fails_the_run_with_a_quota_sentence(sheet, clock):
    sheet.fail_sheets(429, for_seconds=3600)
    result = run()
    assert not result.success
    step, failure = failure_of(result)
    assert step == "port_sheet_rows"
    assert failure.metadata["failure_class"].value == "quota"
    assert "quota is exhausted" in failure.description and "next scheduled run" in failure.description
    assert sum(clock.waits) <= 150
    assert sheet.calls["values_batch_update_by_data_filter"] == 0
