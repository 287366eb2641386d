"""The OAuth side of the LOCAL Google emulator: the token endpoint and the consent page (not Google).

Token endpoint and grants: https://developers.google.com/identity/protocols/oauth2/native-app and
https://developers.google.com/identity/protocols/oauth2/service-account (JWT bearer, RFC 7523).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from jada_pipelines.emulators.google.faults import TOKEN_FAULTS, SheetsError

SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
SHEETS_READONLY_SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
_READ_SCOPES = {
    SHEETS_SCOPE,
    SHEETS_READONLY_SCOPE,
    DRIVE_SCOPE,
    "https://www.googleapis.com/auth/drive.readonly",
}
_WRITE_SCOPES = {SHEETS_SCOPE, DRIVE_SCOPE}
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_SECONDS = 3599


class OAuthEndpoint:
    """The OAuth half of :class:`GoogleEmulator`: tokens it honours, the token endpoint, the consent page."""

    _lock: threading.RLock
    base_url: str

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.base_url}/o/oauth2/auth"

    def issue_refresh_token(self, scopes: Sequence[str] = (SHEETS_SCOPE,)) -> str:
        """A refresh token this emulator will honour, granted ``scopes``."""
        token = "1//emulated-refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = tuple(scopes)
        return token

    def revoke_refresh_token(self, token: str) -> None:
        """The user removed the app's access: the token now gets ``invalid_grant``."""
        with self._lock:
            self._refresh_tokens.pop(token, None)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired, so the next Sheets call gets a 401."""
        with self._lock:
            self._access_tokens.clear()

    def register_service_account(self, email: str) -> None:
        """Accept JWT-bearer grants whose ``iss`` is ``email`` (the signature is not checked)."""
        with self._lock:
            self._service_accounts.add(email)

    def authorized_user_info(
        self,
        scopes: Sequence[str] = (SHEETS_SCOPE,),
        *,
        publishing_status: str = "production",
        consented_at: str | None = None,
    ) -> dict:
        """The content of an authorized-user token file, as `jada auth google` writes it, for this emulator."""
        info = {
            "type": "authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.issue_refresh_token(scopes),
            "token_uri": self.token_uri,
            "scopes": list(scopes),
            "publishing_status": publishing_status,
        }
        if consented_at is not None:
            info["consented_at"] = consented_at
        return info

    def client_config(self) -> dict:
        """An OAuth "installed app" client-secrets file's content, pointed at this emulator."""
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    def handle_token(self, form: dict[str, str]) -> tuple[int, Any]:
        fault = self._take_token_fault()
        if fault is not None:
            return TOKEN_FAULTS[fault]
        grant = form.get("grant_type")
        if grant == JWT_BEARER_GRANT:
            return self._jwt_grant(form.get("assertion", ""))
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return TOKEN_FAULTS["invalid_client"]
        with self._lock:
            if grant == "refresh_token":
                granted = self._refresh_tokens.get(form.get("refresh_token", ""))
                refresh_token = None
            elif grant == "authorization_code":
                granted = self._auth_codes.pop(form.get("code", ""), None)
                refresh_token = self.issue_refresh_token(granted) if granted is not None else None
            else:
                return 400, {
                    "error": "unsupported_grant_type",
                    "error_description": f"Invalid grant_type: {grant}",
                }
        if granted is None:
            return TOKEN_FAULTS["invalid_grant"]
        requested = tuple(form["scope"].split()) if form.get("scope") else granted
        if not set(requested) <= set(granted):
            return TOKEN_FAULTS["invalid_scope"]
        body = self._access_token_body(self._granted_override or requested)
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return 200, body

    def _jwt_grant(self, assertion: str) -> tuple[int, Any]:
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if claims.get("iss") not in self._service_accounts:
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
        scopes = tuple(str(claims.get("scope", "")).split())
        body = self._access_token_body(self._granted_override or scopes)
        body.pop("scope")  # Google's JWT-bearer response carries no scope field
        return 200, body

    def _access_token_body(self, scopes: Sequence[str]) -> dict[str, Any]:
        token = "ya29.emulated-" + secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[token] = (tuple(scopes), time.time() + ACCESS_TOKEN_SECONDS)
        return {
            "access_token": token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }

    def handle_consent(self, query: dict[str, str]) -> str:
        """The consent page, already approved: returns the redirect URL carrying a fresh code."""
        state = query.get("state", "")
        if self._consent_error is not None:
            return query["redirect_uri"] + "?" + urlencode({"state": state, "error": self._consent_error})
        code = "4/emulated-code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._auth_codes[code] = tuple(query.get("scope", SHEETS_SCOPE).split())
        return query["redirect_uri"] + "?" + urlencode({"state": state, "code": code})

    def authorize(self, authorization: str | None, kind: str) -> None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            scopes, expires = self._access_tokens.get(token, ((), 0.0))
        if expires < time.time():
            raise SheetsError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
            )
        # developerMetadata.search needs the read-write scopes (its reference page lists no readonly scope).
        reads = ("metadata", "values_get", "batch_get", "batch_get_by_data_filter")
        needed = _READ_SCOPES if kind in reads else _WRITE_SCOPES
        if not needed & set(scopes):
            raise SheetsError(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            )
