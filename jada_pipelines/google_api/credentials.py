"""Google credentials: load, validate, refresh for real, and sort every failure into a class with its fix.

Plain Python (no Dagster). The retry policy lives in ``retry.py`` and the configuration in ``config.py``. The resource in ``resources.py`` and ``jada auth check`` both call
:func:`authorize` / :func:`check_credentials`, so the UI and the command line say the same thing;
:func:`stored_token_age` reads the token's age without a refresh (for the minute-by-minute metrics).
Failures are classified on the token endpoint's HTTP status and JSON error payload, never on message
text, which Google rewords.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from jada_pipelines import settings
from jada_pipelines.google_api.config import GoogleConfig
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.retry import TRANSIENT_STATUSES
from jada_pipelines.google_api.tokens import AUTH_COMMAND

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
# Scopes that allow reading and writing the sheet; the readonly scope is not enough for the status push.
WRITE_SCOPES = frozenset({SHEETS_SCOPE, "https://www.googleapis.com/auth/drive"})
AUTHORIZED_USER_FIELDS = ("client_id", "client_secret", "refresh_token")
SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key")
# Google: an app in "Testing" publishing status gets refresh tokens that expire 7 days after consent.
TESTING_TOKEN_LIFETIME = timedelta(days=7)
WARN_AT_FRACTION = 0.9


@dataclass(frozen=True)
class TokenAge:
    """How old the consent is and when the refresh token is predicted to stop working."""

    publishing_status: str | None
    consented_at: datetime | None
    now: datetime

    @property
    def age_days(self) -> float | None:
        if self.consented_at is None:
            return None
        return round((self.now - self.consented_at).total_seconds() / 86400, 2)

    @property
    def expires_at(self) -> datetime | None:
        if self.publishing_status != "testing" or self.consented_at is None:
            return None
        return self.consented_at + TESTING_TOKEN_LIFETIME

    @property
    def life_fraction(self) -> float | None:
        if self.expires_at is None:
            return None
        return (self.now - self.consented_at) / TESTING_TOKEN_LIFETIME

    def metadata(self) -> dict[str, Any]:
        return {
            "publishing_status": self.publishing_status or "unknown",
            "consented_at": self.consented_at.isoformat() if self.consented_at else "unknown",
            "token_age_days": self.age_days if self.age_days is not None else "unknown",
            "predicted_expiry": self._expiry_text(),
        }

    def _expiry_text(self) -> str:
        if self.expires_at is not None:
            return self.expires_at.isoformat()
        if self.publishing_status == "production":
            return "none (Production app)"
        return "unknown"


@dataclass(frozen=True)
class CredentialVerdict:
    """The outcome of a real refresh: OK, WARN (works, expires soon) or ERROR (does not work)."""

    ok: bool
    severity: Literal["OK", "WARN", "ERROR"]
    kind: str | None
    description: str
    token_age_days: float | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Authorized:
    """Refreshed credentials and the verdict on them."""

    credentials: Credentials
    verdict: CredentialVerdict
    config: GoogleConfig


def authorize(config: GoogleConfig | None = None, *, now: datetime | None = None) -> Authorized:
    """Load, validate and refresh the credentials; raises :class:`CredentialsError` with the fix."""
    config = config or GoogleConfig.from_env()
    now = now or datetime.now(UTC)
    try:
        store = config.store()
        info = store.load()
    except CredentialsError as error:
        # The token could not be read, so its age is unknown; say so rather than leave the fields out.
        error.metadata = {**TokenAge(None, None, now).metadata(), **error.metadata}
        raise
    age = _token_age(info, now)
    credential_class = "service_account" if info.get("type") == "service_account" else "authorized_user"
    metadata = {"source": store.describe(), "credential_class": credential_class, **age.metadata()}
    if credential_class == "service_account":
        metadata.update(publishing_status="n/a", predicted_expiry="none (service-account keys do not expire)")
    try:
        credentials = _build(info, config, store.describe())
        _check_requested_scopes(info, store.describe())
        config.retry.call(lambda: _refresh(credentials, config))
        _check_granted_scopes(credentials, store.describe())
    except CredentialsError as error:
        raise _explained(error, credential_class, age, store.describe(), metadata) from None
    return Authorized(credentials, _verdict(age, metadata), config)


def _explained(
    error: CredentialsError, credential_class: str, age: TokenAge, source: str, metadata: dict[str, Any]
) -> CredentialsError:
    """``error`` with the token's age in its metadata, and what the age and the credential class add to it."""
    if credential_class == "service_account" and error.kind in ("token_revoked", "reauth_required"):
        error = _service_account_refused(source)
    error.metadata = {**metadata, **error.metadata}
    error.token_age_days, error.expires_at = age.age_days, age.expires_at
    if error.kind == "token_revoked" and age.life_fraction is not None and age.life_fraction >= 1:
        error.description += f" This was predicted: the token passed its 7-day Testing life at {age.expires_at:%Y-%m-%d %H:%M} UTC."
    return error


