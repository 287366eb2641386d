"""Every test runs with a throwaway DAGSTER_HOME and data dir, no real credentials and no route to real AWS."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.google",
    "tests.fixtures.anthropic",
    "tests.fixtures.slack",
    "tests.fixtures.aws",
    "tests.fixtures.queues",
]

# Variables a developer's shell may carry that must never reach a test.
_SCRUBBED = (
    "JADA_GOOGLE_TOKEN_FILE",
    "JADA_GOOGLE_SERVICE_ACCOUNT_FILE",
    "JADA_GOOGLE_TOKEN_SECRET_ID",
    "JADA_GOOGLE_TOKEN_URI",
    "JADA_SHEETS_API_URL",
    "JADA_PORT_SHEET_ID",
    "JADA_PORT_SHEET_TAB",
    "JADA_PORT_SHEET_KEY",
    "JADA_TASK_QUEUE_URL",
    "JADA_AGENT_MODEL",
    "JADA_AGENT_MAX_TURNS",
    "JADA_CLOUDWATCH_NAMESPACE",
    "JADA_WEBSERVER_URL",
    "JADA_ENV",
    "JADA_POSTGRES_URL",
    # The run task's entrypoint reads these two secrets (jada_pipelines/run_task.py).
    "JADA_ANTHROPIC_API_KEY_SECRET_ID",
    "JADA_POSTGRES_URL_SECRET_ID",
    "JADA_ECS_RUN_TASK_DEFINITION",
    "JADA_AGENT_SENSOR_INTERVAL_SECONDS",
    "JADA_AGENT_CONTINUE_DELAY_SECONDS",
    # The sandbox and its limits (agents/bwrap_sandbox.py, agents/tools.py).
    "JADA_AGENT_SANDBOX",
    "JADA_AGENT_NETWORK",
    "JADA_AGENT_UID_RANGE",
    "JADA_AGENT_WORKDIR_ROOTS",
    "JADA_AGENT_WORKDIR_MAX_MB",
    "JADA_AGENT_WORKDIR_MAX_FILES",
    # The Claude Code key proxy's gate (agents/api_gate.py).
    "JADA_AGENT_PROXY_MODELS",
    "JADA_AGENT_PROXY_MAX_TOKENS",
    "JADA_AGENT_PROXY_BETAS",
    "JADA_AGENT_SERVER_TOOLS",
    "JADA_AGENT_MAX_OUTPUT_MB",
    "JADA_AGENT_EDITOR_MAX_KB",
    "JADA_AGENT_MAX_FILE_MB",
    "JADA_AGENT_MAX_PROCESSES",
    "JADA_AGENT_MAX_MEMORY_MB",
    "JADA_AGENT_TMP_MB",
    "JADA_AGENT_COMMAND_TIMEOUT_SECONDS",
    "JADA_AGENT_SESSION_MAX_SECONDS",
    "JADA_ALERT_REMIND_HOURS",
    # The health thresholds: one per field of health.grading.Thresholds, named JADA_HEALTH_<FIELD>.
    "JADA_HEALTH_BACKLOG_WARN_DEPTH",
    "JADA_HEALTH_BACKLOG_ERROR_DEPTH",
    "JADA_HEALTH_QUEUED_AGE_WARN_MINUTES",
    "JADA_HEALTH_QUEUED_AGE_ERROR_MINUTES",
    "JADA_HEALTH_TURN_CAP_WARN_PERCENT",
    "JADA_HEALTH_TURN_CAP_ERROR_PERCENT",
    "JADA_HEALTH_DAEMON_STALE_SECONDS",
    "JADA_HEALTH_DISPATCH_WAIT_SECONDS",
    "JADA_HEALTH_DISPATCH_START_SECONDS",
    "JADA_WATCHDOG_STATE_FILE",
    "FRESHNESS_DAEMON_INTERVAL_SECONDS",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "SLACK_WEBHOOK_URL",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
# Service-specific endpoints (AWS_ENDPOINT_URL_DYNAMODB, ...) override AWS_ENDPOINT_URL and the moto server.
_SCRUBBED_PREFIXES = ("AWS_ENDPOINT_URL_",)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    for name in _SCRUBBED:
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
