"""The ``google`` resource: refreshed Google credentials and a Sheets session, or a failure that says the fix."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from jada_pipelines.google_api.config import GoogleConfig
from jada_pipelines.google_api.credentials import CredentialVerdict, authorize, check_credentials
from jada_pipelines.google_api.retry import RetryPolicy
from jada_pipelines.google_api.sheets import SheetsSession

if TYPE_CHECKING:
    from jada_pipelines.google_api.errors import CredentialsError


class GoogleCredentialsResource(dg.ConfigurableResource):
    """Google credentials for the port sheet, checked with a real refresh before any Sheets call.

    Every field is optional: left unset, it falls back at execution time to its ``JADA_*`` variable, so
    the code location loads with no credentials at all, and a run then fails with a sentence naming the
    variable to set instead of a config stack trace. Secrets are read from the token source when a run
    needs them; they never enter run config, tags, logs or metadata.

    Example::

        defs = dg.Definitions(
            assets=[port_sheet_rows],
            resources={"google": GoogleCredentialsResource()},  # reads JADA_GOOGLE_TOKEN_FILE, ...
        )

        @dg.asset
        def my_sheet(google: GoogleCredentialsResource):
            session = google.sheets()  # raises CredentialsError with the fix if the token is unusable
            return session.values_batch_get(sheet_id, ["Ports"])
    """

    token_file: str | None = Field(
        default=None,
        description="Path of an authorized-user token JSON written by `jada auth google`; "
        "default $JADA_GOOGLE_TOKEN_FILE.",
    )
    service_account_file: str | None = Field(
        default=None,
        description="Path of a service-account key JSON (takes precedence); default $JADA_GOOGLE_SERVICE_ACCOUNT_FILE.",
    )
    token_secret_id: str | None = Field(
        default=None,
        description="AWS Secrets Manager secret holding the token JSON; default $JADA_GOOGLE_TOKEN_SECRET_ID.",
    )
    token_uri: str | None = Field(
        default=None,
        description="OAuth token endpoint; default $JADA_GOOGLE_TOKEN_URI, else https://oauth2.googleapis.com/token.",
    )
    sheets_api_url: str | None = Field(
        default=None,
        description="Sheets API base URL; default $JADA_SHEETS_API_URL, else https://sheets.googleapis.com.",
    )
    retry_attempts: int = Field(
        default=4, description="Attempts for a transient failure (network, 5xx, 429) before the run fails."
    )
    retry_base_delay_s: float = Field(
        default=1.0, description="First backoff delay in seconds; doubles per retry, with jitter."
    )
    retry_max_delay_s: float = Field(default=32.0, description="Cap on one backoff delay, in seconds.")
    quota_wait_s: float = Field(
        default=150.0,
        description="Seconds a run may spend waiting out Google's per-minute quota (HTTP 429) before it fails "
        "with a 'quota' error; the default covers two of Google's one-minute windows.",
    )
    connect_timeout_s: float = Field(default=10.0, description="Seconds to wait for a connection to Google.")
    read_timeout_s: float = Field(
        default=120.0, description="Seconds to wait for Google's answer to one call."
    )

    def config(self) -> GoogleConfig:
        return GoogleConfig.from_env(
            token_file=self.token_file,
            service_account_file=self.service_account_file,
            token_secret_id=self.token_secret_id,
            token_uri=self.token_uri,
            sheets_api_url=self.sheets_api_url,
            timeout=(self.connect_timeout_s, self.read_timeout_s),
            retry=RetryPolicy(
                attempts=self.retry_attempts,
                base_delay_s=self.retry_base_delay_s,
                max_delay_s=self.retry_max_delay_s,
                quota_wait_s=self.quota_wait_s,
            ),
        )

    def verdict(self, *, now: datetime | None = None) -> CredentialVerdict:
        """Refresh for real and say OK, WARN (expires soon) or ERROR (class + fix); never raises for bad creds."""
        return check_credentials(now=now, config=self.config())

    def sheets(self, *, now: datetime | None = None) -> SheetsSession:
        """A Sheets session on freshly refreshed credentials; its ``verdict`` says OK or WARN.

        Raises :class:`~jada_pipelines.google_api.errors.CredentialsError` before any Sheets call when the
        credentials cannot be used.
        """

        authorized = authorize(self.config(), now=now)
        return SheetsSession(authorized.credentials, authorized.config, authorized.verdict)


def credentials_failure(error: CredentialsError) -> dg.Failure:
    """The run failure for a credentials error: its description is the fix, and its metadata the class,
    token age and predicted expiry. Retrying cannot heal a revoked token or a missing file, and transient
    errors were already retried with backoff, so Dagster must not retry it again."""
    return dg.Failure(description=error.description, metadata=error.metadata, allow_retries=False)
