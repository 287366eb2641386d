"""Every test runs with a throwaway DAGSTER_HOME and data dir, no real credentials and no route to real AWS."""

from __future__ import annotations

import os

import pytest

from jada_pipelines import settings

pytest_plugins = [
    "tests.fixtures.google",
    "tests.fixtures.anthropic",
    "tests.fixtures.slack",
    "tests.fixtures.aws",
    "tests.fixtures.queues",
]

# Names other programs read that a developer's shell may carry and that must never reach a test; the product's
# own variables are settings.REGISTRY's (scrubbed_names()), so a new setting is scrubbed without a line here.
_SCRUBBED_NOT_PRODUCT = (
    # Dagster's own: how often the daemon's freshness loop runs (tests/test_health_daemon.py sets it).
    "FRESHNESS_DAEMON_INTERVAL_SECONDS",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
# Service-specific endpoints (AWS_ENDPOINT_URL_DYNAMODB, ...) override AWS_ENDPOINT_URL and the moto server.
_SCRUBBED_PREFIXES = ("AWS_ENDPOINT_URL_",)


def scrubbed_names() -> tuple[str, ...]:
    return (*settings.REGISTRY, *_SCRUBBED_NOT_PRODUCT)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    for name in scrubbed_names():
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith(_SCRUBBED_PREFIXES)]:
        monkeypatch.delenv(name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("JADA_DATA_DIR", str(tmp_path / "jada_data"))
    # Fake AWS credentials so boto3 can never pick up a developer's real profile.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path