def check_credentials(
    *, now: datetime | None = None, config: GoogleConfig | None = None
) -> CredentialVerdict:
    """The same classification as the resource, as a verdict instead of an exception (for `jada auth check`)."""
    try:
        return authorize(config, now=now).verdict
    except CredentialsError as error:
        return CredentialVerdict(
            ok=False,
            severity="ERROR",
            kind=error.kind,
            description=error.description,
            token_age_days=error.token_age_days,
            expires_at=error.expires_at,
            metadata=error.metadata,
        )


def stored_token_age(config: GoogleConfig | None = None, *, now: datetime | None = None) -> TokenAge:
    """The age of the configured token, read from its store without asking Google for anything.

    No refresh, so it says nothing about whether the token still works (:func:`check_credentials` does).
    Raises :class:`CredentialsError` when no source is configured or the store cannot be read.
    """
    config = config or GoogleConfig.from_env()
    return _token_age(config.store().load(), now or datetime.now(UTC))


def _verdict(age: TokenAge, metadata: dict[str, Any]) -> CredentialVerdict:
    fraction = age.life_fraction
    common = {"token_age_days": age.age_days, "expires_at": age.expires_at, "metadata": metadata}
    if fraction is not None and fraction >= WARN_AT_FRACTION:
        left = age.expires_at - age.now
        when = f"{age.expires_at:%Y-%m-%d %H:%M} UTC"
        timing = (
            f"expired at {when}" if left.total_seconds() <= 0 else f"expires at {when} (in {_hours(left)})"
        )
        return CredentialVerdict(
            ok=True,
            severity="WARN",
            kind="token_expiring",
            description=f"The Google refresh token still works but {timing}: the OAuth app is in Testing, "
            f"so Google ends its tokens 7 days after consent. Re-consent now with `{AUTH_COMMAND}`, or publish "
            "the app to Production and then re-consent, so tokens stop expiring weekly.",
            **common,
        )
    if age.publishing_status == "testing" and age.consented_at is None:
        return CredentialVerdict(
            ok=True,
            severity="WARN",
            kind="token_age_unknown",
            description="The Google token works, but its consent time is not recorded, so its 7-day Testing "
            f"expiry cannot be predicted. Re-consent with `{AUTH_COMMAND}` to record it.",
            **common,
        )
    return CredentialVerdict(
        ok=True, severity="OK", kind=None, description="The Google credentials refreshed.", **common
    )


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _token_age(info: dict[str, Any], now: datetime) -> TokenAge:
    status = info.get("publishing_status")
    return TokenAge(
        publishing_status=status if status in ("testing", "production") else None,
        consented_at=_parse_time(info.get("consented_at")),
        now=now,
    )


