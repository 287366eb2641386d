"""The errors the LOCAL Google emulator (not Google) answers with, and the switches that provoke them.

Error bodies follow the AIP-193 error model (https://cloud.google.com/apis/design/errors) and the OAuth 2.0
token endpoint's error responses (RFC 6749 5.2, https://developers.google.com/identity/protocols/oauth2).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# Token-endpoint faults: (HTTP status, body). Bodies are those Google's endpoint returns.
TOKEN_FAULTS: dict[str, tuple[int, Any]] = {
    "invalid_grant": (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    ),
    "invalid_rapt": (
        400,
        {
            "error": "invalid_grant",
            "error_description": "reauth related error (invalid_rapt)",
            "error_uri": "https://support.google.com/a/answer/9368756",
            "error_subtype": "invalid_rapt",
        },
    ),
    "rapt_required": (
        400,
        {
            "error": "invalid_grant",
            "error_description": "reauth related error (rapt_required)",
            "error_uri": "https://support.google.com/a/answer/9368756",
            "error_subtype": "rapt_required",
        },
    ),
    "invalid_scope": (400, {"error": "invalid_scope", "error_description": "Bad Request"}),
    "deleted_client": (
        401,
        {"error": "deleted_client", "error_description": "The OAuth client was deleted."},
    ),
    "invalid_client": (
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
    ),
    "unavailable": (503, {"error": "internal_failure", "error_description": "Backend Error"}),
    "rate_limited": (429, {"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"}),
    "bad_gateway": (
        502,
        "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    ),
}

# Sheets API faults by HTTP status: (status text, message), as Google's JSON error bodies carry them.
SHEETS_FAULTS: dict[int, tuple[str, str]] = {
    # A request refused as written; Google's message names the field (AIP-193 INVALID_ARGUMENT).
    400: (
        "INVALID_ARGUMENT",
        "Invalid value at 'data[0]' (type.googleapis.com/google.apps.sheets.v4.DataFilterValueRange)",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' "
        "of service 'sheets.googleapis.com'.",
    ),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
}
HTML_502 = "<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title><p>That's an error.</p></html>"

# How the emulator answers the key column's empty item (``{"dataFilter": ..., "values": [[]]}``) of a
# values:batchUpdateByDataFilter with includeValuesInResponse. The reference says updatedData holds "the values
# of the cells in the range matched by the dataFilter after all updates were applied"
# (https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdateByDataFilter,
# UpdateValuesByDataFilterResponse), but no recorded real answer to an empty item exists, so the two other ways
# Google could answer are modes: "refuse" (400 INVALID_ARGUMENT for the whole batch, which Google applies
# atomically) and "omit" (the item is applied but its response has no updatedData).
EMPTY_ITEM_ANSWERS = ("echo", "refuse", "omit")


class SheetsError(Exception):
    """A Google-shaped API error raised inside the emulator and sent back as ``{"error": {...}}``."""

    def __init__(self, code: int, status: str, message: str, reason: str | None = None):
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason


def invalid(message: str) -> SheetsError:
    return SheetsError(400, "INVALID_ARGUMENT", message)


class FaultSwitches:
    """The fault switches of :class:`GoogleEmulator`: each makes the next requests fail as Google can."""

    _lock: threading.RLock
    clock: Callable[[], float]

    def fail_token(self, fault: str, *, times: int | None = None) -> None:
        """Answer token requests with ``fault`` (a key of :data:`TOKEN_FAULTS`), every time or ``times`` times."""
        if fault not in TOKEN_FAULTS:
            raise ValueError(f"unknown token fault {fault!r}; choose from {sorted(TOKEN_FAULTS)}")
        with self._lock:
            self._token_fault = (fault, times)

    def fail_sheets(
        self,
        status: int,
        *,
        kinds: Iterable[str] | None = None,
        times: int | None = None,
        for_seconds: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer Sheets requests (of ``kinds``, default all) with HTTP ``status``: every time, ``times``
        times, or until ``for_seconds`` have passed on :attr:`clock` (a quota window that has to run out).

        ``status`` is 400, 403, 404, 429, 500 or 503 (Google's JSON error body) or 502 (an HTML page).
        ``retry_after`` adds a ``Retry-After`` header (seconds) to the answers.
        """
        if status not in SHEETS_FAULTS and status != 502:
            raise ValueError(f"unsupported Sheets fault status {status}")
        until = self.clock() + for_seconds if for_seconds is not None else None
        with self._lock:
            self._sheets_fault = (status, frozenset(kinds) if kinds else None, times, until, retry_after)

    def answer_empty_items(self, answer: str) -> None:
        """How a write's empty item (``"values": [[]]``) is answered: ``echo`` (updatedData, as the reference
        reads), ``refuse`` (Google's 400 INVALID_ARGUMENT for the batch) or ``omit`` (no updatedData)."""
        if answer not in EMPTY_ITEM_ANSWERS:
            raise ValueError(f"unknown answer {answer!r}; choose from {EMPTY_ITEM_ANSWERS}")
        with self._lock:
            self._empty_item_answer = answer

    def disable_api(self, project: str = "123456789012") -> None:
        """The Sheets API is not enabled in Cloud project ``project`` (the OAuth client's): every Sheets
        request gets Google's 403 SERVICE_DISABLED answer, with its ErrorInfo and activation link."""
        with self._lock:
            self._disabled_project = project

    def grant_only(self, scopes: Sequence[str]) -> None:
        """From now on, token responses grant only ``scopes`` (the user unticked a box on the consent page)."""
        with self._lock:
            self._granted_override = tuple(scopes)

    def decline_consent(self, error: str = "access_denied") -> None:
        """The person clicks Cancel on the consent page: the redirect carries ``error`` instead of a code."""
        with self._lock:
            self._consent_error = error

    def clear_faults(self) -> None:
        with self._lock:
            self._token_fault = self._sheets_fault = self._granted_override = self._consent_error = None
            self._disabled_project = None
            self._empty_item_answer = "echo"

    def before(self, kind: str, hook: Callable[[Any], None], *, once: bool = True) -> None:
        """Run ``hook(emulator)`` just before serving the next request of ``kind`` (e.g. a person's edit).

        ``emulator`` is the :class:`~jada_pipelines.emulators.google.server.GoogleEmulator`; it is typed
        ``Any`` so that faults (which server imports) does not import server back.
        """
        with self._lock:
            self._hooks.append((kind, hook, once))

    def _take_token_fault(self) -> str | None:
        with self._lock:
            if self._token_fault is None:
                return None
            fault, times = self._token_fault
            if times is not None:
                self._token_fault = (fault, times - 1) if times > 1 else None
            return fault

    def _take_sheets_fault(self, kind: str) -> tuple[int, float | None] | None:
        with self._lock:
            if self._sheets_fault is None:
                return None
            status, kinds, times, until, retry_after = self._sheets_fault
            if until is not None and self.clock() >= until:
                self._sheets_fault = None
                return None
            if kinds is not None and kind not in kinds:
                return None
            if times is not None:
                self._sheets_fault = (status, kinds, times - 1, until, retry_after) if times > 1 else None
            return status, retry_after

    def _run_hooks(self, kind: str) -> None:
        with self._lock:
            due = [h for h in self._hooks if h[0] == kind]
            self._hooks = [h for h in self._hooks if not (h[0] == kind and h[2])]
        for _, hook, _ in due:
            hook(self)


def service_disabled(project: str) -> dict:
    """Google's answer when the API is off in the caller's project: PERMISSION_DENIED with an ErrorInfo whose
    reason is SERVICE_DISABLED and whose metadata carries the project and the activation link (AIP-193
    error model, https://cloud.google.com/apis/design/errors; message as Google words it)."""
    link = f"https://console.developers.google.com/apis/api/sheets.googleapis.com/overview?project={project}"
    message = (
        f"Google Sheets API has not been used in project {project} before or it is disabled. Enable it by "
        f"visiting {link} then retry. If you enabled this API recently, wait a few minutes for the action to "
        "propagate to our systems and retry."
    )
    return {
        "error": {
            "code": 403,
            "message": message,
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "sheets.googleapis.com",
                        "consumer": f"projects/{project}",
                        "serviceTitle": "Google Sheets API",
                        "containerInfo": project,
                        "activationUrl": link,
                    },
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Google developers console API activation", "url": link}],
                },
            ],
        }
    }


def error_body(code: int, status: str, message: str, reason: str | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": error}
