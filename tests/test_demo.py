"""The demo's emulators serve the seeded port sheet; `jada demo sheet` and a read-only page show it."""

from __future__ import annotations

import threading
import urllib.request

import pytest

from jada_pipelines import cli
from jada_pipelines.emulators.anthropic import DEMO_TURN_CAP
from jada_pipelines.emulators.demo import ENV_FILE, HEADER, SPREADSHEET_ID, TAB, start_emulators


@pytest.fixture
def demo(tmp_path):
    emulators = start_emulators(tmp_path, google_port=0, anthropic_port=0, page_port=0)
    yield emulators
    emulators.stop()


def test_the_seeded_sheet_has_about_twenty_ports_a_few_asking_for_work_and_one_that_hits_the_turn_cap(demo):
    values = demo.google.sheet_values(SPREADSHEET_ID, TAB)
    assert values[0] == HEADER
    tasks = [row[HEADER.index("task")] for row in values[1:] if len(row) > HEADER.index("task")]
    assert len(values) == 22
    assert [row[0] for row in values[1:]].count("") == 1  # one row for the pull to quarantine
    assert 5 < len([task for task in tasks if task]) < 10
    assert len([task for task in tasks if DEMO_TURN_CAP in task]) == 1


def test_the_demo_environment_points_only_at_the_local_emulators(demo):
    for name in ("JADA_GOOGLE_TOKEN_URI", "JADA_SHEETS_API_URL", "ANTHROPIC_BASE_URL"):
        assert demo.env[name].startswith("http://127.0.0.1:")


def test_jada_demo_sheet_prints_the_sheet_it_reads_from_the_running_emulator(demo, tmp_path, capsys):
    assert cli.main(["demo", "sheet", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"LOCAL EMULATOR of Google Sheets at {demo.google.base_url} (not Google)")
    assert "Rotterdam" in out and "Lisbon (PT)" in out and "agent_status" in out
    assert demo.google.calls["batch_get"] == 1


def test_jada_demo_sheet_says_to_start_the_demo_when_none_is_running(demo, tmp_path, capsys):
    demo.stop()
    assert not (tmp_path / ENV_FILE).exists()
    assert cli.main(["demo", "sheet", "--state-dir", str(tmp_path)]) == 2
    assert "no demo is running: start one with `make demo`" in capsys.readouterr().err


def test_the_read_only_page_shows_the_live_sheet_labelled_as_an_emulator(demo):
    demo.google.set_cell(SPREADSHEET_ID, TAB, "H3", "running")  # P002's agent_status, as a push would
    with urllib.request.urlopen(demo.page.url, timeout=10) as response:
        page = response.read().decode()
    assert "LOCAL EMULATOR of Google Sheets (not Google)" in page
    assert "<td>Rotterdam</td>" in page and "<td class=owned>running</td>" in page


def test_a_port_already_taken_stops_what_had_started(demo, tmp_path):
    taken = int(demo.page.url.rsplit(":", 1)[1].strip("/"))
    serving = len(threading.enumerate())
    with pytest.raises(OSError):
        start_emulators(tmp_path / "second", google_port=0, anthropic_port=0, page_port=taken)
    # The second Google and Anthropic emulators were started, then stopped again: no server thread is left.
    assert len(threading.enumerate()) == serving


def test_jada_demo_sheet_reads_a_tab_whose_name_has_an_apostrophe(demo, tmp_path, capsys):
    # A1 notation doubles an apostrophe inside a quoted tab name: 'Ana''s ports'.
    demo.google.set_sheet(SPREADSHEET_ID, "Ana's ports", demo.google.sheet_values(SPREADSHEET_ID, TAB))
    env_file = tmp_path / ENV_FILE
    env_file.write_text(
        env_file.read_text().replace(f"JADA_PORT_SHEET_TAB={TAB}", "JADA_PORT_SHEET_TAB=Ana's ports")
    )
    assert cli.main(["demo", "sheet", "--state-dir", str(tmp_path)]) == 0
    assert "Rotterdam" in capsys.readouterr().out