def _build(info: dict[str, Any], config: GoogleConfig, source: str) -> Credentials:
    if "installed" in info or "web" in info:
        raise CredentialsError(
            "wrong_file_type",
            f"{source} is an OAuth client-secrets file, not a token. Keep that file as the input of "
            f"`{AUTH_COMMAND}`, which creates the token, and point JADA_GOOGLE_TOKEN_FILE at the token it writes.",
        )
    if info.get("type") == "service_account":
        return _service_account(info, config, source)
    if info.get("type") not in (None, "authorized_user"):
        raise CredentialsError(
            "wrong_file_type",
            f"{source} holds Google credentials of type {str(info.get('type'))[:40]!r}; expected an "
            f"authorized-user token (create it with `{AUTH_COMMAND}`) or a service-account key.",
        )
    _require_fields(info, AUTHORIZED_USER_FIELDS, source)
    from google.oauth2.credentials import Credentials as UserCredentials

    # Built directly: from_authorized_user_info would force Google's token URI and ignore JADA_GOOGLE_TOKEN_URI.
    credentials = UserCredentials(
        token=None,
        refresh_token=info["refresh_token"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token_uri=config.token_uri,
        scopes=_scopes(info, source) or [SHEETS_SCOPE],
    )
    return credentials


def _service_account(info: dict[str, Any], config: GoogleConfig, source: str) -> Credentials:
    _require_fields(info, SERVICE_ACCOUNT_FIELDS, source)
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_info(
            {**info, "token_uri": config.token_uri}, scopes=[SHEETS_SCOPE]
        )
    except ValueError:
        raise CredentialsError(
            "missing_fields",
            f"The service-account key in {source} has a private_key that cannot be loaded. Download a new "
            "JSON key for the service account in the Google Cloud console (IAM > Service accounts > Keys).",
        ) from None


def _service_account_refused(source: str) -> CredentialsError:
    # invalid_grant means something else for a service account: there is no consent to renew.
    return CredentialsError(
        "client_invalid",
        f"Google refused the service-account key in {source} (invalid_grant): the key was deleted or the account "
        "disabled. Create a new JSON key for the service account (Google Cloud console > IAM > Service accounts "
        "> Keys) and point JADA_GOOGLE_SERVICE_ACCOUNT_FILE at it.",
    )


def _require_fields(info: dict[str, Any], fields: tuple[str, ...], source: str) -> None:
    # google-auth only checks that the keys exist; an empty or null value fails later and less clearly.
    missing = [name for name in fields if not isinstance(info.get(name), str) or not info[name].strip()]
    if missing:
        raise CredentialsError(
            "missing_fields",
            f"The Google token in {source} is missing or has empty fields: {', '.join(missing)}. "
            f"Re-create it with `{AUTH_COMMAND}`.",
            {"missing_fields": ", ".join(missing)},
        )


def _scopes(info: dict[str, Any], source: str) -> list[str]:
    scopes = info.get("scopes") or []
    if isinstance(scopes, str):
        return scopes.split()
    if not isinstance(scopes, list):
        # A hand-edited file; iterating a number would end the run in a bare TypeError.
        raise CredentialsError(
            "malformed_json",
            f"The Google token in {source} has a 'scopes' field that is a JSON {type(scopes).__name__}, not a "
            f"list of scope URLs. Re-create it with `{AUTH_COMMAND}`.",
        )
    return [str(s) for s in scopes]


def _scope_error(source: str, scopes: list[str], which: str) -> CredentialsError:
    return CredentialsError(
        "scope_not_granted",
        f"The Google token in {source} was {which} without the Sheets scope {SHEETS_SCOPE} "
        f"(it has: {', '.join(scopes) or 'none'}). Re-consent with `{AUTH_COMMAND}` and tick the Google Sheets "
        "permission on the consent page.",
        {"scopes": ", ".join(scopes) or "none"},
    )


def _check_requested_scopes(info: dict[str, Any], source: str) -> None:
    scopes = _scopes(info, source)
    if scopes and not WRITE_SCOPES & set(scopes):
        raise _scope_error(source, scopes, "requested")


def _check_granted_scopes(credentials: Credentials, source: str) -> None:
    # google-auth's has_scopes() looks at the requested scopes; what counts is what Google granted.
    granted = list(getattr(credentials, "granted_scopes", None) or [])
    if granted and not WRITE_SCOPES & set(granted):
        raise _scope_error(source, granted, "granted")


# ---------------------------------------------------------------------------------------------- refresh


class RecordingRequest:
    """google-auth's HTTP transport, remembering the token endpoint's last status and body.

    google-auth drops the payload for some failures (reauth) and keeps no status at all, so the
    classification reads what the endpoint actually answered.
    """

    def __init__(self, timeout: tuple[float, float]):
        import requests
        from google.auth.transport.requests import Request

        self._session = requests.Session()
        self._inner = Request(self._session)
        self._timeout = timeout
        self.status: int | None = None
        self.body: bytes | None = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kw: Any,
    ):
        self.status = self.body = None
        response = self._inner(url, method=method, body=body, headers=headers, timeout=self._timeout, **kw)
        self.status = response.status
        # Only an error body is kept: a successful answer holds a fresh access token.
        self.body = None if response.status == 200 else response.data
        return response

    def close(self) -> None:
        self._session.close()


