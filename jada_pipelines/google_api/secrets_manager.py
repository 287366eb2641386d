"""The Google token as an AWS Secrets Manager secret (``JADA_GOOGLE_TOKEN_SECRET_ID``).

On AWS the token cannot live in a file on one machine: every ECS task and the daemon must see the
same token, and a refresh made by one must reach the others. The secret holds the authorized-user
token JSON. Secrets Manager keeps versions: each write becomes ``AWSCURRENT`` and the version it
replaces becomes ``AWSPREVIOUS``, so a refresh that Google answers with a bad token can be rolled back.

This is plain boto3 rather than dagster-aws's ``SecretsManagerResource``: the token store is called by
the Google credentials code at execution time, outside any resource context, and the resource would
only hand back the same boto3 client. Nothing here logs or raises a secret's value.
"""

from __future__ import annotations

import json

from jada_pipelines.aws_clients import client, error_code

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
# Secrets Manager accepts ClientRequestToken values of 32 to 64 characters.
_REQUEST_TOKEN_LENGTH = range(32, 65)


class SecretStoreError(RuntimeError):
    """The secret cannot be read or written; the message says why and what to do, never the value."""

    def __init__(self, secret_id: str, code: str | None, message: str):
        super().__init__(message)
        self.secret_id = secret_id
        self.code = code


def read_token(secret_id: str) -> dict:
    """The current token (``AWSCURRENT``) as a dict."""
    return _read(secret_id, CURRENT)


def previous_token(secret_id: str) -> dict:
    """The token as it was before the last write (``AWSPREVIOUS``): what a rollback would restore."""
    return _read(secret_id, PREVIOUS)


def write_token(secret_id: str, data: dict, *, client_request_token: str) -> None:
    """Store ``data`` as the new current version, creating the secret on its first write.

    ``client_request_token`` makes the write idempotent: a retry with the same token and the same
    data adds no version (so a retried write never pushes the good token out of ``AWSPREVIOUS``),
    and the same token with different data is refused.
    """
    if len(client_request_token) not in _REQUEST_TOKEN_LENGTH:
        raise ValueError(
            "client_request_token must be 32 to 64 characters long (a UUID4 string is 36); "
            f"got {len(client_request_token)}."
        )
    from botocore.exceptions import ClientError

    secrets = client("secretsmanager")
    body = json.dumps(data, sort_keys=True)
    try:
        secrets.put_secret_value(
            SecretId=secret_id, SecretString=body, ClientRequestToken=client_request_token
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise _store_error(secret_id, exc, "write") from None
        _create(secrets, secret_id, body, client_request_token)


def rollback_token(secret_id: str) -> None:
    """Make ``AWSPREVIOUS`` current again, for when a refresh stored a token that does not work."""
    from botocore.exceptions import ClientError

    secrets = client("secretsmanager")
    try:
        stages = secrets.list_secret_version_ids(SecretId=secret_id)["Versions"]
    except ClientError as exc:
        raise _store_error(secret_id, exc, "read") from None
    current = _version_with_stage(stages, CURRENT)
    previous = _version_with_stage(stages, PREVIOUS)
    if previous is None:
        raise SecretStoreError(
            secret_id,
            None,
            f"Secret {secret_id!r} has no AWSPREVIOUS version to roll back to: it was written only once. "
            "Re-consent with `jada auth google --store secretsmanager` instead.",
        )
    secrets.update_secret_version_stage(
        SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=previous, RemoveFromVersionId=current
    )


def _read(secret_id: str, stage: str) -> dict:
    from botocore.exceptions import ClientError

    try:
        response = client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage=stage)
    except ClientError as exc:
        raise _store_error(secret_id, exc, "read", stage=stage) from None
    raw = response.get("SecretString")
    if raw is None:
        raise SecretStoreError(
            secret_id,
            None,
            f"Secret {secret_id!r} ({stage}) holds binary data, not the token JSON: "
            "store it again with `jada auth google --store secretsmanager`.",
        )
    try:
        token = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The position only, never the text: the text is the secret.
        raise SecretStoreError(
            secret_id,
            None,
            f"Secret {secret_id!r} ({stage}) is not valid JSON (error at character {exc.pos}): "
            "store the token again with `jada auth google --store secretsmanager`.",
        ) from None
    if not isinstance(token, dict):
        raise SecretStoreError(
            secret_id,
            None,
            f"Secret {secret_id!r} ({stage}) holds a JSON {type(token).__name__}, not a token object: "
            "store the token again with `jada auth google --store secretsmanager`.",
        )
    return token


def _create(secrets, secret_id: str, body: str, client_request_token: str) -> None:
    from botocore.exceptions import ClientError

    try:
        secrets.create_secret(
            Name=secret_id,
            SecretString=body,
            ClientRequestToken=client_request_token,
            Description="Google OAuth token for jada-pipelines (written by `jada auth google`).",
        )
    except ClientError as exc:
        raise _store_error(secret_id, exc, "create") from None


def _version_with_stage(versions: list[dict], stage: str) -> str | None:
    return next((v["VersionId"] for v in versions if stage in v.get("VersionStages", [])), None)


_FIXES = {
    "ResourceNotFoundException": "check JADA_GOOGLE_TOKEN_SECRET_ID and the AWS region, "
    "or create it with `jada auth google --store secretsmanager`.",
    "ResourceExistsException": "this client_request_token was already used for different data; "
    "retry with a new token.",
    "AccessDeniedException": "grant this role secretsmanager:GetSecretValue, PutSecretValue, CreateSecret, "
    "ListSecretVersionIds and UpdateSecretVersionStage on the secret.",
    "DecryptionFailure": "the role cannot use the secret's KMS key: grant it kms:Decrypt.",
}


def _store_error(secret_id: str, exc: Exception, action: str, *, stage: str = CURRENT) -> SecretStoreError:
    code = error_code(exc)
    what = f"Cannot {action} secret {secret_id!r}"
    if code == "ResourceNotFoundException" and stage != CURRENT:
        return SecretStoreError(secret_id, code, f"{what}: it has no {stage} version.")
    fix = _FIXES.get(code or "", "see the AWS error code and retry.")
    return SecretStoreError(secret_id, code, f"{what} ({code}): {fix}")
