"""The ECS run task's entrypoint reads the Anthropic key and the Postgres URL from Secrets Manager (moto in
server mode, reached over HTTP by boto3 as the task role would be) and runs the launcher's command with them;
every way it cannot says what to fix, and starts nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

KEY = "sk-ant-not-a-key-rt"
URL = "postgresql+psycopg2://jada:run-task-password@db.internal:5432/dagster"
SHOW = "import os; print(os.environ.get('ANTHROPIC_API_KEY'), os.environ.get('JADA_POSTGRES_URL'))"


def run_task(*command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jada_pipelines.run_task", *command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def secrets(aws, monkeypatch):
    client = boto3.client("secretsmanager")
    client.create_secret(Name="jada/anthropic-api-key", SecretString=KEY)
    client.create_secret(Name="jada/postgres-url", SecretString=URL + "\n")
    monkeypatch.setenv("JADA_ANTHROPIC_API_KEY_SECRET_ID", "jada/anthropic-api-key")
    monkeypatch.setenv("JADA_POSTGRES_URL_SECRET_ID", "jada/postgres-url")
    return client


def test_the_run_task_reads_both_secrets_at_start_and_runs_the_command_with_them(secrets):
    done = run_task(sys.executable, "-c", SHOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{KEY} {URL}\n"


def test_a_secret_also_injected_by_the_task_definition_is_refused(secrets):
    done = run_task(sys.executable, "-c", SHOW, ANTHROPIC_API_KEY="sk-ant-injected")
    assert done.returncode == 78 and done.stdout == ""
    assert "ANTHROPIC_API_KEY is in this task's environment" in done.stderr
    assert "remove ANTHROPIC_API_KEY from the task definition" in done.stderr


def test_a_missing_secret_names_the_setting_and_starts_nothing(secrets, monkeypatch):
    monkeypatch.setenv("JADA_POSTGRES_URL_SECRET_ID", "jada/no-such-secret")
    done = run_task(sys.executable, "-c", SHOW)
    assert done.returncode == 78 and done.stdout == ""
    assert "JADA_POSTGRES_URL_SECRET_ID='jada/no-such-secret' (ResourceNotFoundException)" in done.stderr
    assert KEY not in done.stderr


def test_an_empty_secret_says_how_to_store_the_value(secrets):
    secrets.put_secret_value(SecretId="jada/postgres-url", SecretString="  ")
    done = run_task(sys.executable, "-c", SHOW)
    assert done.returncode == 78
    assert "holds no text: store JADA_POSTGRES_URL's value in it" in done.stderr


def test_without_secret_ids_the_command_runs_unchanged(aws):
    done = run_task(sys.executable, "-c", SHOW)
    assert done.returncode == 0 and done.stdout == "None None\n"


def test_no_command_is_a_usage_error():
    done = run_task()
    assert done.returncode == 2 and "JADA_ANTHROPIC_API_KEY_SECRET_ID" in done.stderr
