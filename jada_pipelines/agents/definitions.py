"""Agent tasks: the session job, the sensor that feeds it from the queue, and the two resources."""

import dagster as dg

from jada_pipelines.agents.jobs import agent_session_job
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import agent_task_sensor, lost_run_worker_sensor

defs = dg.Definitions(
    jobs=[agent_session_job],
    sensors=[agent_task_sensor, lost_run_worker_sensor],
    resources={"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()},
)
