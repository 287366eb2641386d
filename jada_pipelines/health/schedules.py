"""The job and schedule that grade the agent task queue."""

import dagster as dg

from jada_pipelines.health.assets import agent_task_queue

# A named job, so the schedule's runs show a target in the UI (not __anonymous_asset_job_…).
agent_task_queue_job = dg.define_asset_job(
    "agent_task_queue_job",
    selection=[agent_task_queue],
    description="Grades the agent task queue (backlog, dead letters, turn-cap rate, daemon, sessions starting, "
    "sandbox) with its checks; run by agent_task_queue_schedule every 5 minutes.",
)

agent_task_queue_schedule = dg.ScheduleDefinition(
    name="agent_task_queue_schedule",
    job=agent_task_queue_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Grades the agent task queue every 5 minutes, so a backlog or a dead letter is seen within minutes.",
)
