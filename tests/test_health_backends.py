"""`jada health` shows each session backend's sessions and failures over 24 h, and the Claude Code backend's
install: whether the claude-code extra is there and the version of the CLI its wheel bundles, read from the
wheel's files (nothing is run, nothing is fetched)."""

from __future__ import annotations

import importlib.util
import json
import time
from importlib import metadata
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.cli import main


@pytest.fixture
def healthy(google_token_file, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-audit")
    with dg.DagsterInstance.get() as instance:
        for name in instance.get_required_daemon_types():
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), name, None, None))
        yield instance


def backends(capsys) -> dict:
    main(["health", "--json"])
    return json.loads(capsys.readouterr().out)["sections"]["backends"]


def session(queue, task_id: str, backend: str | None, ending: str) -> None:
    # Each new task outranks those the earlier endings left claimable (incomplete, re-queued).
    queue.enqueue(task_id, "port the service", backend=backend, priority=len(queue.list(limit=100)))
    lease = queue.claim(worker="test", lease_seconds=60)
    assert lease.task.id == task_id and queue.mark_running(lease, run_id=f"run-{task_id}")
    if ending in ("done", "incomplete"):
        queue.complete(lease, outcome=ending, turns=3, cost_usd=0.01, summary=None)
    else:
        queue.fail(lease, error="overloaded", retryable=True, outcome=ending)


def test_sessions_and_failures_are_counted_per_backend_and_a_claim_that_never_started_is_not(healthy, capsys):
    queue = open_queue()
    session(queue, "m1", None, "done")  # JADA_AGENT_BACKEND: messages
    session(queue, "m2", "messages", "transient")
    session(queue, "c1", "claude-code", "incomplete")
    session(queue, "c2", "claude-code", "lost")
    queue.enqueue("withdrawn", "x", backend="claude-code", priority=100)
    assert queue.claim(worker="test", lease_seconds=60).task.id == "withdrawn"
    assert queue.cancel("withdrawn")  # claimed, cancelled before its run started

    section = backends(capsys)

    assert section["by_backend"] == {
        "messages": {"sessions": 2, "failures": 1},
        "claude-code": {"sessions": 2, "failures": 1},
    }
    assert section["default"] == "messages"
    assert section["summary"].startswith(
        "messages (default): 2 sessions, 1 failed; claude-code: 2 sessions, 1 failed in 24 h"
    )


def test_the_bundled_cli_version_is_read_from_the_installed_wheel(healthy, capsys):
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None:
        pytest.fail("the claude-code extra is part of the dev install (make .venv/.installed)")
    wheel = Path(next(iter(spec.submodule_search_locations))) / "_bundled"
    version = (wheel / "claude.version").read_text().split()[0]

    section = backends(capsys)

    assert section["claude_code"] == {
        "installed": True,
        "sdk_version": metadata.version("claude-agent-sdk"),
        "cli_version": version,
    }
    assert f"Claude Code CLI {version} (claude-agent-sdk " in section["summary"]


def test_without_the_extra_the_section_says_not_installed(healthy, capsys, monkeypatch):
    real_version = metadata.version

    def without_the_sdk(name):
        if name == "claude-agent-sdk":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(metadata, "version", without_the_sdk)
    section = backends(capsys)
    assert section["claude_code"] == {"installed": False, "sdk_version": None, "cli_version": "not installed"}
    assert section["summary"].endswith("Claude Code: not installed (the claude-code extra)")
