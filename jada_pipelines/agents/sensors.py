"""The agents domain's sensors.

``agent_task_sensor``: reconcile finished runs with the queue, then claim work for free session slots.

The cap of 5 sessions holds in Dagster: dagster.yaml limits runs tagged ``jada/agent-session`` to 5 (so runs
launched from the UI count too). While tasks wait, the sensor keeps up to ``JADA_AGENT_CLAIM_AHEAD`` claims
beyond the slots (default 2) as runs waiting QUEUED in Dagster's run queue: the tag limit releases one the
moment a slot frees, so no sensor tick sits between a freed slot and the next launch. The queue's claim
counts live leases (claims and sessions) inside its transaction against 5 plus that margin. A claim waiting
in the run queue costs no attempt until its session starts, and its lease is extended while it waits; a
waiting claim whose task was cancelled (by an operator, or an emptied sheet cell) has its run cancelled.

``lost_run_worker_sensor``: fails started runs whose worker process is gone, so their slots and tasks come back
(how a lost worker is told from a live one: ``run_workers.py``).
"""

import time
from pathlib import Path

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.agents.bwrap_sandbox import sandbox_status
from jada_pipelines.agents.jobs import (
    ATTEMPT_TAG,
    SESSION_OP,
    TASK_ID_TAG,
    agent_session_job,
    max_runtime_tag,
)
from jada_pipelines.agents.queue import LEASED, Lease, QueueStats, Task, TaskQueue
from jada_pipelines.agents.resources import TaskQueueResource
from jada_pipelines.agents.run_workers import describe, fail_lost_runs
from jada_pipelines.agents.session import CLAUDE_CODE, require_api_credentials, session_max_seconds

