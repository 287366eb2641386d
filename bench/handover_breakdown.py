"""Where a hand-over goes: the daemon workload of ``bench/agents.py`` (12 tasks x one CALL_S model call, the
real dagster-daemon, the repository's dagster.yaml), then each session run's own Dagster events and queue
timestamps, split into the steps between one session's last answer and the next one's first model call:

- last answer (the attempt's end) → the run's RUN_SUCCESS: the run worker winding down;
- a run's RUN_SUCCESS → the next queued run's RUN_STARTING: Dagster's run queue releasing the freed slot
  (``dequeue_interval_seconds``);
- RUN_STARTING → RUN_START: the code server launching a fresh run worker (Python, Dagster, the code
  location);
- RUN_START → ``mark_running`` (the op took its lease) → the first model call (the Anthropic SDK import the
  warm-up thread started, the client, the request).

    .venv/bin/python bench/handover_breakdown.py [CALL_S]     # default 5; keep it short on a shared machine
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents as workload  # bench/agents.py, beside this file

from jada_pipelines.agents.jobs import TASK_ID_TAG, agent_session_job
from jada_pipelines.agents.queue import open_queue

EVENTS = {
    "starting": DagsterEventType.RUN_STARTING,
    "start": DagsterEventType.RUN_START,
    "success": DagsterEventType.RUN_SUCCESS,
}


def _figures(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):5.2f} s, max {max(values):5.2f} s (n={len(values)})"


def main() -> None:
    call_s = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    with tempfile.TemporaryDirectory(prefix="jada-bench-handover-") as scratch:
        workload.bench_daemon_workload(12, call_s, Path(scratch))  # sets DAGSTER_HOME and JADA_DATA_DIR
        print_breakdown()


def print_breakdown() -> None:
    """The steps of the daemon workload that just ran (its DAGSTER_HOME and JADA_DATA_DIR still set); also
    called by bench/handover_side_by_side.py for the tree that has this file."""
    attempts = {a.task_id: a for a in open_queue().attempts(since=0)}
    runs = []
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records(filters=dg.RunsFilter(job_name=agent_session_job.name)):
            run_id = record.dagster_run.run_id
            at = {}
            for name, kind in EVENTS.items():
                found = instance.get_records_for_run(run_id, of_type=kind).records
                at[name] = found[0].event_log_entry.timestamp if found else None
            runs.append((at, attempts[record.dagster_run.tags[TASK_ID_TAG]]))
    runs = [(at, a) for at, a in runs if None not in at.values() and a.run_started_at and a.first_call_at]
    ends = sorted(at["success"] for at, _ in runs)
    # Runs that started after some slot freed: the hand-overs (the first wave started from an empty daemon).
    later = [(at, a) for at, a in runs if at["starting"] > ends[0]]
    print("where the hand-over goes (each step's median and max over the session runs):")
    steps = {
        "last answer -> RUN_SUCCESS": [at["success"] - a.ended_at for at, a in runs],
        "a freed slot -> next RUN_STARTING": [
            at["starting"] - max(e for e in ends if e <= at["starting"]) for at, _ in later
        ],
        "RUN_STARTING -> RUN_START (new run worker)": [at["start"] - at["starting"] for at, _ in runs],
        "RUN_START -> mark_running": [a.run_started_at - at["start"] for at, a in runs],
        "mark_running -> first model call": [a.first_call_at - a.run_started_at for _, a in runs],
    }
    for name, values in steps.items():
        print(f"  {name:44} {_figures(values)}")


if __name__ == "__main__":
    main()
