"""`jada auth google` re-consents through the real local-server flow and stores a checked 0600 token;
`jada auth check` reports the resource's verdict and exits non-zero with the same message on failure."""

from __future__ import annotations

import json
import re
import socket
import stat
import threading
import time
import urllib.request

import pytest

from jada_pipelines.cli import main
from jada_pipelines.emulators.google import SHEETS_READONLY_SCOPE, SHEETS_SCOPE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def client_secrets(google_emulator, tmp_path, monkeypatch):
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps(google_emulator.client_config()))
    monkeypatch.setenv("JADA_GOOGLE_TOKEN_URI", google_emulator.token_uri)
    # The flow sets these oauthlib switches for the loopback emulator; let monkeypatch undo them afterwards.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "0")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "0")
    return path


def _auth_google(client_secrets, status: str, *extra: str, port: int | None = None) -> list[str]:
    """`jada auth google` argv for a headless consent on a free fixed port, plus ``extra`` options."""
    port = port or _free_port()
    return [
        "auth",
        "google",
        "--client-secrets",
        str(client_secrets),
        status,
        "--no-browser",
        "--port",
        str(port),
        *extra,
    ]


def _consent(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run `jada auth google` in a thread and play the browser: open the printed URL, follow the redirect."""
    result: dict[str, int] = {}
    worker = threading.Thread(target=lambda: result.setdefault("code", main(argv)), daemon=True)
    worker.start()
    printed = []

    def consent_url() -> str | None:
        printed.append(capsys.readouterr().out)
        match = re.search(r"(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)", "".join(printed))
        return match and match.group(1)

    url = _wait_for(consent_url, "the consent URL")
    # The emulator's consent page approves at once and redirects to the local server with a code.
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
    worker.join(timeout=10)
    assert not worker.is_alive(), "the consent flow did not finish"
    rest = capsys.readouterr()
    return result["code"], "".join(printed) + rest.out, rest.err


def test_consent_stores_a_0600_token_with_consent_time_and_publishing_status(
    google_emulator, client_secrets, tmp_path, capsys
):
    token_path = tmp_path / "out" / "token.json"
    port = _free_port()
    code, out, _ = _consent(
        capsys,
        _auth_google(client_secrets, "--testing", "--output", str(token_path), port=port),
    )

    assert code == 0
    assert f"ssh -N -L {port}:localhost:{port}" in out
    token = json.loads(token_path.read_text())
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert token["publishing_status"] == "testing"
    assert token["consented_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    assert token["scopes"] == [SHEETS_SCOPE]
    assert token["refresh_token"] and token["client_id"] == google_emulator.client_id
    assert google_emulator.calls["token"] == 1


def test_consent_that_does_not_grant_the_sheets_scope_is_refused_and_nothing_is_written(
    google_emulator, client_secrets, tmp_path, capsys
):
    google_emulator.grant_only([SHEETS_READONLY_SCOPE])
    token_path = tmp_path / "token.json"
    code, _, err = _consent(
        capsys,
        _auth_google(client_secrets, "--production", "--output", str(token_path)),
    )

    assert code == 1
    assert "did not grant the Google Sheets scope" in err
    assert not token_path.exists()


def test_consent_can_store_the_token_in_secrets_manager(aws, google_emulator, client_secrets, capsys):
    from jada_pipelines.google_api.secrets_manager import read_token

    code, out, _ = _consent(
        capsys,
        _auth_google(
            client_secrets, "--production", "--store", "secretsmanager", "--secret-id", "jada/google-token"
        ),
    )

    assert code == 0
    assert "JADA_GOOGLE_TOKEN_SECRET_ID=jada/google-token" in out
    token = read_token("jada/google-token")
    assert (token["publishing_status"], token["client_id"]) == ("production", google_emulator.client_id)


@pytest.mark.parametrize("field", ["client_id", "client_secret", "refresh_token"])
def test_a_new_token_without_a_client_id_client_secret_or_refresh_token_is_refused(field):
    from jada_pipelines.google_api.errors import CredentialsError
    from jada_pipelines.google_api.oauth import validate_new_token

    token = {"client_id": "c", "client_secret": "s", "refresh_token": "r", "scopes": [SHEETS_SCOPE]}
    validate_new_token(token)  # complete: accepted

    with pytest.raises(CredentialsError) as caught:
        validate_new_token({**token, field: None})

    assert caught.value.kind == "missing_fields"
    assert f"lacks {field}" in caught.value.description
    assert "myaccount.google.com/permissions" in caught.value.description


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("declined", "The consent was declined in the browser"),
        ("deleted_client", "Google rejected the OAuth client (deleted_client)"),
    ],
)
def test_a_declined_consent_or_a_deleted_client_exits_with_the_fix(
    google_emulator, client_secrets, tmp_path, capsys, fault, message
):
    if fault == "declined":
        google_emulator.decline_consent()
    else:
        google_emulator.fail_token(fault)
    token_path = tmp_path / "token.json"

    code, _, err = _consent(
        capsys,
        _auth_google(client_secrets, "--testing", "--output", str(token_path)),
    )

    assert code == 1
    assert message in err
    assert not token_path.exists()


def test_an_output_path_that_is_a_directory_is_refused_before_the_consent(
    google_emulator, client_secrets, tmp_path, capsys
):
    code = main(
        ["auth", "google", "--client-secrets", str(client_secrets), "--testing", "--output", str(tmp_path)]
    )

    assert code == 2
    assert f"{tmp_path} is a directory: pass --output" in capsys.readouterr().err
    assert google_emulator.calls["token"] == 0


def test_a_token_that_cannot_be_written_after_the_consent_exits_with_the_fix_not_a_traceback(
    google_emulator, client_secrets, tmp_path, capsys
):
    (tmp_path / "not-a-folder").write_text("")
    code, _, err = _consent(
        capsys,
        _auth_google(client_secrets, "--testing", "--output", str(tmp_path / "not-a-folder" / "token.json")),
    )

    assert code == 1
    assert "the consent succeeded, but the token could not be stored in JADA_GOOGLE_TOKEN_FILE=" in err
    assert "fix the destination and run the command again" in err
    assert google_emulator.client_secret not in err


def test_a_consent_nobody_answers_times_out_with_the_fix(client_secrets, tmp_path, capsys):
    code = main(
        _auth_google(client_secrets, "--testing", "--timeout", "0.2", "--output", str(tmp_path / "t.json"))
    )

    assert code == 1
    assert "No answer reached http://localhost:" in capsys.readouterr().err


def test_a_token_file_given_as_client_secrets_is_refused_with_the_fix(google_token_file, tmp_path, capsys):
    code = main(
        [
            "auth",
            "google",
            "--client-secrets",
            str(google_token_file),
            "--testing",
            "--output",
            str(tmp_path / "t.json"),
        ]
    )

    assert code == 1
    assert "not an OAuth client-secrets file" in capsys.readouterr().err


def test_auth_check_passes_on_a_good_token(google_token_file, capsys):
    assert main(["auth", "check"]) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_auth_check_fails_with_the_class_and_the_fix_on_a_revoked_token(
    google_emulator, google_token_file, capsys
):
    google_emulator.fail_token("invalid_grant")

    assert main(["auth", "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR [token_revoked]:")
    assert "jada auth google" in err


def test_auth_check_names_the_variables_when_nothing_is_configured(capsys):
    assert main(["auth", "check"]) == 1
    assert "JADA_GOOGLE_TOKEN_FILE" in capsys.readouterr().err


def test_a_consent_port_in_use_is_one_sentence_naming_it_not_a_traceback(client_secrets, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = main(
            _auth_google(client_secrets, "--testing", "--output", str(tmp_path / "t.json"), port=port)
        )

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"jada auth google: Port {port} is in use") and "--port" in err
    assert "Traceback" not in err and not (tmp_path / "t.json").exists()
