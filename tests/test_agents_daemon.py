"""With the real dagster-daemon, the repository's dagster.yaml and the whole code location, a backlog of 12
tasks against a slow Messages API all finish, and no more than 5 Claude sessions ever run at once, while the
sensor keeps claims ahead in Dagster's run queue; those claims cost no attempt, and cancelling a task whose
claim waits there cancels its queued run before it takes a slot."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.jobs import TASK_ID_TAG
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.emulators.anthropic import AnthropicEmulator, tool_use
from jada_pipelines.settings import MAX_CONCURRENT_SESSIONS
from tests.fixtures.local_daemon import (
    ended_session_run_records,
    peak_concurrency,
    running_daemon,
    session_run_records,
)

TASKS = 12
# Each model call takes this long, so sessions last a few seconds and overlap.
CALL_DELAY_S = 0.5
# Generous: on a loaded 2-core machine each run worker takes several seconds just to start.
DEADLINE_S = 300


def test_the_sweep_line_counts_overlaps_and_not_touching_intervals():
    assert peak_concurrency([(0, 2), (1, 3), (2, 4)]) == 2
    assert peak_concurrency([(0, 10), (1, 2), (3, 4), (3.5, 5)]) == 3


@pytest.fixture
def slow_emulator():
    emulator = AnthropicEmulator(delay_s=CALL_DELAY_S)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def daemon(tmp_path, slow_emulator):
    env = {
        "ANTHROPIC_BASE_URL": slow_emulator.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-emulator-test-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
    }
    with running_daemon(Path(os.environ["DAGSTER_HOME"]), tmp_path, env) as process:
        yield process


@pytest.mark.daemon
@pytest.mark.timeout(DEADLINE_S + 60)
def test_twelve_queued_tasks_all_finish_with_at_most_five_sessions_at_once(daemon, tmp_path):
    queue = open_queue()
    for i in range(TASKS):
        queue.enqueue(f"task-{i:02}", f"Demo task number {i}")

    deadline = time.monotonic() + DEADLINE_S
    most_leases = 0
    while time.monotonic() < deadline and daemon.poll() is None:
        stats = queue.stats()
        most_leases = max(most_leases, stats.live_sessions)
        if stats.depth_by_status["done"] == TASKS:
            break
        time.sleep(1)
    log = (tmp_path / "daemon.log").read_text()
    assert daemon.poll() is None, f"dagster-daemon exited early:\n{log[-3000:]}"
    statuses = {task.id: task.status for task in queue.list()}
    assert set(statuses.values()) == {"done"}, f"{statuses}\n{log[-3000:]}"
    # Claims were made ahead of the slots (5 + JADA_AGENT_CLAIM_AHEAD=2 leases at once, seen at least once)...
    assert MAX_CONCURRENT_SESSIONS < most_leases <= MAX_CONCURRENT_SESSIONS + 2
    # ...and waiting for a slot in Dagster's run queue cost none of them an attempt.
    assert {task.attempt for task in queue.list()} == {1}
    assert sorted(a.task_id for a in queue.attempts(since=0)) == sorted(t.id for t in queue.list())

    with dg.DagsterInstance.get() as instance:
        records = ended_session_run_records(instance, deadline=deadline)
    assert len(records) == TASKS
    assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
    assert {record.dagster_run.tags["dagster/max_retries"] for record in records} == {"0"}
    peak = peak_concurrency([(record.start_time, record.end_time) for record in records])
    # Never 6, with 7 claims at a time; and sessions did run side by side, so the limit was exercised.
    assert 2 <= peak <= MAX_CONCURRENT_SESSIONS


HOLDERS = 5
HOLD_S = 30


@pytest.mark.daemon
@pytest.mark.timeout(DEADLINE_S + 60)
def test_cancelling_a_task_whose_claim_waits_in_dagsters_run_queue_cancels_its_run_before_it_starts(
    daemon, tmp_path, slow_emulator
):
    queue = open_queue()
    # Five sessions hold the slots for a while (their first call runs `sleep`); the next two tasks are claimed
    # ahead, their runs QUEUED in Dagster behind the tag limit.
    slow_emulator.script(*[tool_use("bash", {"command": f"sleep {HOLD_S}"}) for _ in range(HOLDERS)])
    for i in range(HOLDERS):
        queue.enqueue(f"holder-{i}", f"Hold a slot {i}", priority=2)
    queue.enqueue("cancel-me", "Never run this", priority=1)
    queue.enqueue("runs-later", "Run this after a slot frees", priority=0)
    deadline = time.monotonic() + DEADLINE_S
    log = tmp_path / "daemon.log"

    with dg.DagsterInstance.get() as instance:

        def run_of(task_id: str):
            records = [
                r for r in session_run_records(instance) if r.dagster_run.tags.get(TASK_ID_TAG) == task_id
            ]
            return records[0].dagster_run if records else None

        def queued_run_of(task_id: str):
            run = run_of(task_id)
            return run if run is not None and run.status == dg.DagsterRunStatus.QUEUED else None

        waiting = wait_until(lambda: queued_run_of("cancel-me"), deadline, "cancel-me's run QUEUED", log)
        assert queue.get("cancel-me").status == "dispatched"
        assert queue.cancel("cancel-me")
        wait_until(
            lambda: instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.CANCELED,
            deadline,
            "cancel-me's queued run cancelled",
            log,
        )
        wait_until(
            lambda: queue.stats().depth_by_status["done"] == HOLDERS + 1,
            deadline,
            "the other tasks done",
            log,
        )
        records = ended_session_run_records(instance, deadline=deadline)
        cancelled = instance.get_run_record_by_id(waiting.run_id)
    assert cancelled.start_time is None  # its worker never started
    assert not any("Never run this" in json.dumps(r.body) for r in slow_emulator.message_requests)
    task = queue.get("cancel-me")
    assert (task.status, task.attempt) == ("cancelled", 1)
    assert queue.get("runs-later").status == "done" and queue.get("runs-later").attempt == 1
    started = [(r.start_time, r.end_time) for r in records if r.start_time is not None]
    assert len(started) == HOLDERS + 1 and peak_concurrency(started) <= MAX_CONCURRENT_SESSIONS


def wait_until(condition, deadline: float, what: str, log: Path):
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


CLAUDE_CODE_SESSIONS = 5


@pytest.fixture
def gathering_emulator():
    """Holds the first model calls until five wait at once: five sessions are then surely in flight together."""
    emulator = AnthropicEmulator(
        delay_s=CALL_DELAY_S, gather=CLAUDE_CODE_SESSIONS, gather_timeout_s=DEADLINE_S
    )
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.mark.daemon
@pytest.mark.claude_code
@pytest.mark.timeout(DEADLINE_S + 60)
def test_five_claude_code_sessions_run_at_once_through_the_daemon(tmp_path, gathering_emulator):
    env = {
        "ANTHROPIC_BASE_URL": gathering_emulator.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-emulator-test-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
        "JADA_AGENT_BACKEND": "claude-code",
    }
    queue = open_queue()
    for i in range(CLAUDE_CODE_SESSIONS):
        queue.enqueue(f"cc-{i}", f"Demo task number {i}")
    with running_daemon(Path(os.environ["DAGSTER_HOME"]), tmp_path, env) as daemon:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and daemon.poll() is None:
            if queue.stats().depth_by_status["done"] == CLAUDE_CODE_SESSIONS:
                break
            time.sleep(1)
        log = (tmp_path / "daemon.log").read_text()
        assert daemon.poll() is None, f"dagster-daemon exited early:\n{log[-3000:]}"
    statuses = {task.id: (task.status, task.last_error) for task in queue.list()}
    assert {status for status, _ in statuses.values()} == {"done"}, f"{statuses}\n{log[-3000:]}"
    assert gathering_emulator.gathered_at_once == CLAUDE_CODE_SESSIONS
    # Every model call came from the Claude Code CLI, through the key proxy.
    agents = {r.headers.get("user-agent", "").split("/")[0] for r in gathering_emulator.message_requests}
    assert agents == {"claude-cli"}
    with dg.DagsterInstance.get() as instance:
        records = ended_session_run_records(instance, deadline=deadline)
    assert len(records) == CLAUDE_CODE_SESSIONS
    assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
    assert (
        peak_concurrency([(record.start_time, record.end_time) for record in records]) == CLAUDE_CODE_SESSIONS
    )
