"""The demo's emulators serve the seeded port sheet; `jada demo sheet`, `jada demo slack` and a read-only page
show it and the Slack posts; a taken port stops the demo before anything starts; the demo's script revokes
and re-consents through the real `jada auth google`; and (daemon) the whole demo plays its story end to end."""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest

from jada_pipelines import cli
from jada_pipelines.emulators import demo as demo_module
from jada_pipelines.emulators.anthropic import DEMO_TURN_CAP
from jada_pipelines.emulators.demo import (
    ENV_FILE,
    HEADER,
    SPREADSHEET_ID,
    TAB,
    DemoPorts,
    start_emulators,
)

ANY_FREE = DemoPorts(webserver=0, google=0, anthropic=0, page=0, slack=0)


@pytest.fixture
def demo(tmp_path):
    emulators = start_emulators(tmp_path, ANY_FREE)
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


def test_the_demo_environment_points_only_at_the_local_emulators(demo, tmp_path):
    for name in ("JADA_GOOGLE_TOKEN_URI", "JADA_SHEETS_API_URL", "ANTHROPIC_BASE_URL", "SLACK_WEBHOOK_URL"):
        assert demo.env[name].startswith("http://127.0.0.1:")
    assert demo.env["SLACK_WEBHOOK_URL"] == demo.slack.webhook_url
    # The alerts' run links point at the demo's webserver, and `. demo.env` gives `jada` the demo's instance.
    assert demo.env["JADA_WEBSERVER_URL"].startswith("http://127.0.0.1:")
    assert demo.env["DAGSTER_HOME"] == str(tmp_path / "dagster_home")
    assert demo_module.load_demo_env(tmp_path) == demo.env


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
    assert "LOCAL EMULATORS of Google Sheets and Slack (not Google, not Slack)" in page
    assert "<td>Rotterdam</td>" in page and "<td class=owned>running</td>" in page
    assert "No post yet." in page


def _post(url: str, text: str) -> None:
    from slack_sdk.webhook import WebhookClient

    assert WebhookClient(url).send(text=text).status_code == 200


def test_slack_posts_show_on_the_page_and_in_jada_demo_slack_newest_first_with_their_time(
    demo, tmp_path, capsys
):
    _post(demo.slack.webhook_url, ":red_circle: ERROR: run of port_sheet_sync_job failed <first>")
    _post(demo.slack.webhook_url, ":large_green_circle: Recovered: check google_credentials_fresh <second>")
    demo.steps.append((demo.slack.received_at[0], "REVOKED the demo's Google token"))
    with urllib.request.urlopen(demo.page.url, timeout=10) as response:
        page = response.read().decode()
    assert "Slack posts (2)" in page
    # Newest first, HTML-escaped, each with its local time.
    assert page.index("Recovered") < page.index("run of port_sheet_sync_job failed &lt;first&gt;")
    clock = demo_module.wall_clock(demo.slack.received_at[0])
    assert f"<time>{clock}</time> :red_circle: ERROR" in page
    assert f"<time>{clock}</time> REVOKED the demo&#x27;s Google token" in page

    assert cli.main(["demo", "slack", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == f"LOCAL EMULATOR of a Slack incoming webhook at {demo.slack.base_url} (not Slack): 2 posts"
    )
    assert lines[1].endswith("ERROR: run of port_sheet_sync_job failed <first>")
    assert lines[2].endswith("Recovered: check google_credentials_fresh <second>")
    assert lines[1][:4].isdigit() and "T" in lines[1].split()[0]  # local ISO 8601 time first


def test_jada_demo_slack_says_to_start_the_demo_when_none_is_running(demo, tmp_path, capsys):
    demo.stop()
    assert cli.main(["demo", "slack", "--state-dir", str(tmp_path)]) == 2
    assert "no demo is running: start one with `make demo`" in capsys.readouterr().err


def test_the_scripted_revocation_and_the_re_consent_through_jada_auth_google(demo, monkeypatch):
    from jada_pipelines.google_api.errors import CredentialsError
    from jada_pipelines.google_api.resources import GoogleCredentialsResource

    google = GoogleCredentialsResource(
        token_file=demo.env["JADA_GOOGLE_TOKEN_FILE"],
        token_uri=demo.env["JADA_GOOGLE_TOKEN_URI"],
        sheets_api_url=demo.env["JADA_SHEETS_API_URL"],
    )
    google.sheets().close()  # the seeded token works
    story = demo_module.DemoStory(
        demo, client=None, home=demo.state_dir, stop=threading.Event(), dagster_alive=lambda: True
    )
    story.revoke()
    with pytest.raises(CredentialsError) as refused:
        google.sheets()
    assert refused.value.kind == "token_revoked"
    assert "invalid_grant" in refused.value.description
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "0")  # let monkeypatch undo what the flow sets
    story.reconsent()
    assert demo.google.calls["consent"] == 1  # through the emulator's consent screen
    google.sheets().close()  # the new token works
    said = [text for _, text in demo.steps]
    assert said[0].startswith("REVOKED the demo's Google token")
    assert said[1].startswith("re-consenting as a person would: jada auth google --client-secrets ")
    assert said[2].startswith("`jada auth google` stored a new token: Stored the new Google token in")


