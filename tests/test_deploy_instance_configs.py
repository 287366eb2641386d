"""Every dagster.yaml under deploy/ is a valid Dagster instance: the schema, the storage and launcher classes'
own config, Postgres storage from an environment variable, and the cap of 5 agent sessions."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import boto3
import pytest
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef

from jada_pipelines.settings import AGENT_SESSION_TAG, MAX_CONCURRENT_SESSIONS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTANCE_DIRS = sorted(path.parent for path in DEPLOY.rglob("dagster.yaml"))
TASK_DEFINITION = "jada-run"


@pytest.fixture(autouse=True)
def instance_variables(monkeypatch):
    monkeypatch.setenv("JADA_POSTGRES_URL", "postgresql://jada:secret@127.0.0.1:5432/dagster")
    monkeypatch.setenv("JADA_ECS_RUN_TASK_DEFINITION", TASK_DEFINITION)


def test_deploy_holds_the_vm_and_the_ecs_instances():
    assert [path.relative_to(DEPLOY).as_posix() for path in INSTANCE_DIRS] == [".", "ecs"]


@pytest.mark.parametrize("instance_dir", INSTANCE_DIRS, ids=lambda path: path.relative_to(DEPLOY).as_posix())
def test_the_instance_config_and_its_classes_configs_validate(instance_dir):
    config, custom_instance_class = dagster_instance_config(str(instance_dir))
    ref = InstanceRef.from_dir(str(instance_dir))

    assert custom_instance_class is None
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "JADA_POSTGRES_URL"}}}
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres",
        "DagsterPostgresStorage",
    )
    for data in (ref.storage_data, ref.run_launcher_data):
        klass = getattr(importlib.import_module(data.module_name), data.class_name)
        # What rehydrate() checks, without connecting to Postgres or ECS.
        result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
        assert result.success, f"{data.class_name} config in {instance_dir}/dagster.yaml: {result.errors}"


@pytest.mark.parametrize("instance_dir", INSTANCE_DIRS, ids=lambda path: path.relative_to(DEPLOY).as_posix())
def test_agent_sessions_are_capped_at_five_and_never_resumed_by_dagster(instance_dir):
    config, _ = dagster_instance_config(str(instance_dir))

    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": AGENT_SESSION_TAG, "limit": MAX_CONCURRENT_SESSIONS} in limits
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0


def _task_definition(name: str) -> dict:
    return json.loads((DEPLOY / "ecs" / "task-definitions" / f"{name}.json").read_text())


def _variables(container: dict, kind: str) -> set[str]:
    return {variable["name"] for variable in container.get(kind, [])}


@pytest.mark.parametrize("name", ["run", "daemon", "webserver"])
def test_each_ecs_task_definition_registers_and_holds_no_secret_in_its_environment(aws, name):
    definition = _task_definition(name)
    # botocore checks every field's name and type before sending; moto stores it.
    registered = boto3.client("ecs").register_task_definition(**definition)["taskDefinition"]

    (container,) = registered["containerDefinitions"]
    assert not {"JADA_POSTGRES_URL", "ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL"} & _variables(
        container, "environment"
    )
    if name != "run":  # ECS resolves theirs at start; the run task reads its own (below)
        assert "JADA_POSTGRES_URL" in _variables(container, "secrets")


def test_the_run_task_runs_sessions_in_uid_mode_and_reads_its_two_secrets_itself():
    """Fargate allows no user namespaces: the model's commands run as slot uids (docs/agents.md, Sandbox). ECS
    injects no secret into the run task: its entrypoint reads them from Secrets Manager with the task role
    (tests/test_run_task.py), so they are in no environment ECS starts a process with."""
    (run,) = _task_definition("run")["containerDefinitions"]
    assert "secrets" not in run
    environment = {v["name"]: v["value"] for v in run["environment"]}
    assert environment["JADA_AGENT_SANDBOX"] == "uid"
    assert environment["JADA_AGENT_UID_RANGE"] == "61000-61015"
    assert environment["JADA_ANTHROPIC_API_KEY_SECRET_ID"] == "jada/anthropic-api-key"
    assert environment["JADA_POSTGRES_URL_SECRET_ID"] == "jada/postgres-url"
    assert run["entryPoint"] == ["python", "-m", "jada_pipelines.run_task"]
    assert importlib.util.find_spec("jada_pipelines.run_task") is not None
    # Root, to switch each command to its slot uid; an init process reaps what the slot uids leave.
    assert run["user"] == "0" and run["linuxParameters"]["initProcessEnabled"] is True


def test_the_run_task_role_reaches_only_its_two_secrets_the_google_token_and_the_queue_table():
    policy = json.loads((DEPLOY / "ecs" / "iam" / "jada-run-task-role.json").read_text())
    grants = {
        statement["Sid"]: (statement["Action"], statement["Resource"]) for statement in policy["Statement"]
    }
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    assert grants["ReadTheRunsSecretsAtStart"] == (
        "secretsmanager:GetSecretValue",
        [
            "arn:aws:secretsmanager:REGION:ACCOUNT_ID:secret:jada/anthropic-api-key-??????",
            "arn:aws:secretsmanager:REGION:ACCOUNT_ID:secret:jada/postgres-url-??????",
        ],
    )
    actions, resources = grants["TheTaskQueue"]
    assert all(action.startswith("dynamodb:") for action in actions)
    assert not {"dynamodb:DeleteTable", "dynamodb:CreateTable", "dynamodb:*"} & set(actions)
    assert resources == [
        "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/jada-tasks",
        "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/jada-tasks/index/*",
    ]
    # Port-sheet syncs run in the same task definition and refresh the Google token.
    actions, resource = grants["TheGoogleTokenOfPortSheetSyncs"]
    assert resource == "arn:aws:secretsmanager:REGION:ACCOUNT_ID:secret:jada/google-token-??????"
    assert set(grants) == {"ReadTheRunsSecretsAtStart", "TheTaskQueue", "TheGoogleTokenOfPortSheetSyncs"}
    # Every name in the policy is the one the task definitions use.
    (daemon,) = _task_definition("daemon")["containerDefinitions"]
    daemon_env = {v["name"]: v["value"] for v in daemon["environment"]}
    assert daemon_env["JADA_TASK_QUEUE_URL"] == "dynamodb://jada-tasks"
    assert daemon_env["JADA_GOOGLE_TOKEN_SECRET_ID"] == "jada/google-token"
    assert _task_definition("run")["taskRoleArn"].endswith(":role/jada-run")


def test_the_daemon_task_sets_every_variable_the_launcher_passes_on_to_runs():
    (daemon,) = _task_definition("daemon")["containerDefinitions"]
    config, _ = dagster_instance_config(str(DEPLOY / "ecs"))
    passed_on = set(config["run_launcher"]["config"]["env_vars"])

    assert passed_on <= _variables(daemon, "environment")
    assert daemon["command"][:2] == ["dagster-daemon", "run"]
    assert "JADA_ECS_RUN_TASK_DEFINITION" in _variables(daemon, "environment")


def test_the_ecs_instance_launches_runs_with_dagster_aws_against_an_ecs_api(aws):
    """The launcher is built for real: it looks the run task definition up (moto's ECS) and finds "run" in it."""
    from dagster_aws.ecs import EcsRunLauncher

    boto3.client("ecs").register_task_definition(**_task_definition("run"))
    ref = InstanceRef.from_dir(str(DEPLOY / "ecs"))

    launcher = ref.run_launcher_data.rehydrate(as_type=EcsRunLauncher)

    assert launcher.task_definition.endswith(f"task-definition/{TASK_DEFINITION}:1")
    assert launcher.container_name == "run"
    # Values in env_vars travel in the RunTask request, visible in the ECS console: never a secret.
    assert not {"JADA_POSTGRES_URL", "ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL"} & set(launcher.env_vars)
    assert launcher.secrets_tags == []
