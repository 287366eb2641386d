"""One gspread client on refreshed credentials, pointed at ``JADA_SHEETS_API_URL``, with timeouts and a bounded retry.

Only the low-level Sheets calls the port sheet needs are exposed, each counted in ``calls`` so an asset
can report its Google API budget. Every failure comes out as a classified :class:`CredentialsError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jada_pipelines import settings
from jada_pipelines.google_api.config import GoogleConfig
from jada_pipelines.google_api.credentials import (
    CredentialVerdict,
    RecordingRequest,
    classify_token_response,
    endpoint_hint,
    transient_error,
)
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.retry import TRANSIENT_STATUSES, QuotaBudget
from jada_pipelines.google_api.tokens import AUTH_COMMAND

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from google.auth.credentials import Credentials


class SheetsSession:
    """Sheets API v4 calls through gspread's HTTP client, on credentials that have just been refreshed."""

    def __init__(self, credentials: Credentials, config: GoogleConfig, verdict: CredentialVerdict):
        import gspread
        from google.auth.transport.requests import AuthorizedSession

        self.verdict = verdict
        self.calls = 0
        self._retry = config.retry
        self._quota = QuotaBudget(config.retry.quota_wait_s)
        self._token_uri, self._sheets_api_url = config.token_uri, config.sheets_api_url
        # A 401 mid-run makes the session refresh again; record that answer too, so it is classified.
        self._token_request = RecordingRequest(config.timeout)
        session = AuthorizedSession(credentials, auth_request=self._token_request)
        # Google compresses an answer only when asked twice: "Set an Accept-Encoding header, and modify your user
        # agent to contain the string gzip" (Sheets API "Improve performance", developers.google.com/sheets/api/
        # guides/performance#gzip). The write's answer echoes whole columns: megabytes at 100,000 rows.
        session.headers["User-Agent"] = user_agent()
        session.headers["Accept-Encoding"] = "gzip"
        if config.sheets_api_url.rstrip("/") != settings.DEFAULT_SHEETS_API_URL:
            # gspread builds its URLs from module constants; an adapter redirects them without patching gspread.
            session.mount(settings.DEFAULT_SHEETS_API_URL + "/", _redirect_adapter(config.sheets_api_url))
        self._client = gspread.Client(auth=None, session=session)
        self._client.set_timeout(config.timeout)
        self._library_errors = _library_errors()

    def metadata(self, spreadsheet_id: str) -> dict[str, Any]:
        """Spreadsheet properties and each tab's properties (no cell data)."""
        params = {"includeGridData": "false", "fields": "spreadsheetId,properties,sheets.properties"}
        return self._call(
            lambda http: http.fetch_sheet_metadata(spreadsheet_id, params=params), spreadsheet_id
        )

    def values_batch_get(
        self,
        spreadsheet_id: str,
        ranges: Sequence[str],
        *,
        value_render_option: str = "UNFORMATTED_VALUE",
        date_time_render_option: str | None = None,
    ) -> dict[str, Any]:
        """``values:batchGet``: every range in one call."""
        params = {"valueRenderOption": value_render_option}
        if date_time_render_option is not None:
            params["dateTimeRenderOption"] = date_time_render_option
        return self._call(
            lambda http: http.values_batch_get(spreadsheet_id, list(ranges), params=dict(params)),
            spreadsheet_id,
        )

    def values_batch_update(self, spreadsheet_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``values:batchUpdate`` with ``body`` as given (its ``valueInputOption`` decides RAW or USER_ENTERED)."""
        return self._call(lambda http: http.values_batch_update(spreadsheet_id, body), spreadsheet_id)

    def values_batch_get_by_data_filter(self, spreadsheet_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``values:batchGetByDataFilter``: ranges found by Google when it serves the read (a read: retried)."""
        url = f"{_VALUES_URL % spreadsheet_id}:batchGetByDataFilter"
        return self._call(lambda http: http.request("post", url, json=body).json(), spreadsheet_id)

    def search_developer_metadata(self, spreadsheet_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``developerMetadata:search``: every metadata entry the body's filters select, with its id and
        location (a read: retried)."""
        url = f"{settings.DEFAULT_SHEETS_API_URL}/v4/spreadsheets/{spreadsheet_id}/developerMetadata:search"
        return self._call(lambda http: http.request("post", url, json=body).json(), spreadsheet_id)

    def values_batch_update_by_data_filter(self, spreadsheet_id: str, body: bytes) -> dict[str, Any]:
        """``values:batchUpdateByDataFilter`` with ``body`` already serialised (compact JSON).

        Never retried here: a write planned from a read must not be re-sent after the sheet may have
        changed; the caller re-reads and re-plans instead.
        """
        url = f"{_VALUES_URL % spreadsheet_id}:batchUpdateByDataFilter"
        headers = {"Content-Type": "application/json"}
        return self._call(
            lambda http: http.request("post", url, data=body, headers=headers).json(),
            spreadsheet_id,
            retry=False,
        )

    def batch_update(self, spreadsheet_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``spreadsheets:batchUpdate``: structural and cell requests, applied atomically by Google.

        Not retried: after a 5xx or a dropped connection the batch may have been applied, and inserting
        or deleting rows twice is not harmless. The caller re-reads and re-plans instead.
        """
        return self._call(lambda http: http.batch_update(spreadsheet_id, body), spreadsheet_id, retry=False)

    def close(self) -> None:
        self._client.http_client.session.close()
        self._token_request.close()

    def wait_before_replanning(self, error: CredentialsError, failures: int) -> None:
        """After a write that was not re-sent failed: wait as a retry would (a quota as Google asks, within
        this session's quota budget; an outage with backoff), or raise when the run must stop."""
        if error.kind == "quota":
            self._retry.sleep(self._quota.take(error, self._retry.quota_delay(error)))
            return
        if not error.retryable or failures + 1 >= self._retry.attempts:
            raise error
        self._retry.sleep(self._retry.delay(failures))

    @property
    def quota_waited_s(self) -> float:
        return self._quota.waited_s

    def _call(self, fn: Callable[[Any], Any], spreadsheet_id: str, *, retry: bool = True) -> Any:
        def attempt() -> Any:
            try:
                return fn(self._client.http_client)
            except self._library_errors as exc:
                error = self._classify(exc, spreadsheet_id)
                error.metadata = {**self.verdict.metadata, **error.metadata}
                raise error from None

        if not retry:
            self._count()
            return attempt()
        return self._retry.call(attempt, on_attempt=self._count, quota=self._quota)

    def _count(self) -> None:
        self.calls += 1

    def _classify(self, exc: Exception, spreadsheet_id: str) -> CredentialsError:
        from google.auth.exceptions import GoogleAuthError
        from gspread.exceptions import APIError

        if isinstance(exc, APIError):
            # gspread reports code -1 for a non-JSON body (an HTML 502), so take the status from the response.
            error = classify_api_error(exc.response.status_code, exc.error, spreadsheet_id)
            if error.kind == "quota":
                error.retry_after_s = _retry_after(exc.response.headers.get("Retry-After"))
            return error
        if isinstance(exc, GoogleAuthError):
            return classify_token_response(
                self._token_request.status, self._token_request.body, endpoint=self._token_uri
            )
        return transient_error(
            f"The Google Sheets API at {self._sheets_api_url} could not be reached (connection failed or timed "
            "out)."
            + endpoint_hint(self._sheets_api_url, settings.DEFAULT_SHEETS_API_URL, "JADA_SHEETS_API_URL")
        )


_VALUES_URL = settings.DEFAULT_SHEETS_API_URL + "/v4/spreadsheets/%s/values"


def user_agent() -> str:
    """``jada-pipelines/<version> (gzip)``: the ``gzip`` in it is what makes Google compress its answers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("jada-pipelines")
    except PackageNotFoundError:  # run from a checkout that was never installed
        release = "0"
    return f"jada-pipelines/{release} (gzip)"


def _library_errors() -> tuple[type[Exception], ...]:
    """What gspread, google-auth and requests raise for a failed call; anything else is a bug and propagates."""
    import requests
    from google.auth.exceptions import RefreshError, TransportError
    from gspread.exceptions import APIError

    return (APIError, RefreshError, TransportError, requests.ConnectionError, requests.Timeout)


def classify_api_error(status: int, error: Any, spreadsheet_id: str) -> CredentialsError:
    """The failure class of a Sheets API error (``error`` is Google's ``{"code", "message", "status"}``)."""
    # gspread fills ``error`` with a made-up body (code -1) when Google's answer was not JSON.
    error = (
        error if isinstance(error, dict) and error.get("code") == status else {"status": "no JSON error body"}
    )
    if status == 429:
        return CredentialsError(
            "quota",
            "The Google Sheets API answered HTTP 429 (RESOURCE_EXHAUSTED): a per-minute quota is used up. "
            "The call is waited out and tried again within the run.",
            {"http_status": status, "api_status": str(error.get("status", ""))},
        )
    if status in TRANSIENT_STATUSES:
        return transient_error(
            f"The Google Sheets API answered HTTP {status} ({error.get('status')}).", status
        )
    kind, description = _api_failure(status, error, spreadsheet_id)
    return CredentialsError(
        kind, description, {"http_status": status, "api_status": str(error.get("status", ""))}
    )


def _api_failure(status: int, error: dict[str, Any], spreadsheet_id: str) -> tuple[str, str]:
    details = [d for d in error.get("details", []) if isinstance(d, dict)]
    reasons = {d.get("reason") for d in details}
    answer = f"HTTP {status} {error.get('status', '')}".strip()
    if status == 403 and "SERVICE_DISABLED" in reasons:
        project, link = _activation(details)
        return "service_disabled", (
            f"The Google Sheets API is not enabled in Cloud project {project}, the project of the OAuth client "
            f"(or service account) the token comes from ({answer}, SERVICE_DISABLED). Enable it at {link} "
            "(APIs & Services > Library > Google Sheets API > Enable), wait a few minutes, and run again. "
            "Sharing the sheet does not help here, and the token is fine."
        )
    if status == 403 and "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in reasons:
        return "scope_not_granted", (
            f"The Google Sheets API says the token lacks the scope this call needs ({answer}, "
            f"ACCESS_TOKEN_SCOPE_INSUFFICIENT). Re-consent with `{AUTH_COMMAND}` and tick the Google Sheets "
            "permission on the consent page."
        )
    if status in (403, 404):
        return "sheet_access", (
            f"The Google account cannot open spreadsheet {spreadsheet_id} ({answer}). Check JADA_PORT_SHEET_ID, "
            "and share the sheet (Editor) with the account the token belongs to, or with the service account's "
            "client_email."
        )
    if status == 401:
        return "token_revoked", (
            f"The Google Sheets API rejected the access token even after a refresh ({answer}). "
            f"Re-consent with `{AUTH_COMMAND}`."
        )
    message = str(error.get("message", ""))[:200]
    # A 400 is an access problem only when Google says the range's tab does not parse: its answer has no
    # machine-readable reason for that (an INVALID_ARGUMENT with the message "Unable to parse range: …"), so
    # here, and only here, the message decides. Any other 400 is a request Google refused as written.
    if status == 400 and message.startswith("Unable to parse range"):
        return "sheet_access", (
            f"The Google Sheets API refused the request on spreadsheet {spreadsheet_id} ({answer}: {message}). "
            "Check that JADA_PORT_SHEET_TAB and JADA_PORT_SHEET_ID name an existing tab of that spreadsheet."
        )
    return "request_refused", (
        f"The Google Sheets API refused a request on spreadsheet {spreadsheet_id} as written ({answer}: "
        f"{message}). Nothing of it was applied, and the sheet's access is fine. The next run plans again from "
        "the sheet; if this recurs, report Google's message above, which names the field it refused."
    )


def _activation(details: list[dict[str, Any]]) -> tuple[str, str]:
    """The project and the activation link Google gives in a SERVICE_DISABLED answer (ErrorInfo metadata,
    else its Help link); the console's API page when neither is there."""
    project, link = "(unknown)", None
    for detail in details:
        metadata = detail.get("metadata") or {}
        if detail.get("reason") == "SERVICE_DISABLED":
            consumer = str(metadata.get("consumer") or metadata.get("containerInfo") or "")
            project = consumer.removeprefix("projects/") or project
            link = metadata.get("activationUrl") or link
        for item in detail.get("links") or []:
            if isinstance(item, dict) and str(item.get("url", "")).startswith("https://"):
                link = link or item["url"]
    fallback = "https://console.developers.google.com/apis/api/sheets.googleapis.com/overview"
    if link is None:
        link = fallback + (f"?project={project}" if project != "(unknown)" else "")
    return project, str(link)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by Google APIs, and is read as absent)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _redirect_adapter(base_url: str) -> Any:
    """A requests adapter that sends ``https://sheets.googleapis.com/...`` to ``base_url`` instead."""
    from requests.adapters import HTTPAdapter

    class RedirectAdapter(HTTPAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            request.url = base_url.rstrip("/") + request.url[len(settings.DEFAULT_SHEETS_API_URL) :]
            return super().send(request, **kwargs)

    return RedirectAdapter()
