"""Through the real dagster-daemon and the repository's dagster.yaml, nothing goes quiet unnoticed:

- with port_sheet_sync_schedule turned off and the port sheet's last sync 50 minutes old, the daemon's
  freshness evaluation marks port_sheet_rows stale and freshness_alert_sensor posts it to Slack once;
- the watchdog outside the daemon (`jada health --alert`) posts the turned-off schedule;
- with the daemon killed (SIGKILL to its process group, as in a power loss), the watchdog posts the silent
  daemon once and not again on its next run, and posts the recovery once the daemon is back.

One test, one daemon (restarted once): each daemon start costs tens of seconds on a small machine. The
fifty-minute-old sync is a materialization stored with a past timestamp; everything else is real time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.cli import main
from tests.fixtures.local_daemon import INSTANCE_CONFIG
from tests.test_alerts_freshness import materialized_minutes_ago

REPO = Path(__file__).resolve().parent.parent
STALE_AFTER_S = 45  # JADA_HEALTH_DAEMON_STALE_SECONDS here: daemons beat every 30 s
# A deadline, not a duration: a daemon start on a loaded 2-core machine can take minutes.
WAIT_S = 300


def start_daemon(workdir: Path, log_name: str) -> subprocess.Popen:
    log = (workdir / log_name).open("w")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workdir / "workspace.yaml")],
        cwd=workdir,
        # The freshness daemon re-evaluates every 2 s instead of 30, so the test need not wait for it.
        env={**os.environ, "FRESHNESS_DAEMON_INTERVAL_SECONDS": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one killpg ends it, its code server and runs
    )


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(what: str, condition, workdir: Path, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    logs = "\n".join(path.read_text()[-2000:] for path in sorted(workdir.glob("daemon*.log")))
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def heartbeats_since(instance: dg.DagsterInstance, since: float) -> bool:
    beats = instance.get_daemon_heartbeats()
    required = instance.get_required_daemon_types()
    return all(name in beats and beats[name].timestamp > since for name in required)


def heartbeats_older_than(instance: dg.DagsterInstance, seconds: float) -> bool:
    beats = instance.get_daemon_heartbeats()
    return all(time.time() - beat.timestamp > seconds for beat in beats.values())


def sensor_ticked_since(instance: dg.DagsterInstance, sensor: str, since: float) -> bool:
    for state in instance.all_instigator_state():
        if state.instigator_name == sensor:
            return any(
                t.timestamp > since for t in instance.get_ticks(state.instigator_origin_id, state.selector_id)
            )
    return False


def keys(webhook, prefix: str) -> list[str]:
    return [
        p["text"].rsplit("(dedup ", 1)[1].rstrip(")")
        for p in webhook.payloads
        if f"(dedup {prefix}" in p["text"]
    ]


def watchdog(capsys) -> int:
    code = main(["health", "--alert"])
    capsys.readouterr()
    return code


@pytest.mark.daemon
@pytest.mark.timeout(1200)
def test_a_stale_sheet_and_a_killed_daemon_each_reach_slack_once_and_the_daemon_s_recovery_too(
    slack_webhook, google_token_file, anthropic_emulator, tmp_path, capsys, monkeypatch
):
    # anthropic_emulator sets ANTHROPIC_API_KEY: a configured deployment, so the watchdog's only problems here are
    # the ones this test makes (the turned-off schedule, then the killed daemon).
    home = Path(os.environ["DAGSTER_HOME"])
    (home / "dagster.yaml").symlink_to(INSTANCE_CONFIG)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: jada_pipelines.definitions\n"
        f"      attribute: defs\n      working_directory: {REPO}\n"
    )
    monkeypatch.setenv("JADA_HEALTH_DAEMON_STALE_SECONDS", str(STALE_AFTER_S))
    # Turned off the way the UI's toggle does it.
    dagster = str(Path(sys.executable).parent / "dagster")
    subprocess.run(
        [dagster, "schedule", "stop", "port_sheet_sync_schedule", "-w", str(tmp_path / "workspace.yaml")],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    with dg.DagsterInstance.get() as instance:
        materialized_minutes_ago(instance, "port_sheet_rows", 50)
        materialized_at = time.time() - 50 * 60
        daemon = start_daemon(tmp_path, "daemon.log")
        try:
            # 1. Inside the daemon: the stale sheet reaches Slack once.
            wait_for("the stale port sheet in Slack", lambda: keys(slack_webhook, "asset-stale:"), tmp_path)
            (stale,) = [p["text"] for p in slack_webhook.payloads if "(dedup asset-stale:" in p["text"]]
            assert "Stale: port_sheet_rows is not fresh" in stale
            # The post names the sync's age as the daemon saw it: 50 min, or more on a slow machine.
            (age,) = re.findall(r"(\d+) min ago", stale)
            assert 50 <= int(age) <= round((time.time() - materialized_at) / 60) + 1, stale

            # 2. Outside it, with the daemon alive: the watchdog names the turned-off schedule, not the daemon.
            wait_for("every daemon's heartbeat", lambda: heartbeats_since(instance, 0), tmp_path)
            assert watchdog(capsys) == 1
            assert keys(slack_webhook, "watchdog:") and all(
                key.startswith("watchdog:problem:automation:") for key in keys(slack_webhook, "watchdog:")
            )

            # 3. A power loss: the daemon, its code server and any run die at once.
            kill_group(daemon)
            wait_for(
                "the heartbeats to go stale", lambda: heartbeats_older_than(instance, STALE_AFTER_S), tmp_path
            )
            assert watchdog(capsys) == 1
            assert watchdog(capsys) == 1  # the next run of the timer: no second post
            assert len(keys(slack_webhook, "watchdog:problem:daemons:")) == 1

            # 4. The daemon is back (as systemd would restart it): one recovery.
            restarted = time.time()
            daemon = start_daemon(tmp_path, "daemon-restarted.log")
            wait_for(
                "the restarted daemon's heartbeats", lambda: heartbeats_since(instance, restarted), tmp_path
            )
            watchdog(capsys)
            assert len(keys(slack_webhook, "watchdog:recovered:daemons:")) == 1
            wait_for(
                "a freshness_alert_sensor tick after the restart",
                lambda: sensor_ticked_since(instance, "freshness_alert_sensor", restarted),
                tmp_path,
            )
        finally:
            kill_group(daemon)

    # The sensor ticked after the restart with the sheet still stale, and did not post it again.
    assert len(keys(slack_webhook, "asset-stale:")) == 1
    assert len(keys(slack_webhook, "watchdog:problem:daemons:")) == 1
    assert len(keys(slack_webhook, "watchdog:problem:automation:")) == 1
