"""``agent_task_sensor``: reconcile finished runs with the queue, then claim work for free session slots.

The cap of 5 sessions holds in two places: the queue's claim counts live leases inside its transaction, and
dagster.yaml limits runs tagged ``jada/agent-session`` to 5 (so runs launched from the UI count too).
"""

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.agents.jobs import (
    ATTEMPT_TAG,
    SESSION_OP,
    TASK_ID_TAG,
    agent_session_job,
    max_runtime_tag,
)
from jada_pipelines.agents.queue import LEASED, Lease, QueueStats, TaskQueue
from jada_pipelines.agents.resources import TaskQueueResource
from jada_pipelines.agents.runner import require_api_credentials, session_max_seconds
from jada_pipelines.agents.sandbox import sandbox_status

# The claim's lease covers the wait in Dagster's run queue and the run worker's start; the run then
# heartbeats a shorter session lease. A claim whose run never starts comes back after this long.
DISPATCH_LEASE_SECONDS = 900.0
SENSOR_WORKER = "agent_task_sensor"
# Runs in these states will never record an outcome for their attempt.
ENDED_RUN_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.SUCCESS)


def sensor_interval_seconds() -> int:
    # Read when definitions load (a sensor's interval is part of its definition); only tests lower it.
    return settings.env_int("JADA_AGENT_SENSOR_INTERVAL_SECONDS", 30)


def run_request_for(lease: Lease, *, max_runtime: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(
        # The attempt is in the key: a re-queued task must get a new run, a repeated tick must not.
        run_key=f"task:{lease.task_id}:attempt:{lease.attempt}",
        run_config={"ops": {SESSION_OP: {"config": {"task_id": lease.task_id, "lease_token": lease.token}}}},
        tags={
            TASK_ID_TAG: lease.task_id,
            ATTEMPT_TAG: str(lease.attempt),
            **({"dagster/max_runtime": max_runtime} if max_runtime else {}),
        },
    )


def why_no_session_can_run() -> str | None:
    """A sentence naming the fix when every session would fail before its first model call (no API key, no
    sandbox, a malformed setting, a default backend of Claude Code that cannot start): the sensor then claims
    nothing, so no attempt is spent. (A task that names Claude Code itself on a worker that cannot run it is
    claimed, and parked as failed with the same sentence before any model call.)"""
    from jada_pipelines.agents.resources import backend_from_env, max_cost_from_env

    try:
        require_api_credentials()
        session_max_seconds()
        max_cost_from_env()
        if backend_from_env() == "claude-code":
            from jada_pipelines.agents.claude_code import check_cli

            check_cli()
    except settings.ConfigError as exc:
        return str(exc)
    return sandbox_status().problem


def _run_for(instance: dg.DagsterInstance, task_id: str, attempt: int):
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=agent_session_job.name, tags={TASK_ID_TAG: task_id, ATTEMPT_TAG: str(attempt)}
        ),
        limit=1,
    )
    return runs[0] if runs else None


def reconcile(queue: TaskQueue, instance: dg.DagsterInstance) -> list[str]:
    """Tasks whose run ended (failed, cancelled, or crashed out) while still holding their lease go back to the
    queue with the next attempt, or to dead letters. Returns one line per task moved."""
    moved = []
    for status in LEASED:
        for task in queue.list(status=status, limit=1000):
            run = _run_for(instance, task.id, task.attempt)
            if run is None or run.status not in ENDED_RUN_STATUSES:
                continue  # not launched yet, or still going; an orphaned claim comes back when its lease expires
            token = run.run_config["ops"][SESSION_OP]["config"]["lease_token"]
            lease = Lease(task.id, token, task.attempt, task.lease_expires_at or 0.0, task)
            error = f"run {run.run_id} ended {run.status.value} before the session recorded an outcome"
            new_status = queue.fail(lease, error=error, retryable=True, outcome="lost")
            if new_status is not None:
                moved.append(f"{task.id} attempt {task.attempt} → {new_status}")
    return moved


def claim_for_free_slots(queue: TaskQueue, max_live: int = settings.MAX_CONCURRENT_SESSIONS) -> list[Lease]:
    leases = []
    while len(leases) < max_live:
        lease = queue.claim(worker=SENSOR_WORKER, lease_seconds=DISPATCH_LEASE_SECONDS, max_live=max_live)
        if lease is None:
            break
        leases.append(lease)
    return leases


def idle_reason(stats: QueueStats, moved: list[str]) -> str:
    waiting = stats.depth_by_status["queued"] + stats.depth_by_status["incomplete"]
    if stats.live_sessions >= settings.MAX_CONCURRENT_SESSIONS:
        reason = f"All {settings.MAX_CONCURRENT_SESSIONS} session slots are busy; {waiting} tasks wait for a free slot."
    elif waiting:
        reason = f"{waiting} tasks are waiting, but none is due yet (they are backing off after a transient error)."
    else:
        reason = f"No agent task is waiting; {stats.live_sessions} sessions are running."
    return reason + (f" Tasks whose run ended without an outcome: {'; '.join(moved)}." if moved else "")


# job_name rather than job=: binding the job object makes Dagster 1.13 copy it with owners=[] when it attaches
# the Definitions' resources, which logs a BetaWarning on every load of the code location.
@dg.sensor(
    job_name=agent_session_job.name,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one agent_session_job run per queued task, never more than 5 sessions at once.",
)
def agent_task_sensor(context: dg.SensorEvaluationContext, task_queue: TaskQueueResource):
    queue = task_queue.open()
    moved = reconcile(queue, context.instance)
    for line in moved:
        context.log.info(f"Run ended without an outcome: {line}.")
    blocked = why_no_session_can_run()
    if blocked:
        return dg.SkipReason(f"No task was claimed: {blocked}")
    leases = claim_for_free_slots(queue)
    if not leases:
        return dg.SkipReason(idle_reason(queue.stats(), moved))
    max_runtime = max_runtime_tag(session_max_seconds())
    return dg.SensorResult(run_requests=[run_request_for(lease, max_runtime=max_runtime) for lease in leases])
