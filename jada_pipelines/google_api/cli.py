"""`jada auth google` (re-consent) and `jada auth check` (the resource's verdict, from the command line)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jada_pipelines import settings
from jada_pipelines.google_api import oauth
from jada_pipelines.google_api.credentials import check_credentials
from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.google_api.secrets_manager import SecretStoreError
from jada_pipelines.google_api.tokens import FileTokenStore, SecretsManagerTokenStore, TokenStore


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``jada auth google`` and ``jada auth check``."""
    auth = subparsers.add_parser("auth", help="Google credentials: re-consent, or check them.")
    commands = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")

    google = commands.add_parser(
        "google", help="Re-consent to Google (local-server flow) and store the token."
    )
    google.add_argument("--client-secrets", required=True, help="OAuth client-secrets JSON (Desktop client).")
    status = google.add_mutually_exclusive_group(required=True)
    status.add_argument(
        "--testing",
        dest="publishing_status",
        action="store_const",
        const="testing",
        help="The OAuth app is in Testing: its tokens expire 7 days after consent.",
    )
    status.add_argument(
        "--production",
        dest="publishing_status",
        action="store_const",
        const="production",
        help="The OAuth app is published (In production): no weekly expiry.",
    )
    google.add_argument(
        "--port", type=int, default=None, help="Fixed local port for the redirect (default 8085)."
    )
    google.add_argument(
        "--no-browser", action="store_true", help="Print the URL instead of opening a browser."
    )
    google.add_argument(
        "--store",
        choices=("file", "secretsmanager"),
        default="file",
        help="Where to write the token: a 0600 file, or AWS Secrets Manager.",
    )
    google.add_argument("--output", help="Token file path (default $JADA_GOOGLE_TOKEN_FILE).")
    google.add_argument(
        "--secret-id", help="Secrets Manager secret id (default $JADA_GOOGLE_TOKEN_SECRET_ID)."
    )
    google.add_argument(
        "--timeout", type=float, default=600.0, help="Seconds to wait for the browser (default 600)."
    )
    google.set_defaults(func=auth_google)

    check = commands.add_parser("check", help="Refresh the configured token and report OK, WARN or ERROR.")
    check.set_defaults(func=auth_check)


def auth_google(args: argparse.Namespace) -> int:
    try:
        store = _target_store(args)
        client_config = oauth.load_client_config(Path(args.client_secrets).expanduser())
        token = oauth.consent(
            client_config,
            publishing_status=args.publishing_status,
            port=args.port or oauth.DEFAULT_PORT,
            open_browser=not args.no_browser,
            token_uri=settings.get("JADA_GOOGLE_TOKEN_URI")
            if settings.is_set("JADA_GOOGLE_TOKEN_URI")
            else None,
            timeout_seconds=args.timeout,
        )
    except (CredentialsError, oauth.ConsentError) as error:
        print(f"jada auth google: {error.description}", file=sys.stderr)
        return 1
    try:
        store.save(token)
    except _save_errors() as exc:
        # The message names the store and the failure, never the token.
        detail = f"{type(exc).__name__}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
        print(
            f"jada auth google: the consent succeeded, but the token could not be stored in {store.describe()} "
            f"({detail}). Nothing was written; fix the destination and run the command again.",
            file=sys.stderr,
        )
        return 1
    print(
        f"Stored the new Google token in {store.describe()} ({args.publishing_status}, scopes: {' '.join(token['scopes'])})."
    )
    if args.publishing_status == "testing":
        print(
            "The app is in Testing: this token expires in 7 days. Publish the app to Production to stop that."
        )
    return 0


def _target_store(args: argparse.Namespace) -> TokenStore:
    if args.store == "secretsmanager":
        secret_id = args.secret_id or settings.get("JADA_GOOGLE_TOKEN_SECRET_ID")
        if secret_id is None:
            raise settings.ConfigError(
                "--store secretsmanager needs a secret: pass --secret-id or set JADA_GOOGLE_TOKEN_SECRET_ID."
            )
        return SecretsManagerTokenStore(secret_id)
    path = args.output or settings.get("JADA_GOOGLE_TOKEN_FILE")
    if path is None:
        raise settings.ConfigError(
            "Where should the token go? Pass --output PATH or set JADA_GOOGLE_TOKEN_FILE."
        )
    store = FileTokenStore(path)
    # Checked before the consent, so a wrong path does not cost a second trip through the browser.
    if store.path.is_dir():
        raise settings.ConfigError(
            f"{store.path} is a directory: pass --output (or set JADA_GOOGLE_TOKEN_FILE to) the token file's path, "
            f"such as {store.path / 'google-token.json'}."
        )
    return store


def _save_errors() -> tuple[type[Exception], ...]:
    """What writing the token can raise: the file system, or Secrets Manager (AWS answered, or could not be
    reached / had no credentials)."""
    from botocore.exceptions import BotoCoreError

    return (OSError, SecretStoreError, BotoCoreError)


def auth_check(args: argparse.Namespace) -> int:
    verdict = check_credentials()
    stream = sys.stdout if verdict.ok else sys.stderr
    label = verdict.severity if verdict.ok else f"ERROR [{verdict.kind}]"
    print(f"{label}: {verdict.description}", file=stream)
    for name in ("credential_class", "publishing_status", "token_age_days", "predicted_expiry"):
        if name in verdict.metadata:
            print(f"  {name}: {verdict.metadata[name]}", file=stream)
    return 0 if verdict.ok else 1
