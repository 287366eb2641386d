"""On ECS the watchdog is a scheduled task: its task definition registers, runs `jada health --alert` with the
secrets from Secrets Manager and its state file on the shared volume, and its EventBridge Scheduler schedule
(every 5 minutes, outside the daemon's service) is accepted by the Scheduler API (moto)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

ECS = Path(__file__).resolve().parent.parent / "deploy" / "ecs"


def test_the_watchdog_task_registers_and_runs_jada_health_alert_with_its_secrets_from_secrets_manager(aws):
    definition = json.loads((ECS / "task-definitions" / "watchdog.json").read_text())

    registered = boto3.client("ecs").register_task_definition(**definition)["taskDefinition"]

    (container,) = registered["containerDefinitions"]
    assert container["command"] == ["jada", "health", "--alert"]
    environment = {v["name"]: v["value"] for v in container["environment"]}
    secrets = {v["name"] for v in container["secrets"]}
    assert {"SLACK_WEBHOOK_URL", "JADA_POSTGRES_URL"} <= secrets
    assert not {"SLACK_WEBHOOK_URL", "JADA_POSTGRES_URL"} & set(environment)
    # A Fargate task forgets its disk: the state file lives on the EFS volume the daemon shares.
    (mount,) = container["mountPoints"]
    assert environment["JADA_WATCHDOG_STATE_FILE"].startswith(mount["containerPath"] + "/")


def test_the_schedule_runs_the_watchdog_task_every_five_minutes(aws):
    schedule = json.loads((ECS / "watchdog-schedule.json").read_text())
    client = boto3.client("scheduler")

    client.create_schedule(**schedule)
    stored = client.get_schedule(Name="jada-watchdog")

    assert stored["ScheduleExpression"] == "rate(5 minutes)" and stored["State"] == "ENABLED"
    parameters = stored["Target"]["EcsParameters"]
    assert parameters["TaskDefinitionArn"].endswith("task-definition/jada-watchdog")
    assert parameters["LaunchType"] == "FARGATE"
