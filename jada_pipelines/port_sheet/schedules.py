"""The port sheet syncs every 30 minutes, as the old cron job did."""

import dagster as dg

from jada_pipelines.port_sheet.jobs import port_sheet_sync_job

port_sheet_sync_schedule = dg.ScheduleDefinition(
    name="port_sheet_sync_schedule",
    job=port_sheet_sync_job,
    cron_schedule="*/30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: pull the port sheet (port_sheet_push_sensor then pushes agent status back).",
)
