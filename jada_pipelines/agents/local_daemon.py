"""Run the real ``dagster-daemon`` on a scratch DAGSTER_HOME, for the concurrency test and the benchmark.

The home gets a link to the repository's instance/dagster.yaml (so the 5-session tag limit under test is the one in
force) and a workspace.yaml that loads the whole code location. The daemon runs in its own process group so
stopping it also ends its code server and any run worker still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from jada_pipelines.settings import AGENT_SESSION_TAG

REPO = Path(__file__).resolve().parents[2]
# The instance configuration `make dev`, `make demo` and the daemon tests use: each DAGSTER_HOME links to it.
INSTANCE_CONFIG = REPO / "instance" / "dagster.yaml"
STOP_TIMEOUT_S = 30


def prepare_home(home: Path, workdir: Path) -> Path:
    """Link dagster.yaml into ``home`` and write a workspace.yaml in ``workdir``; returns the workspace path."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_symlink():  # a restarted daemon reuses its home
        (home / "dagster.yaml").symlink_to(INSTANCE_CONFIG)
    workspace = workdir / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: jada_pipelines.definitions\n"
        f"      attribute: defs\n      working_directory: {REPO}\n"
    )
    return workspace


@contextlib.contextmanager
def running_daemon(home: Path, workdir: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` with ``env`` added to ours and DAGSTER_HOME=``home``; its log is workdir/daemon.log."""
    workspace = prepare_home(home, workdir)
    with (workdir / "daemon.log").open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=workdir,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)  # the daemon shuts its threads down cleanly on SIGTERM
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def session_run_records(instance: dg.DagsterInstance):
    return instance.get_run_records(filters=dg.RunsFilter(tags={AGENT_SESSION_TAG: "1"}))


def ended_session_run_records(instance: dg.DagsterInstance, *, deadline: float):
    """The session runs, once each has an end time (the last ones may still be writing their end events)."""
    records = session_run_records(instance)
    while any(record.end_time is None for record in records) and time.monotonic() < deadline:
        time.sleep(0.5)
        records = session_run_records(instance)
    return records


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """Sweep line over (start, end) intervals; an end at the same instant as a start is counted first."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = live = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak
