"""What can go wrong with Google credentials, as one exception with a class and the exact fix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Every class of failure, each with its own fix (see docs/google.md for the table of messages).
KINDS = (
    "missing_config",
    "missing_file",
    "malformed_json",
    "wrong_file_type",
    "missing_fields",
    "scope_not_granted",
    "token_revoked",
    "reauth_required",
    "client_invalid",
    "transient",
    "quota",
    "service_disabled",
    "sheet_access",
    "request_refused",
)
# Classes worth another attempt in the same run: a passing outage, and a per-minute quota that refills.
RETRYABLE = ("transient", "quota")


class CredentialsError(Exception):
    """Google credentials cannot be used; ``description`` says what is wrong and the exact fix.

    ``metadata`` carries the class, the token's age and its predicted expiry. It never holds a secret:
    no token, client secret or private key reaches the message or the metadata.
    """

    def __init__(self, kind: str, description: str, metadata: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown credentials failure class {kind!r}")
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.metadata = {"failure_class": kind, **(metadata or {})}
        # Known once the token was read: how old its consent is and when it is predicted to expire.
        self.token_age_days: float | None = None
        self.expires_at: datetime | None = None
        # For "quota": how long Google asks to wait (Retry-After), or None for its per-minute window.
        self.retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE
