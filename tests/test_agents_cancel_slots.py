"""Issue 10 item 3 through the real daemon: the sensor counts Dagster's session slots, not only the queue's
leases.

What Dagster 1.13 does with a cancel (observed with the real daemon and this code): ``cancel_run`` marks the run
CANCELING, then asks the code server over gRPC to interrupt the worker; the interrupt raises inside our op's
wait for the hung command, the run is CANCELED about a second later and the task goes back to the queue,
charged (its session had started). So a responsive worker holds its slot for a second only. The slot stays
held while the worker cannot act on the interrupt, as when it is stopped (SIGSTOP here; a paused VM or a
thrashing box in life); the gRPC request then blocks until the worker resumes or 60 s pass, the run staying
CANCELING. That is the window this test holds open: five sessions hung in a command, their workers stopped,
their runs cancelled (CANCELING) and their tasks cancelled in the queue (`jada task cancel`, so the queue
counts no lease), and three more tasks waiting. The sensor must claim nothing while Dagster's slots are full
(the old sensor claimed at once, and the claims waited in Dagster's run queue), and once the workers resume
and the runs end, every waiting task runs with one attempt, done."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.run_workers import started_run_workers
from jada_pipelines.emulators.anthropic import AnthropicEmulator, tool_use
from jada_pipelines.settings import MAX_CONCURRENT_SESSIONS
from tests.fixtures.local_daemon import running_daemon, session_run_records

HUNG = MAX_CONCURRENT_SESSIONS
WAITING = 3
DEADLINE_S = 300
FULL = f"Dagster's limit of {MAX_CONCURRENT_SESSIONS} jada/agent-session runs is full"


def _hung_commands(marker: str) -> list[int]:
    """PIDs of the hung commands (``sleep <marker>``), sandboxed or not."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"sleep") and marker.encode() in argv:
                pids.append(int(entry.name))
    return pids


def _sensor_skips(instance: dg.DagsterInstance, after: float) -> list[str]:
    """The skip reasons of agent_task_sensor's ticks since ``after``."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == "agent_task_sensor":
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            return [tick.skip_reason or "" for tick in ticks]
    return []


def _slot_holders(instance: dg.DagsterInstance) -> dict[str, str]:
    return {
        r.dagster_run.tags["jada/task-id"]: r.dagster_run.status.value for r in session_run_records(instance)
    }


def _cancel(instance: dg.DagsterInstance, run_id: str) -> None:
    with contextlib.suppress(Exception):  # the interrupt request may time out; the run is CANCELING already
        instance.run_coordinator.cancel_run(run_id)


def _wait_for(condition, deadline: float, what: str, log: Path) -> None:
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.mark.daemon
@pytest.mark.timeout(DEADLINE_S + 120)
def test_cancelled_runs_that_hold_dagsters_slots_stop_the_sensor_from_claiming(tmp_path):
    marker = f"{600 + random.random():.6f}"  # a duration only this test's commands use
    emulator = AnthropicEmulator(delay_s=0.1)
    emulator.script(*[tool_use("bash", {"command": f"sleep {marker}"}) for _ in range(HUNG)])
    env = {
        "ANTHROPIC_BASE_URL": emulator.start(),
        "ANTHROPIC_API_KEY": "sk-ant-emulator-test-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
        "JADA_AGENT_COMMAND_TIMEOUT_SECONDS": "3600",
    }
    queue = open_queue()
    hung = [f"hung-{i}" for i in range(HUNG)]
    waiting = [f"waiting-{i}" for i in range(WAITING)]
    for task_id in hung:
        queue.enqueue(task_id, f"Task {task_id}", max_attempts=2)
    deadline = time.monotonic() + DEADLINE_S
    log = tmp_path / "daemon.log"
    frozen: list[int] = []
    try:
        with (
            running_daemon(Path(os.environ["DAGSTER_HOME"]), tmp_path, env),
            dg.DagsterInstance.get() as instance,
        ):
            _wait_for(lambda: len(_hung_commands(marker)) == HUNG, deadline, "five hung commands", log)
            workers = started_run_workers(instance)
            assert len(workers) == HUNG
            for worker in workers:
                os.kill(worker.pid, signal.SIGSTOP)
                frozen.append(worker.pid)
            # Dagster's cancel marks the run CANCELING, then asks the code server to interrupt the worker; with
            # the worker stopped that request blocks (up to its 60 s gRPC timeout), so it is sent from threads.
            cancels = [
                threading.Thread(target=_cancel, args=(instance, worker.run_id), daemon=True)
                for worker in workers
            ]
            for thread in cancels:
                thread.start()
            _wait_for(
                lambda: set(_slot_holders(instance).values()) == {"CANCELING"},
                deadline,
                "runs CANCELING",
                log,
            )
            for task_id in hung:  # `jada task cancel`: the queue lets go of the lease at once
                assert queue.cancel(task_id)
            assert queue.stats().live_sessions == 0
            for task_id in waiting:
                queue.enqueue(task_id, f"Task {task_id}", max_attempts=2)
            enqueued_at = time.time()

            def refused_twice() -> bool:
                # Checked at every poll: no waiting task is claimed, no run of one waits in Dagster's queue.
                assert {queue.get(task_id).status for task_id in waiting} == {"queued"}
                assert set(_slot_holders(instance)) == set(hung)
                # Two ticks that saw the queue empty of leases and Dagster full, and claimed nothing.
                return sum(FULL in reason for reason in _sensor_skips(instance, enqueued_at)) >= 2

            _wait_for(refused_twice, deadline, "two sensor ticks that refused to claim", log)
            for pid in frozen:  # the workers act on the interrupt: the runs end, the slots come free
                os.kill(pid, signal.SIGCONT)
            frozen.clear()
            _wait_for(
                lambda: {queue.get(task_id).status for task_id in waiting} == {"done"},
                deadline,
                "every waiting task done",
                log,
            )
            runs = {
                r.dagster_run.tags["jada/task-id"]: r.dagster_run.status
                for r in session_run_records(instance)
            }
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        emulator.stop()
        for pid in _hung_commands(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert {queue.get(task_id).status for task_id in hung} == {"cancelled"}
    assert {runs[task_id] for task_id in hung} == {dg.DagsterRunStatus.CANCELED}
    # Each waiting task was claimed once, when its run could start at once: one attempt, done.
    attempts = [(a.task_id, a.attempt, a.outcome) for a in queue.attempts(since=0) if a.task_id in waiting]
    assert sorted(attempts) == [(task_id, 1, "done") for task_id in waiting]
