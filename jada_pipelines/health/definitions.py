"""Health: the agent_task_queue asset, its checks and schedule, and the CloudWatch metrics sensor."""

import dagster as dg

from jada_pipelines.health.assets import agent_task_queue, agent_task_queue_schedule
from jada_pipelines.health.metrics_definitions import defs as metrics_defs

defs = dg.Definitions.merge(
    dg.Definitions(assets=[agent_task_queue], schedules=[agent_task_queue_schedule]),
    metrics_defs,
)
