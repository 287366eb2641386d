"""`make demo` end to end (daemon): the demo's own process, with its real `dagster dev`, plays its script on a
fast clock: a sync passes, the Google emulator starts answering invalid_grant, the next sync fails and the
Slack emulator gets exactly one alert for it, with the fix and the run link; `jada auth google` re-consents
against the emulator's consent screen; the next sync passes and the recovery is posted. Then headless Chromium
opens the demo's Dagster UI and its sheet page and finds the failed run with the fix, the check's recovery
and the Slack posts, saving screenshots.

One demo serves both tests (it takes a few minutes to play on two cores).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jada_pipelines import cli
from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue
from tests.conftest import scrubbed_names

pytestmark = pytest.mark.daemon

REPO_ROOT = Path(__file__).resolve().parents[1]
STORY_TIMEOUT_S = 600
# P017's first session (30 turns of the demo agent) ends, and a push shows it, within this after the story, on a
# loaded box. (Each push is its own run after a sync: with one core kept busy beside `make test`, a push took
# up to 2.5 min from its sync to its write, so the sheet lags the queue by minutes there.)
P017_TIMEOUT_S = 420
# The push after the recovery's sync writes the pipeline's columns within this, on the same loaded box.
PUSH_SEEN_S = 300
# Longer than a sensor tick (5-10 s) plus the sheet's lag (a 5 s sync and its own run), shorter than P017's
# next session (30 turns), and well inside the demo's 90 s continue delay.
INCOMPLETE_SEEN_S = 30
CHROMIUM = "/usr/bin/chromium"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PlayedDemo:
    def __init__(self, state_dir: Path, log: Path, ports: list[int]):
        self.state_dir = state_dir
        self.log = log
        self.webserver, self.google, self.anthropic, self.page, self.slack = ports

    def said(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith("demo: ")]

    def posts(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.slack}/emulator/posts", timeout=10) as response:
            return json.load(response)

    def run_id(self, pattern: str) -> str:
        for line in self.said():
            match = re.search(pattern, line)
            if match:
                return match.group(1)
        raise AssertionError(f"the demo never said {pattern!r}:\n" + "\n".join(self.said()))


@pytest.fixture(scope="module")
def played_demo(tmp_path_factory):
    """The demo, started as `make demo` starts it (on free ports and a fast clock), once its story is told."""
    root = tmp_path_factory.mktemp("demo")
    ports = _free_ports(5)
    scrubbed = set(scrubbed_names())
    env = {name: value for name, value in os.environ.items() if name not in scrubbed}
    env.pop("DAGSTER_HOME", None)
    env.pop("JADA_DATA_DIR", None)
    log = root / "demo.log"
    argv = [
        sys.executable, "-m", "jada_pipelines.emulators.demo",
        "--port", str(ports[0]), "--google-port", str(ports[1]), "--anthropic-port", str(ports[2]),
        "--page-port", str(ports[3]), "--slack-port", str(ports[4]), "--state-dir", str(root / "state"),
        "--sync-seconds", "5", "--revoke-after-syncs", "1", "--reconsent-after-seconds", "0",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    demo = PlayedDemo(root / "state", log, ports)
    try:
        deadline = time.monotonic() + STORY_TIMEOUT_S
        while not any("received the recovery" in line for line in demo.said()):
            stopped = [line for line in demo.said() if "the script stopped" in line]
            assert not stopped and process.poll() is None and time.monotonic() < deadline, (
                "the demo did not finish its story:\n" + log.read_text()[-6000:]
            )
            time.sleep(2)
        yield demo
    finally:
        # The whole session (dagster dev, its webserver, daemon and code server): Ctrl-C as a terminal sends it.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# The first test of the module also plays the demo (its module fixture), and pytest-timeout counts set-up.
@pytest.mark.timeout(STORY_TIMEOUT_S + PUSH_SEEN_S + 60)
def test_the_demo_fails_a_sync_on_revocation_alerts_once_with_the_fix_and_recovers_after_re_consent(
    played_demo, capsys
):
    demo = played_demo
    said = "\n".join(demo.said())
    failed = demo.run_id(r"run (\S+) ended FAILURE: its blocking check google_credentials_fresh failed")
    passed = demo.run_id(r"run (\S+) ended SUCCESS; waiting for the recovery post")
    assert "REVOKED the demo's Google token" in said
    assert "re-consenting as a person would: jada auth google --client-secrets " in said
    assert "`jada auth google` stored a new token" in said
    # The order of the story.
    assert said.index("REVOKED") < said.index(failed) < said.index("re-consenting") < said.index(passed)
    # The real schedule is off from before the first sync to after the recovery, so no scheduled sync lands
    # in the revoked window (the resume is said just after the recovery post, hence the wait).
    off = "turned port_sheet_sync_schedule off"
    deadline = time.monotonic() + 30
    while "turned port_sheet_sync_schedule back on" not in "\n".join(demo.said()):
        assert time.monotonic() < deadline, "the demo did not turn the schedule back on:\n" + said
        time.sleep(1)
    said = "\n".join(demo.said())
    assert said.index(off) < said.index("sync 1:") < said.index("REVOKED")
    assert said.index("received the recovery") < said.index("turned port_sheet_sync_schedule back on")

    posts = demo.posts()
    texts = [post["text"] for post in posts]
    run_link = f"http://127.0.0.1:{demo.webserver}/runs/"
    failures = [text for text in texts if "ERROR: run of port_sheet_sync_job failed" in text]
    # One alert per failed run. (The real 30-minute schedule stays on, so a sync it starts inside the
    # revoked window fails too and is alerted on its own.)
    failed_runs = [re.search(r"/runs/(\S+) ", text).group(1) for text in failures]
    assert len(failed_runs) == len(set(failed_runs)), texts
    (alert,) = [text for text in failures if run_link + failed in text]
    assert "invalid_grant" in alert and "Re-consent with `jada auth google --client-secrets" in alert
    assert run_link + failed in alert
    recoveries = [text for text in texts if "Recovered: check google_credentials_fresh" in text]
    assert len(recoveries) == 1 and run_link + passed in recoveries[0]
    assert texts.index(alert) < texts.index(recoveries[0])

    # The sheet: the loop wrote the pipeline's columns back (P002 asked for work, so it has a status). The push
    # is its own run after a sync, so on a loaded box it may land a while after the recovery was posted.
    deadline = time.monotonic() + PUSH_SEEN_S
    while True:
        assert cli.main(["demo", "sheet", "--state-dir", str(demo.state_dir)]) == 0
        sheet = capsys.readouterr().out
        p002 = next(line for line in sheet.splitlines() if line.startswith("P002"))
        if re.search(r"\b(queued|running|done)\b", p002):
            break
        assert time.monotonic() < deadline, f"no push wrote P002's status within {PUSH_SEEN_S} s:\n" + sheet
        time.sleep(2)
    # `jada demo slack` prints the same posts (the demo goes on posting meanwhile: count before and after).
    before = len(demo.posts())
    assert cli.main(["demo", "slack", "--state-dir", str(demo.state_dir)]) == 0
    printed = capsys.readouterr().out
    after = len(demo.posts())
    printed_count = int(re.search(r"(\d+) posts?$", printed.splitlines()[0]).group(1))
    assert before <= printed_count <= after, (before, printed.splitlines()[0], after)
    assert "ERROR: run of port_sheet_sync_job failed" in printed and "Recovered: check" in printed


@pytest.mark.timeout(P017_TIMEOUT_S + 120)
def test_the_sheet_shows_p017_incomplete_between_its_attempts(played_demo, capsys):
    """The demo sets JADA_AGENT_CONTINUE_DELAY_SECONDS=90: P017 (turn cap) waits that long before its next
    attempt, so the syncs (every 5 s here) keep showing `incomplete` in its row. With no delay the sensor
    claims it again within a tick (5-10 s) and the row moves on to `dispatched`."""

    def p017() -> str:
        assert cli.main(["demo", "sheet", "--state-dir", str(played_demo.state_dir)]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("P017"))

    deadline = time.monotonic() + P017_TIMEOUT_S
    seen = []
    while not re.search(r"\bincomplete\b", row := p017()):
        seen.append(f"{time.strftime('%H:%M:%S')} {row}")
        assert time.monotonic() < deadline, "the sheet never showed P017 incomplete:\n" + "\n".join(seen[-5:])
        time.sleep(2)
    # The sheet still says `incomplete` INCOMPLETE_SEEN_S after the attempt ended, several syncs later.
    queue = SQLiteTaskQueue(played_demo.state_dir / "dagster_home" / "jada" / "tasks.db")
    ended = max(a.ended_at for a in queue.attempts(since=0) if a.outcome == "incomplete")
    time.sleep(max(0.0, ended + INCOMPLETE_SEEN_S - time.time()))
    row = p017()
    assert re.search(r"\bincomplete\b", row), row


def _chromium(url: str, profile: Path, screenshot: Path, expected: list[str], budget_ms: int = 20000) -> str:
    """The page's text (tags stripped, spaces collapsed) after ``budget_ms`` of virtual time in headless
    Chromium, with a screenshot of it.

    The Dagster UI renders from GraphQL answers that a loaded machine may give late, so a page missing an
    ``expected`` text is loaded again (three tries); the caller asserts on what the last try saw."""
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        url,
    ]
    for _ in range(3):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", result.stdout)).split())
        if all(part in text for part in expected):
            break
    assert screenshot.stat().st_size > 10_000, f"no screenshot of {url}"
    return text


def test_headless_chromium_sees_the_failed_check_with_its_fix_the_failed_run_the_recovery_and_the_slack_posts(
    played_demo, tmp_path
):
    assert shutil.which(CHROMIUM), "Chromium is missing: `make test` installs it (apt-get install chromium)."
    demo = played_demo
    failed = demo.run_id(r"run (\S+) ended FAILURE")
    passed = demo.run_id(r"run (\S+) ended SUCCESS; waiting for the recovery post")
    ui = f"http://127.0.0.1:{demo.webserver}"
    profile = tmp_path / "profile"  # a fresh --user-data-dir
    checks_only = "?logs=type%3AASSET_CHECK_EVALUATION"  # the run page's event filter

    # The failed run: its failed step, the cause and the fix.
    fix = "Re-consent with `jada auth google --client-secrets"
    seen = ["Failure", "RUN_FAILURE", "(invalid_grant)", fix]
    page = _chromium(f"{ui}/runs/{failed}", profile, tmp_path / "failed-run.png", seen)
    assert "Failure" in page and "RUN_FAILURE" in page and "port_sheet_rows" in page
    assert "Google refused the refresh token (invalid_grant)" in page and fix in page

    # Its checks: google_credentials_fresh failed with the token's failure class; the rows check was not
    # evaluated, and says which check blocked it.
    failed_check = "Check google_credentials_fresh failed for materialization of port_sheet_rows"
    seen = [failed_check, "token_revoked", "blocked_by google_credentials_fresh"]
    page = _chromium(f"{ui}/runs/{failed}{checks_only}", profile, tmp_path / "failed-check.png", seen)
    assert (
        failed_check in page and "oauth_error invalid_grant" in page and "failure_class token_revoked" in page
    )
    assert "blocked_by google_credentials_fresh evaluated false" in page
    # One cause, one red: the failed run planned nothing of the push, so none of its checks can show
    # "Execution failed" and neither push asset is part of it.
    for absent in ("port_sheet_status_columns_present", "port_sheet_status_rows_located", "Execution failed"):
        assert absent not in page, absent
    page = _chromium(f"{ui}/runs/{failed}", profile, tmp_path / "failed-run-steps.png", ["port_sheet_rows"])
    assert "port_sheet_rows" in page
    for absent in ("port_sheet_tasks", "port_sheet_status", "Execution failed"):
        assert absent not in page, absent

    # The recovery: the run after the re-consent succeeded, and so did its credentials check.
    passed_check = "Check google_credentials_fresh succeeded for materialization of port_sheet_rows"
    seen = ["Success", passed_check]
    page = _chromium(f"{ui}/runs/{passed}{checks_only}", profile, tmp_path / "recovered.png", seen)
    assert "Success" in page and passed_check in page and "token_revoked" not in page

    # The sheet page: the Slack alert with its run link, the recovery, the script's steps, the sheet.
    seen = ["Recovered"]
    page = _chromium(f"http://127.0.0.1:{demo.page}/", profile, tmp_path / "sheet-page.png", seen, 2000)
    assert "ERROR: run of port_sheet_sync_job failed" in page and f"/runs/{failed}" in page
    assert "Recovered: check google_credentials_fresh passes again" in page
    assert "REVOKED the demo" in page and "Rotterdam" in page
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "failed-check.png",
        "failed-run-steps.png",
        "failed-run.png",
        "recovered.png",
        "sheet-page.png",
    ]
