"""Health: the agent_task_queue asset, its checks and schedule, and the CloudWatch metrics sensor."""

import dagster as dg

from jada_pipelines.health.assets import agent_task_queue
from jada_pipelines.health.schedules import agent_task_queue_job, agent_task_queue_schedule
from jada_pipelines.health.sensors import cloudwatch_metrics_sensor

defs = dg.Definitions(
    assets=[agent_task_queue],
    jobs=[agent_task_queue_job],
    schedules=[agent_task_queue_schedule],
    sensors=[cloudwatch_metrics_sensor],
)
