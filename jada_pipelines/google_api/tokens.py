"""Where the Google token lives: a JSON file or an AWS Secrets Manager secret, behind one small interface."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol

from jada_pipelines.google_api import secrets_manager
from jada_pipelines.google_api.errors import CredentialsError

AUTH_COMMAND = "jada auth google --client-secrets CLIENT_SECRETS.json --testing|--production"


class TokenStore(Protocol):
    """Loads and saves the token JSON; ``describe()`` names the source in messages (never its content)."""

    def load(self) -> dict[str, Any]: ...

    def save(self, data: dict[str, Any]) -> None: ...

    def describe(self) -> str: ...


class FileTokenStore:
    """A token JSON file, written atomically with mode 0600 so a half-written or readable token never exists."""

    def __init__(self, path: str | os.PathLike[str], *, variable: str = "JADA_GOOGLE_TOKEN_FILE"):
        self.path = Path(path).expanduser()
        self.variable = variable

    def describe(self) -> str:
        return f"{self.variable}={self.path}"

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialsError(
                "missing_file",
                f"The Google token file {self.path} (from {self.variable}) does not exist. "
                f"Create it with `{AUTH_COMMAND}`, or point {self.variable} at the right file.",
                {"source": self.describe()},
            ) from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise CredentialsError(
                "missing_file",
                f"The Google token file {self.path} (from {self.variable}) cannot be read "
                f"({type(exc).__name__}). Make it a readable file, or re-create it with `{AUTH_COMMAND}`.",
                {"source": self.describe()},
            ) from None
        return parse_token_json(text, self.describe())

    def save(self, data: dict[str, Any]) -> None:
        write_private_json(self.path, data)


class SecretsManagerTokenStore:
    """The token as an AWS Secrets Manager secret (``JADA_GOOGLE_TOKEN_SECRET_ID``)."""

    def __init__(self, secret_id: str):
        self.secret_id = secret_id

    def describe(self) -> str:
        return f"JADA_GOOGLE_TOKEN_SECRET_ID={self.secret_id}"

    def load(self) -> dict[str, Any]:
        try:
            return secrets_manager.read_token(self.secret_id)
        except secrets_manager.SecretStoreError as exc:
            raise CredentialsError(
                "missing_file",
                f"The Google token secret {self.secret_id} could not be read from AWS Secrets Manager: {exc}. "
                f"Check the secret id and the IAM permissions, or store a token with "
                f"`{AUTH_COMMAND} --store secretsmanager`.",
                {"source": self.describe()},
            ) from None

    def save(self, data: dict[str, Any]) -> None:
        # A fresh request token per consent: a retried write of the same consent is idempotent on AWS's side.
        secrets_manager.write_token(self.secret_id, data, client_request_token=str(uuid.uuid4()))


def parse_token_json(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(
            "malformed_json",
            f"The Google token from {source} is not valid JSON (line {exc.lineno}, column {exc.colno}). "
            f"Re-create it with `{AUTH_COMMAND}`.",
            {"source": source},
        ) from None
    if not isinstance(data, dict):
        raise CredentialsError(
            "malformed_json",
            f"The Google token from {source} is JSON but not an object ({type(data).__name__}). "
            f"Re-create it with `{AUTH_COMMAND}`.",
            {"source": source},
        )
    return data


def write_private_json(path: Path, data: dict[str, Any], *, indent: int | None = 2) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (a temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
