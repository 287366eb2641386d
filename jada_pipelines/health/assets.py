"""The ``agent_task_queue`` health asset and its checks (its schedule is in ``schedules.py``)."""

import time

import dagster as dg

from jada_pipelines.agents.bwrap_sandbox import sandbox_status
from jada_pipelines.agents.latency import dispatch_latencies, latency_metadata
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.health import grading, sessions_starting
from jada_pipelines.health.audit import daemon_finding, daemon_heartbeats

DAY_SECONDS = 24 * 3600

CHECK_DESCRIPTIONS = {
    "backlog": "Tasks waiting to be claimed, and how long the oldest has waited: WARN, then ERROR past a limit.",
    "dead_letters": "Tasks that ran out of attempts and need a person: ERROR when there is any.",
    "turn_cap_rate": "Share of sessions in the last 24 h that stopped at the turn cap.",
    "daemon_heartbeat": "Every daemon the instance needs (scheduler, sensors, run queue...) beat recently.",
    "sandbox": "Agent sessions can run sandboxed (bubblewrap usable): ERROR when none can, WARN when unconfined.",
    "sessions_starting": "Waiting tasks get sessions while slots are free, and every claim's run begins its "
    "session: ERROR names the likely cause (the daemon, the tag slots, a run started with no worker).",
}


@dg.asset(
    group_name="health",
    check_specs=[
        dg.AssetCheckSpec(name, asset="agent_task_queue", description=text)
        for name, text in CHECK_DESCRIPTIONS.items()
    ],
)
def agent_task_queue(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """How the agent work is doing: tasks waiting, live sessions, dead letters and turn-capped sessions.

    Each materialization records the queue's figures as metadata (plotted in the UI over time) and grades
    them in its checks; the alert sensor posts any check that fails.
    """

    now = time.time()
    thresholds = grading.Thresholds.from_env()
    queue = open_queue()
    stats = queue.stats(now=now)
    attempts = queue.attempts(since=now - DAY_SECONDS)
    heartbeats = daemon_heartbeats(context.instance)
    stale = sessions_starting.stale_daemons(heartbeats, now=now, thresholds=thresholds)
    findings = [
        grading.grade_backlog(stats, thresholds),
        grading.grade_dead_letters(stats),
        grading.grade_turn_cap(attempts, thresholds),
        # The heartbeats, and any run "started" whose worker is gone.
        daemon_finding(context.instance, now, thresholds),
        sessions_starting.grade(
            sessions_starting.gather(queue, context.instance, now=now, stale_daemons=stale), thresholds
        ),
        grading.grade_sandbox(sandbox_status()),
    ]
    return dg.MaterializeResult(
        metadata={
            **{f"depth_{status}": count for status, count in stats.depth_by_status.items()},
            "oldest_queued_minutes": round((stats.oldest_queued_age_s or 0.0) / 60, 1),
            "dead_letters": stats.dead_letters,
            "live_sessions": stats.live_sessions,
            # Median and p95 over 24 h of enqueue→claim, claim→run start and run start→first model call.
            **latency_metadata(dispatch_latencies(attempts)),
        },
        check_results=[_check_result(finding) for finding in findings],
    )


def _check_result(finding: grading.Finding) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=finding.name,
        passed=finding.severity == "OK",
        severity=dg.AssetCheckSeverity.ERROR if finding.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
        description=finding.description,
        metadata=finding.metadata,
    )
