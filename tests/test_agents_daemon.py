"""With the real dagster-daemon, the repository's dagster.yaml and the whole code location, a backlog of 12
tasks against a slow Messages API all finish, and no more than 5 Claude sessions ever run at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.emulators.anthropic import AnthropicEmulator
from jada_pipelines.settings import AGENT_SESSION_TAG, MAX_CONCURRENT_SESSIONS

REPO = Path(__file__).resolve().parents[1]
TASKS = 12
# Each model call takes this long, so a session lasts a few seconds and sessions overlap.
CALL_DELAY_S = 0.5
DEADLINE_S = 300


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """Sweep line over (start, end) intervals; an end at the same instant as a start is counted first."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = live = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


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
    """``dagster-daemon run`` on the test's DAGSTER_HOME, with the repository's dagster.yaml linked in."""
    home = Path(os.environ["DAGSTER_HOME"])
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: jada_pipelines.definitions\n"
        f"      attribute: defs\n      working_directory: {REPO}\n"
    )
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": slow_emulator.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-emulator-test-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
    }
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its code server and run workers share the group, so all can be stopped
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # Run workers that outlived the daemon would keep the emulator busy; end the whole group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def _session_runs(instance: dg.DagsterInstance):
    return instance.get_run_records(filters=dg.RunsFilter(tags={AGENT_SESSION_TAG: "1"}))


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
        records = _session_runs(instance)
        while any(record.end_time is None for record in records) and time.monotonic() < deadline:
            time.sleep(0.5)  # the last runs are writing their end events
            records = _session_runs(instance)
    assert len(records) == TASKS
    assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
    assert {record.dagster_run.tags["dagster/max_retries"] for record in records} == {"0"}
    peak = peak_concurrency([(record.start_time, record.end_time) for record in records])
    assert peak <= MAX_CONCURRENT_SESSIONS
    # Sessions did run side by side, so the limit above was really exercised.
    assert peak >= 2
