"""The schedule that grades the agent task queue."""

import dagster as dg

from jada_pipelines.health.assets import agent_task_queue

agent_task_queue_schedule = dg.ScheduleDefinition(
    name="agent_task_queue_schedule",
    target=agent_task_queue,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Grades the agent task queue every 5 minutes, so a backlog or a dead letter is seen within minutes.",
)
