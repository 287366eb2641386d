"""Runs whose worker process is gone: found by PID, failed in Dagster, so their slots and tasks come back.
(``sensors.lost_run_worker_sensor`` does it every 15 seconds; ``jada health`` reports what is left.)

Why this exists: Dagster's run monitoring only watches a started run through
``RunLauncher.check_run_worker_health``, and the ``DefaultRunLauncher`` (one process per run, spawned by the
code server) does not implement it (``supports_check_run_worker_health`` is False in Dagster 1.13). While the
code server lives it fails the runs of workers that die; but after a power loss or a SIGKILL of the whole
process group nothing is left to notice, and the dead runs stay ``STARTED`` forever, holding the
``jada/agent-session`` tag slots, so no later session ever starts.

Every run worker the code server starts logs the engine event "Started process for run (pid: N)" with the
PID in its metadata before the run can reach ``STARTED``. A worker is live when a process with that PID
exists *and* started no later than that event: after a reboot the PID may belong to some new process, and
the new process started after the event was written. The check is only meaningful on the host that spawns the
workers, which for the default launcher is the code server's host, where sensors are evaluated too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import dagster as dg

STARTED_PROCESS_PREFIX = "Started process for run (pid:"
# /proc start times are in clock ticks (1/100 s on Linux); allow for rounding and a slow event write.
CLOCK_SLACK_S = 1.0
LOST_WORKER_MESSAGE = (
    "The run worker was lost: its process (pid {pid}) no longer exists{why}, so this run can never finish. "
    "It was marked failed so its concurrency slot is freed; agent tasks go back to the queue for their next "
    "attempt."
)


@dataclass(frozen=True)
class RunWorker:
    run_id: str
    job_name: str
    pid: int
    started_at: float  # when the worker logged its "Started process" event
    alive: bool
    why: str  # why it is considered dead ("" when alive)


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None where /proc is not available."""
    boot = _boot_time()
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may hold spaces and ')': the fields we need follow the last ')'.
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _is_zombie(pid: int) -> bool:
    # A killed process whose parent died too stays a zombie until PID 1 reaps it, and a container's PID 1
    # may never do so: it still answers signal 0, but it is not running anything.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def worker_state(pid: int, started_at: float) -> tuple[bool, str]:
    """(alive, why-dead) for a worker that logged ``started_at`` with PID ``pid``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, ""
    except PermissionError:
        pass  # a process we may not signal exists; fall through to its start time
    if _is_zombie(pid):
        return False, " (only its zombie is left)"
    began = process_start_time(pid)
    if began is not None and began > started_at + CLOCK_SLACK_S:
        return False, f" (pid {pid} now belongs to a process started after the run: the machine restarted)"
    return True, ""


def _worker_event(instance: dg.DagsterInstance, run_id: str):
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50).records
    for record in records:
        entry = record.event_log_entry
        if entry.message.startswith(STARTED_PROCESS_PREFIX):
            return entry
    return None


def started_run_workers(
    instance: dg.DagsterInstance, *, job_names: set[str] | None = None
) -> list[RunWorker]:
    """Every ``STARTED`` run (of ``job_names``, when given) whose worker logged its PID, with its liveness.
    Runs with no such event (executed in-process) are not judged, nor is any run under another launcher:
    ECS and Kubernetes workers log a PID too, but of a process on another machine, which Dagster's own run
    monitoring checks."""
    from dagster._core.launcher import DefaultRunLauncher

    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    workers = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if job_names is not None and run.job_name not in job_names:
            continue
        entry = _worker_event(instance, run.run_id)
        if entry is None or entry.dagster_event is None:
            continue
        metadata = entry.dagster_event.engine_event_data.metadata
        raw_pid = metadata.get("pid")
        try:
            pid = int(raw_pid.value if raw_pid is not None else "")
        except ValueError:
            continue
        alive, why = worker_state(pid, entry.timestamp)
        workers.append(RunWorker(run.run_id, run.job_name, pid, entry.timestamp, alive, why))
    return workers


def lost_run_workers(instance: dg.DagsterInstance, *, job_names: set[str] | None = None) -> list[RunWorker]:
    return [worker for worker in started_run_workers(instance, job_names=job_names) if not worker.alive]


def fail_lost_runs(instance: dg.DagsterInstance, *, job_names: set[str] | None = None) -> list[RunWorker]:
    """Mark every started run whose worker is gone as failed, saying so; returns those runs."""
    failed = []
    for worker in lost_run_workers(instance, job_names=job_names):
        run = instance.get_run_by_id(worker.run_id)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue  # it ended on its own between the two reads
        instance.report_run_failed(run, LOST_WORKER_MESSAGE.format(pid=worker.pid, why=worker.why))
        failed.append(worker)
    return failed


def describe(workers: list[RunWorker]) -> str:
    return "; ".join(f"{w.job_name} run {w.run_id} (pid {w.pid})" for w in workers)


def with_lost_workers(finding, workers: list[RunWorker]):
    """The ``daemon_heartbeat`` finding, made an ERROR naming every started run whose worker is gone: a
    daemon that beats while such runs hold the session slots is not healthy."""
    lost = [worker for worker in workers if not worker.alive]
    if not lost:
        return finding
    description = (
        f"{len(lost)} run(s) show as started but their run worker is gone: {describe(lost)}. "
        "lost_run_worker_sensor fails them within a minute while the daemon runs; if they stay, check that "
        "the daemon and its sensors are running."
    )
    if finding.severity != "OK":
        description = f"{finding.description} {description}"
    metadata = {**finding.metadata, "lost_run_workers": [w.run_id for w in lost]}
    return replace(finding, severity="ERROR", description=description, metadata=metadata)
