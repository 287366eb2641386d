"""One way to build boto3 clients for the DynamoDB queue, the Secrets Manager token store and CloudWatch.

boto3 finds the region, the credentials and ``AWS_ENDPOINT_URL`` (moto in tests) on its own; this module
adds timeouts and bounded retries, and turns boto3's configuration errors into a ``ConfigError`` that
names the variable to set. boto3 is imported here, when a client is built, never when definitions load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jada_pipelines.settings import ConfigError

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Without timeouts a stalled AWS endpoint would hang a sensor tick or a run worker indefinitely.
_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 20
_MAX_ATTEMPTS = 4


def client(service: str) -> BaseClient:
    """A boto3 client for ``service``, with the region, credentials and endpoint from the environment."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": _MAX_ATTEMPTS},
    )
    try:
        return boto3.session.Session().client(service, config=config)
    except NoRegionError:
        raise ConfigError(
            f"No AWS region is configured for {service}: set AWS_DEFAULT_REGION (for example us-east-1)."
        ) from None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``ConditionalCheckFailedException``...), else None."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("Error", {}).get("Code")