# The claim's lease covers the run worker's start; the run then heartbeats a shorter session lease. While the
# run waits in Dagster's run queue, reconcile extends the claim, so a long wait never costs an attempt.
DISPATCH_LEASE_SECONDS = 900.0
SENSOR_WORKER = "agent_task_sensor"
# Tells a re-enqueued task's runs (after a queue reset, or a move to another backend) from the old ones.
NONCE_TAG = "jada/enqueue-nonce"
# Runs in these states will never record an outcome for their attempt.
ENDED_RUN_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.SUCCESS)
# Runs that have not reached their session yet: the claim must outlive the wait.
WAITING_RUN_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
)
# Tagged runs that hold, or will hold, one of Dagster's 5 session slots.
SLOT_HOLDING_STATUSES = [
    *WAITING_RUN_STATUSES,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def run_request_for(lease: Lease, *, max_runtime: str | None = None) -> dg.RunRequest:
    task = lease.task
    return dg.RunRequest(
        # The attempt is in the key, so a re-queued task gets a new run and a repeated tick does not; the
        # enqueue nonce keeps a reset queue's task:<id>:attempt:1 from matching a key the sensor already used.
        run_key=f"task:{lease.task_id}:{task.run_key_nonce}:attempt:{lease.attempt}",
        # The task id and attempt, not the lease token: run config is readable in the UI, and a copy of it
        # must not let a second run act for the lease. The worker looks the token up in the queue.
        run_config={"ops": {SESSION_OP: {"config": {"task_id": lease.task_id, "attempt": lease.attempt}}}},
        tags={
            TASK_ID_TAG: lease.task_id,
            ATTEMPT_TAG: str(lease.attempt),
            NONCE_TAG: task.run_key_nonce,
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
        settings.agent_claim_ahead()
        max_cost_from_env()
        if backend_from_env() == CLAUDE_CODE:
            from jada_pipelines.agents.claude_code_backend import check_cli

            check_cli()
    except settings.ConfigError as exc:
        return str(exc)
    return sandbox_status().problem


def _run_records_for(instance: dg.DagsterInstance, task: Task) -> list:
    """The runs of this task attempt; once the session started, only the run that owns it."""
    if task.status == "running" and task.run_id:
        record = instance.get_run_record_by_id(task.run_id)
        return [record] if record is not None else []
    tags = {TASK_ID_TAG: task.id, ATTEMPT_TAG: str(task.attempt), NONCE_TAG: task.run_key_nonce}
    return list(
        instance.get_run_records(filters=dg.RunsFilter(job_name=agent_session_job.name, tags=tags), limit=10)
    )


def reconcile(queue: TaskQueue, instance: dg.DagsterInstance, *, now: float | None = None) -> list[str]:
    """Tasks whose run ended (failed, cancelled, or crashed out) while still holding their lease go back to the
    queue with the next attempt, or to dead letters; a run that never started is not charged the attempt.
    Claims whose run still waits in Dagster's run queue get their lease extended. Returns one line per task
    moved."""
    now = time.time() if now is None else now
    moved = []
    for status in LEASED:
        for task in queue.list(status=status, limit=1000):
            records = _run_records_for(instance, task)
            if not records:
                continue  # not launched yet; an orphaned claim comes back, uncharged, when its lease expires
            statuses = [record.dagster_run.status for record in records]
            if task.status == "dispatched" and any(s in WAITING_RUN_STATUSES for s in statuses):
                lease = queue.lease_for(task.id, task.attempt)
                if lease is not None and lease.expires_at - now < DISPATCH_LEASE_SECONDS / 2:
                    queue.heartbeat(lease, lease_seconds=DISPATCH_LEASE_SECONDS)
                continue
            if not all(s in ENDED_RUN_STATUSES for s in statuses):
                continue  # still going
            lease = queue.lease_for(task.id, task.attempt)
            if lease is None:
                continue  # the session recorded its outcome between the two reads
            started = any(record.start_time is not None for record in records)
            run = records[0].dagster_run
            error = f"run {run.run_id} ended {run.status.value} before the session recorded an outcome"
            if not started:
                error += " (it never started, so the attempt is not charged)"
            new_status = queue.fail(
                lease,
                error=error,
                retryable=True,
                outcome="lost",
                charge_attempt=started,
                handoff=handoff_left_by(task, error) if started else None,
            )
            if new_status is not None:
                moved.append(f"{task.id} attempt {task.attempt} → {new_status}")
    return moved


def handoff_left_by(task: Task, error: str) -> dict | None:
    """What the transcript of a run that ended without an outcome shows (a killed worker, a run cancelled by
    Dagster's max_runtime), when this process can read it; else None, and the task keeps its handoff."""
    from jada_pipelines.agents.handoff import handoff_from_transcript
    from jada_pipelines.agents.session import default_workdir, transcript_path

    workdir = Path(task.workdir) if task.workdir else default_workdir(task.id)
    reason = f"The previous attempt's {error}."
    return handoff_from_transcript(transcript_path(task.id, task.attempt), reason=reason, workdir=workdir)


def cancel_withdrawn_claims(queue: TaskQueue, instance: dg.DagsterInstance) -> list[str]:
    """Cancel session runs still QUEUED in Dagster whose claim is gone (the task was cancelled, superseded,
    or its sheet cell emptied), so they never take a slot; returns the cancelled run ids. A run the run
    queue dequeues in the meantime refuses to start its session (jobs.refusal_text)."""
    cancelled = []
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=agent_session_job.name,
            tags={settings.AGENT_SESSION_TAG: "1"},
            statuses=[dg.DagsterRunStatus.QUEUED],
        ),
        limit=100,
    )
    for record in records:
        run = record.dagster_run
        task = queue.get(run.tags.get(TASK_ID_TAG, ""))
        claimed = (
            task is not None
            and task.status == "dispatched"
            and str(task.attempt) == run.tags.get(ATTEMPT_TAG)
            and task.run_key_nonce == run.tags.get(NONCE_TAG)
        )
        if not claimed:
            instance.run_coordinator.cancel_run(run.run_id)
            cancelled.append(run.run_id)
    return cancelled


def dagster_room(instance: dg.DagsterInstance, limit: int = settings.MAX_CONCURRENT_SESSIONS) -> int:
    """Session slots Dagster's tag limit still has free (plus the claim-ahead margin when ``limit`` adds it):
    a run cancelled while its command hangs, or a run whose worker died, holds its slot in Dagster after the
    queue let go of its lease, and a claim waiting QUEUED holds its place in line."""
    taken = instance.get_runs_count(
        filters=dg.RunsFilter(tags={settings.AGENT_SESSION_TAG: "1"}, statuses=SLOT_HOLDING_STATUSES)
    )
    return max(limit - taken, 0)


def claim_for_free_slots(
    queue: TaskQueue, max_live: int = settings.MAX_CONCURRENT_SESSIONS, *, room: int | None = None
) -> list[Lease]:
    """Claim up to ``room`` tasks (the free slots in Dagster), never more than ``max_live`` leases at once."""
    leases = []
    while len(leases) < (max_live if room is None else min(room, max_live)):
        lease = queue.claim(worker=SENSOR_WORKER, lease_seconds=DISPATCH_LEASE_SECONDS, max_live=max_live)
        if lease is None:
            break
        leases.append(lease)
    return leases


def idle_reason(
    stats: QueueStats, moved: list[str], room: int = settings.MAX_CONCURRENT_SESSIONS, ahead: int = 0
) -> str:
    waiting = stats.depth_by_status["queued"] + stats.depth_by_status["incomplete"]
    if room <= 0 and stats.live_sessions < settings.MAX_CONCURRENT_SESSIONS:
        reason = (
            f"Dagster's limit of {settings.MAX_CONCURRENT_SESSIONS} jada/agent-session runs is full, although "
            f"the queue holds only {stats.live_sessions} leases (runs cancelled or lost but not ended yet); "
            f"{waiting} tasks wait."
        )
    elif stats.live_sessions >= settings.MAX_CONCURRENT_SESSIONS:
        reason = f"All {settings.MAX_CONCURRENT_SESSIONS} session slots are busy; {waiting} tasks wait for a free slot."
        if ahead:
            reason += (
                f" {stats.live_sessions - settings.MAX_CONCURRENT_SESSIONS} more are claimed ahead "
                f"(JADA_AGENT_CLAIM_AHEAD={ahead}): Dagster's run queue starts them as slots free."
            )
    elif waiting:
        reason = _not_due(stats.depth_by_status["incomplete"], stats.depth_by_status["queued"])
    else:
        reason = f"No agent task is waiting; {stats.live_sessions} sessions are running."
    return reason + (f" Tasks whose run ended without an outcome: {'; '.join(moved)}." if moved else "")


def _not_due(incomplete: int, queued: int) -> str:
    """Why waiting tasks were not claimed when slots are free: none is due yet, and what each waits out."""
    parts = []
    if incomplete:
        parts.append(
            f"{'1 task is' if incomplete == 1 else f'{incomplete} tasks are'} waiting out the continuation delay "
            "after reaching the turn cap (JADA_AGENT_CONTINUE_DELAY_SECONDS)"
        )
    if queued:
        parts.append(
            f"{'1 task is' if queued == 1 else f'{queued} tasks are'} backing off after an attempt that failed or was lost"
        )
    return "No task is due yet: " + "; ".join(parts) + "."


# job_name rather than job=: binding the job object makes Dagster 1.13 copy it with owners=[] when it attaches
# the Definitions' resources, which logs a BetaWarning on every load of the code location.
@dg.sensor(
    job_name=agent_session_job.name,
    minimum_interval_seconds=settings.agent_sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 s (JADA_AGENT_SENSOR_INTERVAL_SECONDS): claims queued tasks and starts one "
    "agent_session_job run per task, never more than 5 sessions at once; claims nothing while "
    "ANTHROPIC_API_KEY is missing or the sandbox is unusable.",
)
def agent_task_sensor(context: dg.SensorEvaluationContext, task_queue: TaskQueueResource):
    queue = task_queue.open()
    moved = reconcile(queue, context.instance)
    for line in moved:
        context.log.info(f"Run ended without an outcome: {line}.")
    for run_id in cancel_withdrawn_claims(queue, context.instance):
        context.log.info(f"Cancelled queued run {run_id}: its task was withdrawn before the run started.")
    blocked = why_no_session_can_run()
    if blocked:
        return dg.SkipReason(f"No task was claimed: {blocked}")
    room = dagster_room(context.instance)
    leases = claim_for_free_slots(queue, room=room)
    ahead = settings.agent_claim_ahead()
    # Claims ahead only while the queue's own sessions fill the slots: behind slots that runs the queue let go
    # of still hold (cancelled while a command hangs, a dead worker), a claim would only wait.
    if (
        ahead
        and sum(len(queue.list(status=s, limit=1000)) for s in LEASED) >= settings.MAX_CONCURRENT_SESSIONS
    ):
        limit = settings.MAX_CONCURRENT_SESSIONS + ahead
        extra = dagster_room(context.instance, limit) - len(leases)
        leases += claim_for_free_slots(queue, limit, room=extra)
    if not leases:
        return dg.SkipReason(idle_reason(queue.stats(), moved, room, ahead))
    max_runtime = max_runtime_tag(session_max_seconds())
    return dg.SensorResult(run_requests=[run_request_for(lease, max_runtime=max_runtime) for lease in leases])


@dg.sensor(
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails started runs whose run worker process no longer exists (after a reboot or a kill), "
    "so their concurrency slots free up and their agent tasks are retried.",
)
def lost_run_worker_sensor(context: dg.SensorEvaluationContext):
    job_names = set(context.repository_def.job_names) if context.repository_def else None
    failed = fail_lost_runs(context.instance, job_names=job_names)
    if not failed:
        return dg.SkipReason("Every started run of this code location has a live run worker.")
    for worker in failed:
        context.log.warning(f"Marked run {worker.run_id} failed: its worker (pid {worker.pid}) is gone.")
    return dg.SkipReason(f"Marked {len(failed)} run(s) failed whose worker was lost: {describe(failed)}.")
