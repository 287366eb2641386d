"""With the real dagster-daemon, the repository's dagster.yaml and the whole code location, a backlog of 12
tasks against a slow Messages API all finish, and no more than 5 Claude sessions ever run at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.local_daemon import ended_session_run_records, peak_concurrency, running_daemon
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.emulators.anthropic import AnthropicEmulator
from jada_pipelines.settings import MAX_CONCURRENT_SESSIONS

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
    while time.monotonic() < deadline and daemon.poll() is None:
        if queue.stats().depth_by_status["done"] == TASKS:
            break
        time.sleep(1)
    log = (tmp_path / "daemon.log").read_text()
    assert daemon.poll() is None, f"dagster-daemon exited early:\n{log[-3000:]}"
    statuses = {task.id: task.status for task in queue.list()}
    assert set(statuses.values()) == {"done"}, f"{statuses}\n{log[-3000:]}"

    with dg.DagsterInstance.get() as instance:
        records = ended_session_run_records(instance, deadline=deadline)
    assert len(records) == TASKS
    assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
    assert {record.dagster_run.tags["dagster/max_retries"] for record in records} == {"0"}
    peak = peak_concurrency([(record.start_time, record.end_time) for record in records])
    assert peak <= MAX_CONCURRENT_SESSIONS
    # Sessions did run side by side, so the limit above was really exercised.
    assert peak >= 2


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
