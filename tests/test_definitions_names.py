"""The names people and alerts refer to (assets, checks, jobs, schedules, sensors, resource keys) are pinned:
renaming one silently breaks a saved UI link, a Slack search, a cron runbook or a stored sensor cursor, so
a rename must be deliberate and show up here."""

from __future__ import annotations

from jada_pipelines.definitions import defs

ASSETS = ["agent_task_queue", "port_sheet_rows", "port_sheet_status", "port_sheet_tasks"]
CHECKS = [
    "agent_task_queue:backlog",
    "agent_task_queue:daemon_heartbeat",
    "agent_task_queue:dead_letters",
    "agent_task_queue:sandbox",
    "agent_task_queue:sessions_starting",
    "agent_task_queue:turn_cap_rate",
    "port_sheet_rows:google_credentials_fresh",
    "port_sheet_rows:port_sheet_rows_valid",
    "port_sheet_status:port_sheet_status_columns_present",
    "port_sheet_status:port_sheet_status_rows_located",
]
# Dagster's own implicit jobs (__ASSET_JOB, the schedule's anonymous job) are left out: their names are not ours.
JOBS = ["agent_session_job", "agent_task_queue_job", "port_sheet_push_job", "port_sheet_sync_job"]
SCHEDULES = ["agent_task_queue_schedule", "port_sheet_sync_schedule"]
SENSORS = [
    "agent_task_sensor",
    "asset_check_alert_sensor",
    "cloudwatch_metrics_sensor",
    "freshness_alert_sensor",
    "lost_run_worker_sensor",
    "port_sheet_push_sensor",
    "run_failure_alert_sensor",
]
RESOURCES = ["claude", "google", "port_sheet", "port_sheet_store", "slack", "task_queue"]


def test_every_name_in_the_code_location_is_the_pinned_one():
    repo = defs.get_repository_def()

    assert sorted(key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()) == ASSETS
    assert sorted(key.to_user_string() for key in repo.asset_graph.asset_check_keys) == CHECKS
    assert sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__")) == JOBS
    assert sorted(schedule.name for schedule in repo.schedule_defs) == SCHEDULES
    assert sorted(sensor.name for sensor in repo.sensor_defs) == SENSORS
    assert sorted(defs.resources) == RESOURCES
