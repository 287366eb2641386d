"""Google credentials are refreshed for real before use, and every failure is sorted into one class whose
message names the cause and the fix, with the token's age and predicted expiry and never a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jada_pipelines.emulators.google import SHEETS_READONLY_SCOPE, SHEETS_SCOPE
from jada_pipelines.google_api import retry as retry_module
from jada_pipelines.google_api.config import GoogleConfig
from jada_pipelines.google_api.credentials import authorize, check_credentials
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.resources import GoogleCredentialsResource
from jada_pipelines.google_api.retry import RetryPolicy
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB

CONSENT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _config(sleeps: list[float] | None = None, attempts: int = 3) -> GoogleConfig:
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return GoogleConfig.from_env(retry=RetryPolicy(attempts=attempts, base_delay_s=0.001, sleep=sleep))


def _write_token(path, **changes):
    token = json.loads(path.read_text())
    token.update(changes)
    path.write_text(json.dumps(token))
    return token


def _assert_no_secret(error_or_verdict, token: dict) -> None:
    text = error_or_verdict.description + json.dumps(error_or_verdict.metadata, default=str)
    for name in ("refresh_token", "client_secret"):
        assert token[name] not in text, f"{name} leaked into the message or metadata"


# ------------------------------------------------------------------------------------- the token file


def test_no_configured_source_names_every_variable_to_set():
    verdict = check_credentials(config=_config())

    assert (verdict.ok, verdict.severity, verdict.kind) == (False, "ERROR", "missing_config")
    for variable in (
        "JADA_GOOGLE_TOKEN_FILE",
        "JADA_GOOGLE_SERVICE_ACCOUNT_FILE",
        "JADA_GOOGLE_TOKEN_SECRET_ID",
    ):
        assert variable in verdict.description


@pytest.mark.parametrize(
    ("content", "kind", "words"),
    [
        (None, "missing_file", "does not exist"),
        ("{not json", "malformed_json", "not valid JSON"),
        ("[1, 2]", "malformed_json", "not an object"),
        ('{"installed": {"client_id": "x"}}', "wrong_file_type", "OAuth client-secrets file, not a token"),
        (
            '{"client_id": "x", "client_secret": "", "refresh_token": null}',
            "missing_fields",
            "client_secret, refresh_token",
        ),
        (
            '{"client_id": "x", "client_secret": "y", "refresh_token": "z", "scopes": 5}',
            "malformed_json",
            "'scopes' field that is a JSON int",
        ),
    ],
    ids=["missing", "not-json", "not-an-object", "client-file", "empty-fields", "scopes-not-a-list"],
)
def test_a_bad_token_file_fails_before_any_call_to_google(
    google_emulator, google_token_file, content, kind, words
):
    if content is None:
        google_token_file.unlink()
    else:
        google_token_file.write_text(content)

    verdict = check_credentials(config=_config())

    assert (verdict.ok, verdict.kind) == (False, kind)
    assert words in verdict.description
    assert "jada auth google" in verdict.description
    assert google_emulator.calls["token"] == 0


def test_a_token_requested_without_the_sheets_scope_fails_before_any_call(google_emulator, google_token_file):
    _write_token(google_token_file, scopes=[SHEETS_READONLY_SCOPE])

    verdict = check_credentials(config=_config())

    assert verdict.kind == "scope_not_granted"
    assert SHEETS_SCOPE in verdict.description
    assert google_emulator.calls["token"] == 0


# ------------------------------------------------------------------------------------- refresh failures


@pytest.mark.parametrize(
    ("fault", "kind", "fix"),
    [
        ("invalid_grant", "token_revoked", "jada auth google"),
        ("invalid_rapt", "reauth_required", "service account"),
        ("rapt_required", "reauth_required", "service account"),
        ("deleted_client", "client_invalid", "client-secrets JSON"),
        ("invalid_client", "client_invalid", "client-secrets JSON"),
        ("invalid_scope", "scope_not_granted", "tick the Google Sheets permission"),
    ],
)
def test_each_refusal_of_the_token_endpoint_has_its_own_class_and_fix(
    google_emulator, google_token_file, fault, kind, fix
):
    token = json.loads(google_token_file.read_text())
    google_emulator.fail_token(fault)

    with pytest.raises(CredentialsError) as caught:
        authorize(_config())

    error = caught.value
    assert error.kind == kind
    assert fix in error.description
    assert error.metadata["failure_class"] == kind
    assert {"token_age_days", "predicted_expiry", "credential_class"} <= error.metadata.keys()
    assert google_emulator.calls["token"] == 1, "a permanent refusal must not be retried"
    assert google_emulator.sheets_calls() == 0
    _assert_no_secret(error, token)


def test_a_narrower_granted_scope_is_caught_even_though_the_refresh_succeeded(
    google_emulator, google_token_file
):
    google_emulator.grant_only([SHEETS_READONLY_SCOPE])

    verdict = check_credentials(config=_config())

    assert verdict.kind == "scope_not_granted"
    assert "granted without the Sheets scope" in verdict.description
    assert SHEETS_READONLY_SCOPE in verdict.description


def test_an_html_502_from_the_token_endpoint_is_transient_and_retried_a_bounded_number_of_times(
    google_emulator, google_token_file
):
    google_emulator.fail_token("bad_gateway")
    sleeps: list[float] = []

    verdict = check_credentials(config=_config(sleeps, attempts=3))

    assert verdict.kind == "transient"
    assert "HTTP 502" in verdict.description
    assert verdict.metadata["attempts"] == 3
    assert google_emulator.calls["token"] == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]


def test_a_transient_token_failure_that_clears_is_retried_into_success(google_emulator, google_token_file):
    google_emulator.fail_token("bad_gateway", times=2)

    verdict = check_credentials(config=_config(attempts=3))

    assert verdict.ok
    assert google_emulator.calls["token"] == 3


def test_a_closed_port_is_transient_and_names_the_address_and_the_variable_that_set_it(
    google_emulator, google_token_file
):
    google_emulator.stop()

    verdict = check_credentials(config=_config(attempts=2))

    assert verdict.kind == "transient"
    assert f"token endpoint {google_emulator.token_uri} could not be reached" in verdict.description
    assert "That address comes from JADA_GOOGLE_TOKEN_URI" in verdict.description


def test_the_token_uri_in_the_file_cannot_redirect_the_refresh(
    google_emulator, google_token_file, monkeypatch
):
    _write_token(google_token_file, token_uri="http://127.0.0.1:9/elsewhere")

    assert check_credentials(config=_config()).ok
    assert google_emulator.calls["token"] == 1


# ------------------------------------------------------------------------------------- token age


def _age_verdict(google_token_file, status: str, now: datetime, consented_at: datetime | None = CONSENT):
    _write_token(
        google_token_file,
        publishing_status=status,
        consented_at=consented_at.isoformat() if consented_at else None,
    )
    return check_credentials(now=now, config=_config())


def test_a_testing_token_is_ok_before_90_percent_of_its_seven_days(google_token_file):
    verdict = _age_verdict(google_token_file, "testing", CONSENT + timedelta(days=6))

    assert (verdict.severity, verdict.token_age_days) == ("OK", 6.0)
    assert verdict.expires_at == CONSENT + timedelta(days=7)


def test_a_testing_token_warns_at_90_percent_and_says_when_it_expires(google_token_file):
    verdict = _age_verdict(google_token_file, "testing", CONSENT + timedelta(days=6.3))

    assert (verdict.ok, verdict.severity) == (True, "WARN")
    assert "expires at 2026-11-08 12:00 UTC (in 16.8 hours)" in verdict.description
    assert verdict.metadata["predicted_expiry"] == "2026-11-08T12:00:00+00:00"


def test_past_100_percent_the_refresh_is_still_tried_and_a_refusal_says_it_was_predicted(
    google_emulator, google_token_file
):
    now = CONSENT + timedelta(days=7, hours=1)
    assert "expired at 2026-11-08 12:00 UTC" in _age_verdict(google_token_file, "testing", now).description

    google_emulator.fail_token("invalid_grant")
    verdict = _age_verdict(google_token_file, "testing", now)

    assert verdict.kind == "token_revoked"
    assert "This was predicted" in verdict.description
    assert verdict.token_age_days == 7.04


def test_a_production_token_never_warns_about_age(google_token_file):
    verdict = _age_verdict(google_token_file, "production", CONSENT + timedelta(days=200))

    assert verdict.severity == "OK"
    assert verdict.expires_at is None


def test_a_testing_token_without_a_consent_time_warns_that_its_age_is_unknown(google_token_file):
    verdict = _age_verdict(google_token_file, "testing", CONSENT, consented_at=None)

    assert verdict.severity == "WARN"
    assert "consent time is not recorded" in verdict.description


# ------------------------------------------------------------------------------------- Sheets calls


@pytest.fixture
def sheet(google_emulator, google_token_file):
    google_emulator.set_sheet(PORT_SHEET_ID, PORT_SHEET_TAB, [["id"], ["a"]])
    return google_emulator


def _sheets(attempts: int = 3):
    return GoogleCredentialsResource(retry_attempts=attempts, retry_base_delay_s=0.001).sheets()


@pytest.mark.parametrize("status", [503, 502])
def test_a_transient_sheets_error_is_retried_a_bounded_number_of_times_then_fails_clearly(sheet, status):
    session = _sheets(attempts=3)
    sheet.fail_sheets(status)

    with pytest.raises(CredentialsError) as caught:
        session.values_batch_get(PORT_SHEET_ID, [PORT_SHEET_TAB])

    assert caught.value.kind == "transient"
    assert f"HTTP {status}" in caught.value.description
    assert session.calls == sheet.calls["batch_get"] == 3


def test_a_429_that_clears_is_retried_into_a_result_after_waiting_out_the_minute(sheet, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(retry_module, "pause", waits.append)
    session = _sheets(attempts=3)
    sheet.fail_sheets(429, times=2)

    response = session.values_batch_get(PORT_SHEET_ID, [PORT_SHEET_TAB])

    assert response["valueRanges"][0]["values"] == [["id"], ["a"]]
    assert session.calls == 3
    # Google's quota is per minute: each 429 without Retry-After waits for the next window.
    assert len(waits) == 2 and all(60 <= wait <= 61 for wait in waits)


@pytest.mark.parametrize("status", [403, 404])
def test_no_access_to_the_sheet_fails_at_once_and_says_to_share_it(sheet, status):
    session = _sheets()
    sheet.fail_sheets(status)

    with pytest.raises(CredentialsError) as caught:
        session.metadata(PORT_SHEET_ID)

    assert caught.value.kind == "sheet_access"
    assert "share the sheet" in caught.value.description
    assert session.calls == 1


def test_an_unreachable_sheets_api_is_transient_and_names_the_address_and_the_variable_that_set_it(sheet):
    session = _sheets(attempts=2)
    sheet.stop()

    with pytest.raises(CredentialsError) as caught:
        session.values_batch_get(PORT_SHEET_ID, [PORT_SHEET_TAB])

    assert caught.value.kind == "transient"
    assert f"Sheets API at {sheet.base_url} could not be reached" in caught.value.description
    assert "That address comes from JADA_SHEETS_API_URL" in caught.value.description
    assert session.calls == 2


def test_an_expired_access_token_is_refreshed_once_and_the_call_goes_through(sheet):
    session = _sheets()
    sheet.expire_access_tokens()

    assert session.metadata(PORT_SHEET_ID)["sheets"][0]["properties"]["title"] == PORT_SHEET_TAB
    assert sheet.calls["token"] == 2


def test_a_token_revoked_mid_run_is_classified_not_retried(sheet):
    session = _sheets()
    sheet.expire_access_tokens()
    sheet.fail_token("invalid_grant")

    with pytest.raises(CredentialsError) as caught:
        session.metadata(PORT_SHEET_ID)

    assert caught.value.kind == "token_revoked"
    assert session.calls == 1


# ------------------------------------------------------------------------------------- service accounts


@pytest.fixture
def service_account_file(google_emulator, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    email = "port-sheet@emulated-project.iam.gserviceaccount.com"
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": email,
                "private_key": pem,
                "private_key_id": "emulated",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("JADA_GOOGLE_SERVICE_ACCOUNT_FILE", str(path))
    monkeypatch.setenv("JADA_GOOGLE_TOKEN_URI", google_emulator.token_uri)
    monkeypatch.setenv("JADA_SHEETS_API_URL", google_emulator.base_url)
    return email


def test_a_service_account_key_refreshes_through_the_jwt_grant(google_emulator, service_account_file):
    google_emulator.register_service_account(service_account_file)

    verdict = check_credentials(config=_config())

    assert (verdict.ok, verdict.metadata["credential_class"]) == (True, "service_account")


def test_an_unknown_service_account_is_told_to_create_a_new_key_not_to_re_consent(
    google_emulator, service_account_file
):
    verdict = check_credentials(config=_config())

    assert verdict.kind == "client_invalid"
    assert "new JSON key" in verdict.description


def test_a_structural_batch_update_is_not_retried_after_an_ambiguous_failure(sheet):
    session = _sheets(attempts=3)
    sheet.fail_sheets(503, kinds=["batch_update"])

    with pytest.raises(CredentialsError) as caught:
        session.batch_update(PORT_SHEET_ID, {"requests": []})

    assert caught.value.kind == "transient"
    assert session.calls == sheet.calls["batch_update"] == 1


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (503, b'{"error": "internal_failure", "error_description": "Backend Error"}', "transient"),
        (429, b'{"error": "rate_limit_exceeded"}', "transient"),
        (502, b"<html>502 Bad Gateway</html>", "transient"),
        (None, None, "transient"),
        (400, b'{"error": "invalid_grant", "error_subtype": "rapt_required"}', "reauth_required"),
        (401, b'{"error": "unauthorized_client"}', "client_invalid"),
        (400, b'{"error": "admin_policy_enforced"}', "reauth_required"),
    ],
)
def test_token_endpoint_answers_are_classified_on_status_and_error_code(status, body, kind):
    from jada_pipelines.google_api.credentials import classify_token_response

    assert classify_token_response(status, body).kind == kind
