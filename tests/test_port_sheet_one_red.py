"""One cause, one red: after a sync that fails on its Google credentials, what the Dagster UI reads over
GraphQL shows red only for the credentials check, the failed run and port_sheet_rows. The push's checks have
no execution at all (never "Execution failed"), port_sheet_tasks and port_sheet_status are not failed, and
port_sheet_rows_valid says it was not evaluated at WARN. Real code location (loaded by a code server from
workspace.yaml, as `make dev` does), real instance, Dagster's own GraphQL schema."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from jada_pipelines.definitions import defs
from jada_pipelines.port_sheet.sensors import port_sheet_push_sensor
from tests.fixtures.port_sheet import run_port_sheet_sync

REPO = Path(__file__).resolve().parent.parent
ASSETS = ("port_sheet_rows", "port_sheet_tasks", "port_sheet_status")
CHECKS = {
    "port_sheet_rows": ("google_credentials_fresh", "port_sheet_rows_valid"),
    "port_sheet_status": ("port_sheet_status_columns_present", "port_sheet_status_rows_located"),
}

QUERY = """
query OneRed($keys: [AssetKeyInput!]!) {
  assetsLatestInfo(assetKeys: $keys) { assetKey { path } latestRun { id status } }
  assetsOrError(assetKeys: $keys) {
    ... on AssetConnection { nodes { key { path } latestFailedToMaterializeTimestamp } }
  }
}
"""
CHECK_QUERY = """
query Check($key: AssetKeyInput!, $name: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 5) {
    status runId evaluation { severity description }
  }
}
"""


@pytest.fixture
def instance():
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def failed_sync(instance, google_emulator, monkeypatch):
    """A sync with a port sheet set but no Google credentials: the newcomer's first sync."""
    monkeypatch.setenv("JADA_PORT_SHEET_ID", "the-port-sheet")
    sync = run_port_sheet_sync(instance=instance)
    assert not sync.success and sync.push is None
    return sync


def push_requests(instance, cursor=None) -> tuple[list, str | None]:
    """What port_sheet_push_sensor asks for on one tick, and its cursor after it."""
    tick = port_sheet_push_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    )
    return list(tick.run_requests or []), tick.cursor


def test_a_failed_pull_starts_no_push(failed_sync, instance):
    assert push_requests(instance)[0] == []


def test_a_pull_that_materialized_starts_one_push_and_only_one(instance, google_token_file, google_emulator):
    google_emulator.set_sheet("emulated-port-sheet", "Ports", [["id", "port"], ["a", "Lisbon"]])
    pull = defs.resolve_job_def("port_sheet_sync_job").execute_in_process(instance=instance)

    (request,), cursor = push_requests(instance)
    again, _ = push_requests(instance, cursor)

    assert request.run_key == f"after-pull:{pull.run_id}" and request.tags["jada/pull-run"] == pull.run_id
    assert request.job_name in (None, "port_sheet_push_job")
    assert again == []


def test_after_a_sync_that_fails_on_credentials_graphql_shows_one_red(failed_sync, instance):
    keys = [{"path": [name]} for name in ASSETS]
    with define_out_of_process_context(str(REPO / "workspace.yaml"), None, instance) as context:
        assets = execute_dagster_graphql(context, QUERY, {"keys": keys}).data
        executions = {
            (asset, name): execute_dagster_graphql(
                context, CHECK_QUERY, {"key": {"path": [asset]}, "name": name}
            ).data["assetCheckExecutions"]
            for asset, names in CHECKS.items()
            for name in names
        }

    latest_run = {info["assetKey"]["path"][0]: info["latestRun"] for info in assets["assetsLatestInfo"]}
    failed_at = {
        node["key"]["path"][0]: node["latestFailedToMaterializeTimestamp"]
        for node in assets["assetsOrError"]["nodes"]
    }
    # Red: the run, and port_sheet_rows in it.
    assert latest_run["port_sheet_rows"] == {"id": failed_sync.pull.run_id, "status": "FAILURE"}
    # Not red, not even planned: the push's assets.
    for name in ("port_sheet_tasks", "port_sheet_status"):
        assert latest_run[name] is None and failed_at[name] is None, name
    # The checks: the credentials check is the one ERROR; nothing is "Execution failed".
    statuses = [e["status"] for runs in executions.values() for e in runs]
    assert "EXECUTION_FAILED" not in statuses
    (credentials,) = executions[("port_sheet_rows", "google_credentials_fresh")]
    assert (credentials["status"], credentials["evaluation"]["severity"]) == ("FAILED", "ERROR")
    assert "No Google credentials are configured" in credentials["evaluation"]["description"]
    (rows_valid,) = executions[("port_sheet_rows", "port_sheet_rows_valid")]
    assert rows_valid["evaluation"]["severity"] == "WARN"
    assert rows_valid["evaluation"]["description"].startswith(
        "Not evaluated: google_credentials_fresh failed"
    )
    assert executions[("port_sheet_status", "port_sheet_status_columns_present")] == []
    assert executions[("port_sheet_status", "port_sheet_status_rows_located")] == []
