"""Re-consent to Google with the local-server flow and store the new token with its consent time.

Google's out-of-band (copy-the-code) flow is gone; the local-server flow needs a browser that can reach
``http://localhost:PORT``. On a headless server, use a fixed port and an SSH tunnel from your workstation
(the command is printed), then open the printed URL in your own browser.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jada_pipelines.google_api.credentials import AUTHORIZED_USER_FIELDS, SHEETS_SCOPE, WRITE_SCOPES
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.tokens import parse_token_json

DEFAULT_PORT = 8085
CLIENT_FIELDS = ("client_id", "client_secret", "auth_uri", "token_uri")


class ConsentError(Exception):
    """The consent did not complete; ``description`` says why and what to do."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


def load_client_config(path: Path) -> dict[str, Any]:
    """The OAuth client-secrets file (Google Cloud console > Credentials > OAuth client > Download JSON)."""
    try:
        data = parse_token_json(path.read_text(encoding="utf-8"), str(path))
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise CredentialsError(
            "missing_file",
            f"The OAuth client-secrets file {path} cannot be read. Download it from the Google Cloud console "
            "(APIs & Services > Credentials > your Desktop OAuth client > Download JSON).",
        ) from None
    kind = "installed" if "installed" in data else "web" if "web" in data else None
    if kind is None:
        raise CredentialsError(
            "wrong_file_type",
            f"{path} is not an OAuth client-secrets file (no 'installed' or 'web' section); a token file is the "
            "output of this command, not its input. Download the Desktop OAuth client's JSON from the Google "
            "Cloud console (APIs & Services > Credentials).",
        )
    missing = [name for name in CLIENT_FIELDS if not data[kind].get(name)]
    if missing:
        raise CredentialsError(
            "missing_fields",
            f"The OAuth client-secrets file {path} lacks {', '.join(missing)}. Download it again from the "
            "Google Cloud console.",
        )
    return data


def tunnel_hint(port: int) -> str:
    return (
        f"On a headless server, first run on your workstation: ssh -N -L {port}:localhost:{port} USER@SERVER\n"
        "then open the URL below in your workstation's browser."
    )


def consent(
    client_config: dict[str, Any],
    *,
    publishing_status: str,
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    token_uri: str | None = None,
    timeout_seconds: float | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Run the local-server flow on ``port`` and return the validated token record (not yet stored)."""
    from google_auth_oauthlib.flow import InstalledAppFlow, WSGITimeoutError
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    kind = "installed" if "installed" in client_config else "web"
    if token_uri:
        client_config = {kind: {**client_config[kind], "token_uri": token_uri}}
    _allow_plain_http_on_loopback(client_config[kind]["token_uri"])
    # With granular consent a person can untick the Sheets box. oauthlib would then raise a bare "Scope has
    # changed" warning; relaxing it lets validate_new_token refuse the token with the fix instead.
    os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"
    flow = InstalledAppFlow.from_client_config(client_config, scopes=[SHEETS_SCOPE])
    try:
        credentials = _run_local_server(flow, port, open_browser, timeout_seconds)
    except WSGITimeoutError:
        raise ConsentError(
            f"No answer reached http://localhost:{port} within {timeout_seconds:g} s. Open the printed URL in a "
            "browser that can reach that port (over the SSH tunnel on a headless server) and approve, then "
            "run the command again."
        ) from None
    except OAuth2Error as error:
        raise ConsentError(_consent_refusal(error.error)) from None
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        # The local server refuses SO_REUSEADDR (google-auth-oauthlib's exclusive bind), so a consent that
        # ended less than a minute ago still holds the port in TIME_WAIT.
        raise ConsentError(
            f"Port {port} is in use (by another program, or by a consent that ended less than a minute ago), so "
            "Google's redirect cannot reach this command: wait a minute, or pass --port with a free port (and "
            "tunnel that port on a headless server)."
        ) from None
    token = {
        "type": "authorized_user",
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "refresh_token": credentials.refresh_token,
        "token_uri": credentials.token_uri,
        "scopes": _granted(credentials),
        # google-auth keeps no record of consent; the 7-day Testing expiry counts from it.
        "consented_at": now().isoformat(),
        "publishing_status": publishing_status,
    }
    validate_new_token(token)
    return token


def validate_new_token(token: dict[str, Any]) -> None:
    """Refuse to store a token that would fail on its first use."""
    missing = [name for name in AUTHORIZED_USER_FIELDS if not token.get(name)]
    if missing:
        raise CredentialsError(
            "missing_fields",
            f"Google's answer lacks {', '.join(missing)}, so the token cannot be stored. Remove jada-pipelines "
            "from https://myaccount.google.com/permissions and run the consent again.",
        )
    if not WRITE_SCOPES & set(token["scopes"]):
        raise CredentialsError(
            "scope_not_granted",
            f"The consent did not grant the Google Sheets scope {SHEETS_SCOPE} (granted: "
            f"{', '.join(token['scopes']) or 'none'}). Run the consent again and tick the Google Sheets permission.",
        )


def _run_local_server(flow: Any, port: int, open_browser: bool, timeout_seconds: float | None) -> Any:
    return flow.run_local_server(
        host="localhost",
        port=port,
        open_browser=open_browser,
        timeout_seconds=timeout_seconds,
        authorization_prompt_message=tunnel_hint(port)
        + "\nPlease visit this URL to authorize jada-pipelines: {url}",
        success_message="jada-pipelines is authorized; you may close this window.",
        # offline + consent: Google returns a refresh token even if this account consented before.
        access_type="offline",
        prompt="consent",
    )


def _consent_refusal(code: str | None) -> str:
    """What an OAuth error code from the consent or the code exchange means for the person at the keyboard."""
    if code == "access_denied":
        return "The consent was declined in the browser. Run the command again and choose Allow."
    if code in ("invalid_client", "unauthorized_client", "deleted_client"):
        return (
            f"Google rejected the OAuth client ({code}): it was deleted or its secret rotated. Download a valid "
            "Desktop client's JSON from the Google Cloud console (APIs & Services > Credentials) and pass it "
            "with --client-secrets."
        )
    return (
        f"Google refused the consent ({code or 'no error code'}); the code may have expired. Run the command "
        "again and finish the consent within a few minutes."
    )


def _granted(credentials: Any) -> list[str]:
    granted = getattr(credentials, "granted_scopes", None) or credentials.scopes or []
    return granted.split() if isinstance(granted, str) else list(granted)


def _allow_plain_http_on_loopback(token_uri: str) -> None:
    # oauthlib refuses http:// token endpoints; the local emulator (tests, `make demo`) is plain http on
    # loopback, and only there is the exception made.
    if urlsplit(token_uri).scheme == "http" and urlsplit(token_uri).hostname in ("127.0.0.1", "localhost"):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
