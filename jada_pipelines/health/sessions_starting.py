"""Sessions that should run and do not: tasks waiting while slots are free, or claims whose run never began.

The queue and Dagster each hold half the picture: the queue knows which tasks wait and which claims are
``dispatched`` (claimed, run not started), Dagster knows each claim's run and which runs hold the
``jada/agent-session`` tag slots. ``gather`` reads both; ``grade`` (plain Python) says whether sessions are
starting and, when they are not, the likely cause, most specific first:

0. the configuration: no session can start at all (no Anthropic key, an unusable sandbox), so the sensor
   claims nothing on purpose; this is said at once, without waiting for a task to wait too long;
1. the daemon: no heartbeat, so no sensor claims and no run leaves Dagster's queue;
2. a run "started" with no worker: Dagster shows the claim's run STARTED, yet its session never began
   (the worker died, for example in a reboot), and the run holds a slot until someone fails it;
3. the tag slots: Dagster counts 5 session runs in progress, whatever the queue counts;
4. the run queue: the claim's run waits QUEUED although slots are free;
5. the sensor: ``agent_task_sensor`` is stopped, or claims nothing although tasks wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.agents.jobs import ATTEMPT_TAG, TASK_ID_TAG
from jada_pipelines.agents.sensors import why_no_session_can_run
from jada_pipelines.health import grading
from jada_pipelines.health.automation import stopped

SENSOR = "agent_task_sensor"
# Runs that hold a tag slot: Dagster's run queue counts launched runs that have not ended.
_SLOT_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    dispatched_for_s: float
    run_id: str | None
    run_status: str | None  # Dagster's status of the claim's run; None: no run yet


@dataclass(frozen=True)
class DispatchFacts:
    waits_s: list[float]  # how long each due, waiting task has waited since it became due
    live_sessions: int  # the queue's count
    claims: list[Claim]  # tasks in ``dispatched``
    slot_runs: list[str]  # Dagster's session runs in progress
    stale_daemons: list[str]
    sensor_stopped: bool
    running_sessions: int = 0  # the queue's sessions that started (live_sessions also counts claims)
    # Why no session can start (the sensor's own rule), or None: then it claims nothing on purpose.
    blocked: str | None = None


def stale_daemons(
    heartbeats: dict[str, float | None], *, now: float, thresholds: grading.Thresholds
) -> list[str]:
    return sorted(
        n for n, ts in heartbeats.items() if ts is None or now - ts > thresholds.daemon_stale_seconds
    )


def gather(queue, instance: dg.DagsterInstance, *, now: float, stale_daemons: list[str]) -> DispatchFacts:
    waits = [
        now - task.available_at
        for status in ("queued", "incomplete")
        for task in queue.list(status=status, limit=1000)
        if task.available_at <= now
    ]
    claims = []
    for task in queue.list(status="dispatched", limit=1000):
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={TASK_ID_TAG: task.id, ATTEMPT_TAG: str(task.attempt)}), limit=1
        )
        run = runs[0] if runs else None
        claims.append(
            Claim(
                task.id,
                task.attempt,
                now - task.updated_at,
                run.run_id if run else None,
                run.status.value if run else None,
            )
        )
    slot_runs = instance.get_runs(
        filters=dg.RunsFilter(tags={settings.AGENT_SESSION_TAG: "1"}, statuses=_SLOT_STATUSES)
    )
    stats = queue.stats(now=now)
    return DispatchFacts(
        waits_s=waits,
        live_sessions=stats.live_sessions,
        running_sessions=stats.running_sessions,
        claims=claims,
        slot_runs=[run.run_id for run in slot_runs],
        stale_daemons=stale_daemons,
        sensor_stopped=bool(stopped(instance, {SENSOR})),
        blocked=why_no_session_can_run(),
    )


def grade(facts: DispatchFacts, thresholds: grading.Thresholds) -> grading.Finding:
    cap = settings.MAX_CONCURRENT_SESSIONS
    longest = max(facts.waits_s, default=0.0)
    starved = longest > thresholds.dispatch_wait_seconds and facts.live_sessions < cap
    # A claim made ahead (JADA_AGENT_CLAIM_AHEAD) waits QUEUED while all 5 slots run the queue's sessions: in
    # line for the next free slot, not stuck.
    in_line = facts.running_sessions >= cap
    stuck = [
        c
        for c in facts.claims
        if c.dispatched_for_s > thresholds.dispatch_start_seconds
        and not (in_line and c.run_status == dg.DagsterRunStatus.QUEUED.value)
    ]
    metadata = {
        "waiting": len(facts.waits_s),
        "longest_wait_s": round(longest, 1),
        "live_sessions": facts.live_sessions,
        "dispatched": len(facts.claims),
        "dispatched_not_started": len(stuck),
        "slot_runs": len(facts.slot_runs),
    }
    if facts.blocked:
        # Never OK while sessions cannot start, and never the sensor's fault: it claims nothing on purpose.
        waiting = len(facts.waits_s) + len(facts.claims)
        return grading.Finding(
            "sessions_starting",
            "ERROR" if waiting else "WARN",
            f"Sessions cannot start: {facts.blocked} "
            + (
                f"{grading.plural(waiting, 'task')} waiting (longest {longest:.0f} s) will start once it is set."
                if waiting
                else "No task is waiting yet."
            ),
            {**metadata, "cause": "configuration"},
        )
    if not starved and not stuck:
        return grading.Finding(
            "sessions_starting",
            "OK",
            f"Sessions are starting: {len(facts.waits_s)} task(s) waiting (longest {longest:.0f} s), "
            f"{len(facts.claims)} claimed, {facts.live_sessions} of {cap} sessions live.",
            metadata,
        )
    symptom = []
    if starved:
        symptom.append(
            f"a task has waited {longest:.0f} s (limit {thresholds.dispatch_wait_seconds} s) while only "
            f"{facts.live_sessions} of {cap} sessions are live"
        )
    if stuck:
        worst = max(stuck, key=lambda c: c.dispatched_for_s)
        symptom.append(
            f"{len(stuck)} claimed task(s) have not started (task {worst.task_id} for {worst.dispatched_for_s:.0f} s, "
            f"limit {thresholds.dispatch_start_seconds} s)"
        )
    cause, fix = _cause(facts, stuck, cap)
    return grading.Finding(
        "sessions_starting",
        "ERROR",
        f"Sessions are not starting: {'; '.join(symptom)}. Likely cause: {cause} {fix}",
        {**metadata, "cause": cause.split(":")[0]},
    )


def _cause(facts: DispatchFacts, stuck: list[Claim], cap: int) -> tuple[str, str]:
    if facts.stale_daemons:
        return (
            f"the daemon: no recent heartbeat from {', '.join(facts.stale_daemons)}, so no sensor claims and no run "
            "leaves Dagster's queue.",
            "Start `dagster-daemon run` (systemctl start dagster-daemon) and read its log.",
        )
    orphans = [c for c in stuck if c.run_status == dg.DagsterRunStatus.STARTED.value]
    if orphans:
        runs = ", ".join(f"{c.run_id} (task {c.task_id})" for c in orphans)
        return (
            f'a run that is "started" with no worker: Dagster shows {runs} as STARTED, but the session never '
            "began, so its worker is gone (a reboot or a killed process) and the run holds a session slot.",
            "Terminate the run in the UI (or `dagster run delete` it) to free the slot; the task goes back to the queue.",
        )
    if len(facts.slot_runs) >= cap:
        return (
            f"the tag slots: Dagster counts {len(facts.slot_runs)} session runs in progress "
            f"({', '.join(facts.slot_runs)}) against the limit of {cap}, while the queue counts "
            f"{facts.live_sessions} live session(s).",
            "Open those runs in the UI; terminate any whose session has ended or whose worker is gone.",
        )
    queued = [c for c in stuck if c.run_status == dg.DagsterRunStatus.QUEUED.value]
    if queued:
        return (
            f"the run queue: run {queued[0].run_id} has waited QUEUED although session slots are free.",
            "Check the daemon's QUEUED_RUN_COORDINATOR log and dagster.yaml's concurrency settings.",
        )
    if facts.sensor_stopped:
        return (
            f"the sensor: {SENSOR} is stopped, so nothing claims the waiting tasks.",
            f"Start it in the UI (Automation → {SENSOR}).",
        )
    return (
        f"the sensor: {SENSOR} is running but its claims do not become runs.",
        f"Read its latest ticks in the UI (Automation → {SENSOR}).",
    )