def test_a_taken_port_stops_the_demo_before_anything_starts_and_names_it(tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = _free_ports(4)
        argv = [
            "--port", str(free[0]), "--google-port", str(free[1]), "--anthropic-port", str(taken),
            "--page-port", str(free[2]), "--slack-port", str(free[3]), "--state-dir", str(tmp_path / "state"),
        ]  # fmt: skip
        assert demo_module.main(argv) == 1
    err = capsys.readouterr().err
    assert "make demo: nothing was started." in err
    assert f"port {taken} (ANTHROPIC_PORT, the anthropic) is taken" in err
    assert f"make demo ANTHROPIC_PORT={taken + 100}" in err
    assert not (tmp_path / "state").exists()  # no emulator, no demo.env, no DAGSTER_HOME


def test_two_settings_on_one_port_are_refused_by_name():
    problems = demo_module.port_problems(DemoPorts(webserver=1, google=2, anthropic=3, page=4, slack=2))
    assert "SLACK_PORT=2 is also GOOGLE_PORT: give each its own port." in problems


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_a_port_already_taken_stops_what_had_started(demo, tmp_path):
    taken = int(demo.page.url.rsplit(":", 1)[1].strip("/"))
    serving = len(threading.enumerate())
    with pytest.raises(OSError):
        start_emulators(tmp_path / "second", DemoPorts(0, 0, 0, taken, 0))
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


def test_make_dev_on_a_taken_port_stops_before_dagster_starts_and_names_it(tmp_path):
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        # -o: take the virtualenv and the system packages as they are (make test has just seen to both).
        result = subprocess.run(
            ["make", "-s", "-o", ".venv/.installed", "-o", "system-deps", "dev", f"PORT={taken}"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"make dev: port {taken} is taken, nothing was started" in result.stdout
    assert f"make dev PORT={taken + 100}" in result.stdout
    assert "dagster" not in result.stderr.lower()


class InProcessGraphQL:
    """The story's GraphQL client, answered by Dagster's own GraphQL schema over the code location loaded in
    this process (the webserver serves the same schema over HTTP)."""

    def __init__(self, context):
        self.context = context

    def _execute(self, query: str, variables: dict | None = None) -> dict:
        from dagster_graphql.test.utils import execute_dagster_graphql

        result = execute_dagster_graphql(self.context, query, variables)
        assert not result.errors, result.errors
        return result.data


def test_the_story_turns_the_real_schedule_off_while_it_drives_the_syncs_and_back_on_at_its_end(demo):
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorStatus
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    def stored_status(instance) -> InstigatorStatus | None:
        states = [
            s for s in instance.all_instigator_state() if s.instigator_name == "port_sheet_sync_schedule"
        ]
        return states[0].status if states else None

    target = LoadableTargetOrigin(module_name="jada_pipelines.definitions", attribute="defs")
    with dg.instance_for_test() as instance, in_process_test_workspace(instance, target) as context:
        story = demo_module.DemoStory(
            demo,
            client=InProcessGraphQL(context),
            home=demo.state_dir,
            stop=threading.Event(),
            dagster_alive=lambda: True,
        )
        assert stored_status(instance) is None  # RUNNING by default in code, nothing stored yet

        story.pause_schedule()
        assert stored_status(instance) == InstigatorStatus.STOPPED
        assert story.schedule_paused

        story.resume_schedule()
        assert stored_status(instance) == InstigatorStatus.RUNNING
        assert not story.schedule_paused
    said = [text for _, text in demo.steps]
    assert said[0].startswith("turned port_sheet_sync_schedule off while this script launches the syncs")
    assert said[1] == "turned port_sheet_sync_schedule back on: it syncs the sheet every 30 minutes again."