def _refresh(credentials: Credentials, config: GoogleConfig) -> None:
    from google.auth import exceptions

    request = RecordingRequest(config.timeout)
    try:
        credentials.refresh(request)
    except (exceptions.RefreshError, exceptions.TransportError):
        raise classify_token_response(request.status, request.body, endpoint=config.token_uri) from None
    finally:
        request.close()


def classify_token_response(
    status: int | None, body: bytes | None, *, endpoint: str | None = None
) -> CredentialsError:
    """The failure class of a token-endpoint answer (``status`` None: no answer, a network failure).

    ``endpoint`` (the token URI, never a secret) is named when there was no answer, with the variable that
    set it if it is not Google's: a stale ``JADA_GOOGLE_TOKEN_URI`` looks just like a network outage.
    """
    payload = _json_object(body)
    error = payload.get("error")
    if status is None:
        return transient_error(
            f"The Google token endpoint{f' {endpoint}' if endpoint else ''} could not be reached "
            "(connection failed or timed out)."
            + endpoint_hint(endpoint, settings.DEFAULT_GOOGLE_TOKEN_URI, "JADA_GOOGLE_TOKEN_URI")
        )
    if error == "invalid_grant" and payload.get("error_subtype") in ("invalid_rapt", "rapt_required"):
        return CredentialsError(
            "reauth_required",
            "Google requires the user to sign in again (session-control reauthentication, "
            f"error_subtype={payload['error_subtype']}); a Workspace admin policy limits session length. "
            f"Re-consent with `{AUTH_COMMAND}`; for unattended use prefer a service account "
            "(JADA_GOOGLE_SERVICE_ACCOUNT_FILE), which this policy does not apply to.",
            {"http_status": status, "oauth_error": error},
        )
    if error == "invalid_grant":
        return CredentialsError(
            "token_revoked",
            "Google refused the refresh token (invalid_grant): it was revoked or has expired. Tokens of an "
            "OAuth app in Testing expire 7 days after consent; access can also be removed by the user, after "
            "6 months unused, or when more than 100 tokens exist for the client. "
            f"Re-consent with `{AUTH_COMMAND}` (publish the app to Production first to stop weekly expiry).",
            {"http_status": status, "oauth_error": error},
        )
    if error == "invalid_scope":
        return CredentialsError(
            "scope_not_granted",
            f"Google refused the requested scope (invalid_scope): the token was never granted {SHEETS_SCOPE}. "
            f"Re-consent with `{AUTH_COMMAND}` and tick the Google Sheets permission.",
            {"http_status": status, "oauth_error": error},
        )
    if error in ("invalid_client", "unauthorized_client", "deleted_client"):
        return CredentialsError(
            "client_invalid",
            f"Google rejected the OAuth client ({error}): it was deleted, or its secret was rotated. Download "
            "the client-secrets JSON of a valid OAuth client (Google Cloud console > APIs & Services > "
            f"Credentials) and re-consent with `{AUTH_COMMAND}`.",
            {"http_status": status, "oauth_error": error},
        )
    if status in TRANSIENT_STATUSES or error in (
        "internal_failure",
        "server_error",
        "temporarily_unavailable",
    ):
        return transient_error(
            f"The Google token endpoint answered HTTP {status}; Google is unavailable or rate-limiting.",
            status,
        )
    return CredentialsError(
        "reauth_required",
        f"Google refused to refresh the token (HTTP {status}, error={str(error or 'none')[:60]}). "
        f"Re-consent with `{AUTH_COMMAND}`; if it keeps failing, check the OAuth app in the Google Cloud console.",
        {"http_status": status, "oauth_error": str(error or "none")[:60]},
    )


def endpoint_hint(endpoint: str | None, default: str, variable: str) -> str:
    """For an endpoint that did not answer: which variable pointed there, when it is not Google's own."""
    if endpoint is None or endpoint.rstrip("/") == default.rstrip("/"):
        return ""
    return f" That address comes from {variable}: check it, or unset it to use {default}."


def transient_error(what: str, status: int | None = None) -> CredentialsError:
    return CredentialsError(
        "transient",
        f"{what} This is usually temporary (see attempts in the metadata); the next scheduled run will try again. "
        "If it persists, check the network and https://www.google.com/appsstatus.",
        {"http_status": status if status is not None else "no response"},
    )


def _json_object(body: bytes | None) -> dict[str, Any]:
    import json

    try:
        payload = json.loads(body or b"")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
