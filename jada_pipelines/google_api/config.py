"""Where the Google credentials come from and which endpoints to use (:class:`GoogleConfig`), read from the
environment at execution time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jada_pipelines import settings
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.retry import RetryPolicy
from jada_pipelines.google_api.tokens import (
    AUTH_COMMAND,
    FileTokenStore,
    SecretsManagerTokenStore,
    TokenStore,
)

SOURCE_VARIABLES = (
    "JADA_GOOGLE_TOKEN_FILE",
    "JADA_GOOGLE_SERVICE_ACCOUNT_FILE",
    "JADA_GOOGLE_TOKEN_SECRET_ID",
)


@dataclass(frozen=True)
class GoogleConfig:
    """Where the credentials come from and which endpoints to use; built at execution time."""

    token_file: str | None = None
    service_account_file: str | None = None
    token_secret_id: str | None = None
    token_uri: str = settings.DEFAULT_GOOGLE_TOKEN_URI
    sheets_api_url: str = settings.DEFAULT_SHEETS_API_URL
    timeout: tuple[float, float] = (10.0, 120.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_env(cls, **overrides: Any) -> GoogleConfig:
        """The environment's settings; ``overrides`` that are not None win (the resource's fields)."""
        values = {
            "token_file": settings.get("JADA_GOOGLE_TOKEN_FILE"),
            "service_account_file": settings.get("JADA_GOOGLE_SERVICE_ACCOUNT_FILE"),
            "token_secret_id": settings.get("JADA_GOOGLE_TOKEN_SECRET_ID"),
            "token_uri": settings.get("JADA_GOOGLE_TOKEN_URI"),
            "sheets_api_url": settings.get("JADA_SHEETS_API_URL"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def store(self) -> TokenStore:
        if self.service_account_file:
            return FileTokenStore(self.service_account_file, variable="JADA_GOOGLE_SERVICE_ACCOUNT_FILE")
        if self.token_file:
            return FileTokenStore(self.token_file)
        if self.token_secret_id:
            return SecretsManagerTokenStore(self.token_secret_id)
        raise CredentialsError(
            "missing_config",
            "No Google credentials are configured. Set JADA_GOOGLE_TOKEN_FILE to an authorized-user token "
            f"(create one with `{AUTH_COMMAND}`), or JADA_GOOGLE_SERVICE_ACCOUNT_FILE to a service-account "
            "key, or JADA_GOOGLE_TOKEN_SECRET_ID to an AWS Secrets Manager secret holding the token.",
            {"variables": ", ".join(SOURCE_VARIABLES)},
        )
