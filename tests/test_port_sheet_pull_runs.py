"""Through real Dagster runs: the pull materializes a typed snapshot on a good token, and every credentials
or sheet failure fails the run visibly (failed check, Failure with the fix, no retry, no Sheets call),
without a secret ever reaching the instance's event log."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from jada_pipelines.definitions import defs
from jada_pipelines.google_api.resources import GoogleCredentialsResource
from jada_pipelines.port_sheet.assets import port_sheet_rows
from jada_pipelines.port_sheet.resources import PortSheetSettings, PortSheetStore
from jada_pipelines.port_sheet.store import read_snapshot, snapshot_path
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

HEADER = ["id", "name", "agent_turns"]


def _pull(instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [port_sheet_rows],
        resources={
            "google": GoogleCredentialsResource(retry_attempts=2, retry_base_delay_s=0.001),
            "port_sheet": PortSheetSettings(),
            "port_sheet_store": PortSheetStore(),
        },
        instance=instance,
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}


def _failure(result: dg.ExecuteInProcessResult):
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data


@pytest.fixture
def sheet(google_emulator, google_token_file):
    google_emulator.set_sheet(
        PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER, ["a", "Lisbon", 3], ["b", "Porto", None], ["c", "Faro", 1]]
    )
    return google_emulator


# ------------------------------------------------------------------------------------------ definitions


def test_the_definitions_load_with_no_environment_and_hold_the_pull_its_checks_job_and_schedule():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()

    checks = {key.name for key in repository.asset_graph.asset_check_keys}
    assert {"google_credentials_fresh", "port_sheet_rows_valid"} <= checks
    schedule = repository.get_schedule_def("port_sheet_sync_schedule")
    assert schedule.cron_schedule == "*/30 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "port_sheet_sync_job"
    assert (
        dg.AssetKey("port_sheet_rows")
        in repository.get_job("port_sheet_sync_job").asset_layer.selected_asset_keys
    )


# ------------------------------------------------------------------------------------------ happy path


def test_a_pull_refreshes_once_reads_once_and_stores_a_typed_snapshot(sheet):
    result = _pull()

    assert result.success
    # One metadata call for the sheet's time zone, one read of the values.
    assert (sheet.calls["token"], sheet.calls["metadata"], sheet.calls["batch_get"]) == (1, 1, 1)
    assert sheet.sheets_calls() == 2
    metadata = _metadata(result)
    assert (metadata["row_count"], metadata["quarantined_count"], metadata["google_api_calls"]) == (3, 0, 2)
    assert metadata["keys_added"] == 3
    assert [r.data["id"] for r in metadata["preview"].records] == ["a", "b", "c"]
    stored = read_snapshot(snapshot_path("port_sheet_rows"))
    assert list(stored.rows["agent_turns"])[::2] == [3, 1]
    assert str(stored.rows["agent_turns"].dtype) == "Int64"
    assert _checks(result)["google_credentials_fresh"].passed
    assert _checks(result)["port_sheet_rows_valid"].passed


def test_a_second_pull_reports_the_keys_added_changed_and_removed_since_the_first(sheet):
    assert _pull().success
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, "B2", "Lisboa")
    sheet.delete_row(PORT_SHEET_ID, PORT_SHEET_TAB, 3)
    sheet.append_row(PORT_SHEET_ID, PORT_SHEET_TAB, ["d", "Sines", 0])
    sheet.sort_rows(PORT_SHEET_ID, PORT_SHEET_TAB, reverse=True)

    metadata = _metadata(_pull())

    assert (metadata["keys_added"], metadata["keys_changed"], metadata["keys_removed"]) == (1, 1, 1)
    assert (metadata["added"], metadata["changed"], metadata["removed"]) == ("d", "a", "b")


def test_an_unreadable_stored_snapshot_is_replaced_by_the_next_pull_with_a_warning(sheet):
    stored = snapshot_path("port_sheet_rows")
    stored.parent.mkdir(parents=True)
    stored.write_text('{"header": [')

    with dg.instance_for_test() as instance:
        result = _pull(instance)
        warnings = [r.user_message for r in instance.all_logs(result.run_id) if r.level == logging.WARNING]

    assert result.success
    assert _metadata(result)["keys_added"] == 3, "no baseline: every key is reported as added"
    assert any(f"The stored port-sheet snapshot {stored} cannot be read" in w for w in warnings)
    assert len(read_snapshot(stored).rows) == 3


def test_a_downstream_step_fails_on_an_unreadable_stored_snapshot_with_the_fix():
    stored = snapshot_path("port_sheet_rows")
    stored.parent.mkdir(parents=True)
    stored.write_text("[]")

    with pytest.raises(dg.Failure) as caught:
        PortSheetStore().load_input(dg.build_input_context(asset_key=dg.AssetKey("port_sheet_rows")))

    assert caught.value.description.startswith(f"The stored port-sheet snapshot {stored} cannot be read")
    assert "The next pull of port_sheet_rows replaces it" in caught.value.description


def test_an_empty_sheet_with_a_header_is_a_valid_empty_result(google_emulator, google_token_file):
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER])

    result = _pull()

    assert result.success
    assert _metadata(result)["row_count"] == 0
    assert _checks(result)["port_sheet_rows_valid"].passed


def test_quarantined_rows_pass_the_run_with_a_warning_that_gives_each_reason(sheet):
    sheet.append_row(PORT_SHEET_ID, PORT_SHEET_TAB, ["a", "again"])
    sheet.append_row(PORT_SHEET_ID, PORT_SHEET_TAB, ["e", "Sines", "lots"])

    result = _pull()

    assert result.success
    check = _checks(result)["port_sheet_rows_valid"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "row 2: the key 'a' appears on rows 2, 5" in check.description
    assert "row 6: column 'agent_turns': 'lots' is not a whole number" in check.description
    assert _metadata(result)["quarantined_count"] == 3


def test_a_sheet_without_the_key_column_fails_the_blocking_validity_check(google_emulator, google_token_file):
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [["name"], ["Lisbon"]])

    result = _pull()

    assert not result.success
    check = _checks(result)["port_sheet_rows_valid"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "key column 'id' is not in the header row" in check.description


def test_a_token_near_the_end_of_its_testing_life_warns_on_the_checks_tab_and_the_pull_still_runs(
    sheet, google_token_file
):
    token = json.loads(google_token_file.read_text())
    consented = datetime.now(UTC) - timedelta(days=6.5)
    token.update(publishing_status="testing", consented_at=consented.isoformat())
    google_token_file.write_text(json.dumps(token))

    result = _pull()

    assert result.success
    check = _checks(result)["google_credentials_fresh"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "expires at" in check.description


# ------------------------------------------------------------------------------------------ failures


FAILURES = {
    "no-credentials": (None, "missing_config", "JADA_GOOGLE_TOKEN_FILE"),
    "missing-file": ("unlink", "missing_file", "does not exist"),
    "malformed-json": ("{", "malformed_json", "not valid JSON"),
    "client-file": ('{"installed": {}}', "wrong_file_type", "client-secrets file, not a token"),
    "missing-fields": ('{"client_id": "x"}', "missing_fields", "client_secret, refresh_token"),
    "invalid_grant": ("invalid_grant", "token_revoked", "revoked or has expired"),
    "invalid_rapt": ("invalid_rapt", "reauth_required", "sign in again"),
    "rapt_required": ("rapt_required", "reauth_required", "sign in again"),
    "deleted_client": ("deleted_client", "client_invalid", "deleted"),
    "bad_gateway": ("bad_gateway", "transient", "HTTP 502"),
    "narrower-scope": ("narrower", "scope_not_granted", "without the Sheets scope"),
}


def _break(fault, google_emulator, google_token_file, monkeypatch):
    if fault is None:
        monkeypatch.delenv("JADA_GOOGLE_TOKEN_FILE")
    elif fault == "unlink":
        google_token_file.unlink()
    elif fault == "narrower":
        google_emulator.grant_only(["https://www.googleapis.com/auth/spreadsheets.readonly"])
    elif fault.startswith("{"):
        google_token_file.write_text(fault)
    else:
        google_emulator.fail_token(fault)


@pytest.mark.parametrize(("fault", "kind", "cause"), FAILURES.values(), ids=FAILURES.keys())
def test_each_credentials_failure_fails_the_run_with_its_cause_and_fix_and_makes_no_sheets_call(
    sheet, google_token_file, monkeypatch, fault, kind, cause
):
    _break(fault, sheet, google_token_file, monkeypatch)

    result = _pull()

    assert not result.success
    failure = _failure(result)
    assert cause in failure.description
    assert any(
        fix in failure.description for fix in ("jada auth google", "JADA_GOOGLE", "try again", "console")
    )
    assert failure.metadata["failure_class"].value == kind
    assert {"token_age_days", "predicted_expiry"} <= failure.metadata.keys()
    check = _checks(result)["google_credentials_fresh"]
    assert (check.passed, check.severity, check.description) == (
        False,
        dg.AssetCheckSeverity.ERROR,
        failure.description,
    )
    assert sheet.sheets_calls() == 0
    assert result.get_asset_materialization_events() == []


@pytest.mark.parametrize("status", [403, 404])
def test_an_unreadable_sheet_fails_the_run_instead_of_looking_empty(sheet, status):
    assert _pull().success
    sheet.fail_sheets(status)

    result = _pull()

    assert not result.success
    assert "share the sheet" in _failure(result).description
    assert _failure(result).metadata["failure_class"].value == "sheet_access"
    assert len(read_snapshot(snapshot_path("port_sheet_rows")).rows) == 3, "the stored snapshot was kept"


def test_a_missing_tab_fails_the_run_and_names_the_setting(sheet, monkeypatch):
    monkeypatch.setenv("JADA_PORT_SHEET_TAB", "Harbours")

    result = _pull()

    assert not result.success
    assert "JADA_PORT_SHEET_TAB" in _failure(result).description


def test_with_nothing_configured_the_run_fails_with_a_sentence_naming_the_token_variable():
    result = _pull()

    assert not result.success
    assert _failure(result).description.startswith(
        "No Google credentials are configured. Set JADA_GOOGLE_TOKEN_FILE"
    )


def test_an_unset_sheet_id_fails_with_a_sentence_naming_the_variable(google_token_file, monkeypatch):
    monkeypatch.delenv("JADA_PORT_SHEET_ID")

    result = _pull()

    assert not result.success
    assert _failure(result).description.startswith("JADA_PORT_SHEET_ID is not set")


def test_one_cause_one_red_the_rows_check_says_it_was_not_evaluated_instead_of_execution_failed(sheet):
    sheet.fail_token("invalid_grant")
    with dg.instance_for_test() as instance:
        result = _pull(instance)

        assert not result.success
        checks = _checks(result)
        assert not checks["google_credentials_fresh"].passed
        assert checks["google_credentials_fresh"].severity == dg.AssetCheckSeverity.ERROR
        rows = checks["port_sheet_rows_valid"]
        assert (rows.passed, rows.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert rows.description.startswith("Not evaluated: google_credentials_fresh failed")
        assert rows.metadata["evaluated"].value is False
        # What the UI resolves: an evaluated check (FAILED, shown with its severity), not a planned one that
        # Dagster 1.13 turns into "Execution failed" once the run has failed.
        key = dg.AssetCheckKey(dg.AssetKey("port_sheet_rows"), "port_sheet_rows_valid")
        (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
        assert record.status.value == "FAILED"


def test_a_credentials_failure_is_not_retried_by_dagster(sheet):
    sheet.fail_token("invalid_grant")
    job = dg.define_asset_job(
        "retrying", selection=[port_sheet_rows], op_retry_policy=dg.RetryPolicy(max_retries=2)
    )
    retrying_defs = dg.Definitions(
        assets=[port_sheet_rows],
        jobs=[job],
        resources={
            "google": GoogleCredentialsResource(),
            "port_sheet": PortSheetSettings(),
            "port_sheet_store": PortSheetStore(),
        },
    )

    result = retrying_defs.resolve_job_def("retrying").execute_in_process(raise_on_error=False)

    assert not result.success
    assert sheet.calls["token"] == 1


# ------------------------------------------------------------------------------------------ secrets


def test_no_secret_reaches_the_event_log_of_a_failing_or_a_passing_run(sheet, google_token_file):
    token = json.loads(google_token_file.read_text())
    secrets = [token["refresh_token"], token["client_secret"]]
    with dg.instance_for_test() as instance:
        sheet.fail_token("invalid_grant")
        failing = _pull(instance)
        sheet.clear_faults()
        passing = _pull(instance)
        secrets += list(sheet._access_tokens)  # the access tokens Google handed out during the runs

        assert (failing.success, passing.success) == (False, True)
        for run in (failing, passing):
            records = instance.all_logs(run.run_id)
            assert len(records) > 10
            log = "\n".join(serialize_value(record) for record in records)
            log += serialize_value(instance.get_run_by_id(run.run_id))
            for secret in secrets:
                assert secret not in log
