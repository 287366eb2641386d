"""A power loss in the middle of five sessions: the daemon, its code server and every run worker die at once
(SIGKILL to the whole process group), the daemon is started again as systemd would, and with no person
involved the dead runs are failed as "run worker lost", their slots free up, and every task finishes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.run_workers import lost_run_workers, worker_state
from jada_pipelines.emulators.anthropic import AnthropicEmulator
from tests.fixtures.local_daemon import running_daemon, session_run_records

TASKS = 5
# The first sessions' model call outlasts the test: they are mid-call when the power goes.
HANGING_CALL_S = 600
DEADLINE_S = 240


def test_a_live_process_is_a_live_worker_and_a_missing_or_younger_one_is_not():
    assert worker_state(os.getpid(), time.time()) == (True, "")
    alive, why = worker_state(os.getpid(), 0.0)  # this process started after the "run" began: PID reused
    assert not alive and "machine restarted" in why
    assert worker_state(2**22 + 1, time.time())[0] is False  # above Linux's pid_max


def _wait_for(condition, deadline: float, what: str, log: Path) -> None:
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.mark.daemon
@pytest.mark.timeout(DEADLINE_S + 120)
def test_after_a_power_loss_mid_session_the_lost_runs_fail_and_every_task_finishes(tmp_path):
    home = Path(os.environ["DAGSTER_HOME"])
    emulator = AnthropicEmulator(delay_s=HANGING_CALL_S)
    env = {
        "ANTHROPIC_BASE_URL": emulator.start(),
        "ANTHROPIC_API_KEY": "sk-ant-emulator-test-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
    }
    queue = open_queue()
    for i in range(TASKS):
        queue.enqueue(f"task-{i}", f"Task {i}", max_attempts=2)
    deadline = time.monotonic() + DEADLINE_S
    log = tmp_path / "daemon.log"
    try:
        with running_daemon(home, tmp_path, env) as daemon:
            _wait_for(
                lambda: (
                    queue.stats().depth_by_status["running"] == TASKS
                    and len(emulator.message_requests) == TASKS
                ),
                deadline,
                "five sessions in their first model call",
                log,
            )
            os.killpg(daemon.pid, signal.SIGKILL)  # the power goes: daemon, code server, run workers
            daemon.wait()
        with dg.DagsterInstance.get() as instance:
            dead_runs = {record.dagster_run.run_id for record in session_run_records(instance)}
            assert len(dead_runs) == TASKS
            assert {w.run_id for w in lost_run_workers(instance)} == dead_runs
        emulator.delay_s = 0.2
        (tmp_path / "after").mkdir()
        log = tmp_path / "after" / "daemon.log"
        with running_daemon(home, tmp_path / "after", env):
            _wait_for(
                lambda: queue.stats().depth_by_status["done"] == TASKS, deadline, "every task done", log
            )
    finally:
        emulator.stop()
    assert {(t.status, t.attempt) for t in queue.list()} == {("done", 2)}
    with dg.DagsterInstance.get() as instance:
        for run_id in dead_runs:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
            (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert "run worker was lost" in failure.message
    lost = [a for a in queue.attempts(since=0) if a.attempt == 1]
    assert {a.outcome for a in lost} == {"lost"}
