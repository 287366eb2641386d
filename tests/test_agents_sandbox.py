"""Hostile commands, sent as the model sends them (scripted in the Anthropic emulator) through real
agent_session_job runs with the real bwrap, are stopped by the sandbox. Each test asserts on the tool results
that went back to the API, on the transcript, and on the host afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.jobs import agent_session_job
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import agent_task_sensor, run_request_for
from jada_pipelines.agents.session import default_workdir, transcript_path
from jada_pipelines.emulators.anthropic import end_turn, tool_use
from jada_pipelines.health.audit import build_audit
from jada_pipelines.health.cli import code_location_automation
from tests.fixtures.processes import host_processes_matching
from tests.fixtures.sessions import SECRETS, run_tool_commands

RESOURCES = {"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def secrets(monkeypatch, anthropic_emulator, tmp_path):
    """The run worker's environment holds every secret the product uses, and a real Google token file."""
    token_file = tmp_path / "google-token.json"
    token_file.write_text(json.dumps({"refresh_token": "1//sandbox-token"}))
    token_file.chmod(0o600)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JADA_GOOGLE_TOKEN_FILE", str(token_file))
    return {
        **SECRETS,
        "ANTHROPIC_API_KEY": os.environ["ANTHROPIC_API_KEY"],
        "google_refresh_token": "1//sandbox-token",
        "token_file": str(token_file),
    }


def run_commands(instance, emulator, *commands: str, task_id: str = "hostile"):
    """One real agent_session_job run whose model sends ``commands`` to bash, one per turn, then ends.
    Returns (the run's result, the tool result texts sent back to the API, the transcript's text)."""
    return run_tool_commands(
        instance,
        emulator,
        commands,
        tool_use_for=lambda command: tool_use("bash", {"command": command}),
        task_id=task_id,
    )


def session_metadata(result) -> dict:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_no_secret_and_no_host_file_is_readable_from_a_command(instance, anthropic_emulator, secrets):
    data_dir = Path(os.environ["JADA_DATA_DIR"])
    dagster_home = os.environ["DAGSTER_HOME"]
    open_queue()  # creates tasks.db before the session looks for it
    result, results, transcript = run_commands(
        instance,
        anthropic_emulator,
        # The run worker's environment through the parent, then every process the command can see.
        r"tr '\0' '\n' < /proc/$PPID/environ; for f in /proc/[0-9]*/environ; do tr '\0' '\n' < $f; done; env",
        f"cat {secrets['token_file']}; head -c 300 {data_dir}/tasks.db; ls {dagster_home}; ls /root /home; "
        f"cat {REPO}/pyproject.toml; cat {REPO}/.env",
        f"ls /proc | grep -cE '^[0-9]+$'; ls -d /proc/{os.getpid()}",
        "cd / && ls",
        # No capability and no nested user namespace, although the worker here runs as root.
        "grep CapEff /proc/self/status; unshare -U true 2>/dev/null && echo nested || echo no-nested; id -u",
    )
    assert result.success
    environ, files, processes, root, privileges = results
    assert privileges == "CapEff:\t0000000000000000\nno-nested\n1000\n"
    for name, value in secrets.items():
        if name == "token_file":
            continue
        for text in (*results, transcript):
            assert value not in text, f"{name} leaked into a tool result or the transcript"
    assert "ANTHROPIC_API_KEY" not in environ and "HOME=" + str(default_workdir("hostile")) in environ
    for path in (secrets["token_file"], f"{data_dir}/tasks.db", dagster_home, "/root", "/home", str(REPO)):
        assert f"{path}" in files and "No such file or directory" in files
    assert "SQLite format" not in files and "[project]" not in files
    # Only the sandbox's own processes are visible, never the worker's.
    count, _ = processes.split("\n", 1)
    assert int(count) <= 4 and f"'/proc/{os.getpid()}': No such file" in processes
    assert set(root.split("\n")[:-2]) <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "lib32",
        "libx32",
        "proc",
        "sbin",
        "tmp",
        "usr",
        str(default_workdir("hostile")).split("/")[1],
    }
    assert session_metadata(result)["sandbox"] == "bubblewrap, network none"


def test_the_data_directory_queue_and_transcripts_are_readable_by_their_owner_only(
    instance, anthropic_emulator, secrets
):
    result, _, _ = run_commands(instance, anthropic_emulator, "true")
    assert result.success
    data_dir = Path(os.environ["JADA_DATA_DIR"])
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (data_dir / "tasks.db").stat().st_mode & 0o777 == 0o600
    assert transcript_path("hostile", 1).stat().st_mode & 0o777 == 0o600


def test_writes_outside_the_working_directory_never_reach_the_host(instance, anthropic_emulator, secrets):
    mark = uuid.uuid4().hex
    data_dir = Path(os.environ["JADA_DATA_DIR"])
    open_queue()
    db_before = (data_dir / "tasks.db").stat().st_mtime_ns
    result, results, _ = run_commands(
        instance,
        anthropic_emulator,
        f"echo x > /tmp/escape-{mark}; cat /tmp/escape-{mark}",
        f"echo x > ../../escape-{mark}; echo x > {REPO}/escape-{mark}; echo x > /usr/escape-{mark}",
        f"ls -a {data_dir}; touch {data_dir}/tasks.db; rm -f {secrets['token_file']}; echo x > /escape-{mark}",
    )
    assert result.success
    assert results[0] == "x\n"  # the sandbox's private /tmp works, and is gone with it
    assert not Path(f"/tmp/escape-{mark}").exists()
    assert not (data_dir / f"escape-{mark}").exists() and not (REPO / f"escape-{mark}").exists()
    assert not Path(f"/usr/escape-{mark}").exists()
    assert "Read-only file system" in results[1] or "No such file or directory" in results[1]
    assert Path(secrets["token_file"]).exists()
    # Inside, the data directory is only the empty path down to the working directory, and read-only.
    assert results[2].split("\n")[:3] == [".", "..", "workdirs"] and "Read-only file system" in results[2]
    assert (data_dir / "tasks.db").read_bytes().startswith(b"SQLite format 3")
    assert (data_dir / "tasks.db").stat().st_mtime_ns >= db_before


def test_detached_and_endless_commands_end_by_their_deadline_and_leave_no_process(
    instance, anthropic_emulator, secrets, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_COMMAND_TIMEOUT_SECONDS", "2")
    mark = str(3000 + os.getpid() % 1000)  # sleep durations no other process on the host uses
    started = time.monotonic()
    result, results, transcript = run_commands(
        instance,
        anthropic_emulator,
        f"setsid sleep {mark}1 & echo started",  # holds the pipe
        f"setsid sleep {mark}2 > /dev/null 2>&1 < /dev/null & echo started",  # lets go of it
        f"nohup sleep {mark}3 > /dev/null 2>&1 & disown; echo started",
        "sleep infinity",
        f"sleep {mark}4",
    )
    elapsed = time.monotonic() - started
    assert result.success
    assert results[:3] == ["started\n", "started\n", "started\n"]
    assert results[3].endswith("[killed after the 2 s command timeout]")
    assert results[4].endswith("[killed after the 2 s command timeout]")
    # Each call returns within a second or two of its deadline: two timeouts of 2 s, the rest at once.
    lines = [json.loads(line) for line in transcript.splitlines()]
    replies = [line["ts"] for line in lines if line["kind"] == "reply"]
    tool_results = [line["ts"] for line in lines if line["kind"] == "tool_result"]
    waits = [done - asked for asked, done in zip(replies, tool_results, strict=False)]
    assert all(wait < 1.5 for wait in waits[:3]), waits
    assert all(wait < 4.0 for wait in waits[3:]), waits
    assert elapsed < 30
    assert host_processes_matching(f"sleep {mark}") == []


def test_a_flood_of_output_is_capped_and_stopped(instance, anthropic_emulator, secrets, monkeypatch):
    monkeypatch.setenv("JADA_AGENT_MAX_OUTPUT_MB", "4")
    result, results, _ = run_commands(
        instance, anthropic_emulator, r"head -c 200000000 /dev/zero | tr '\0' a; echo never-reached"
    )
    assert result.success
    (flood,) = results
    assert len(flood) < 31_000
    assert "stopped: the command printed more than 4 MB (JADA_AGENT_MAX_OUTPUT_MB)" in flood
    assert "bytes of output cut" in flood and "never-reached" not in flood


def test_the_worker_memory_stays_flat_under_200_mb_of_output(tmp_path):
    """Peak RSS of a fresh interpreter that runs one 200 MB flood through the bash tool with a limit above it:
    every byte is read, and the worker keeps only the head and tail."""
    script = textwrap.dedent(
        f"""
        import resource
        from jada_pipelines.agents.tools import Toolbox
        box = Toolbox({str(tmp_path / "work")!r}, output_max_bytes=300 * 2**20, command_timeout_s=60)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = box.bash({{"command": "head -c 200000000 /dev/zero | tr '\\\\0' a"}})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(before, after, len(result.content), result.is_error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    before_kb, after_kb, length, is_error = done.stdout.split()
    assert is_error == "False" and int(length) < 31_000
    assert int(after_kb) - int(before_kb) < 20 * 1024, "the worker grew by more than 20 MB"


def test_a_loopback_service_of_the_host_is_not_reachable_unless_the_network_is_opted_in(
    instance, anthropic_emulator, secrets, monkeypatch
):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        probe = f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo connected || echo refused"
        result, results, _ = run_commands(instance, anthropic_emulator, probe)
        assert result.success and results == ["refused\n"]
        with pytest.raises(TimeoutError):
            server.accept()

        monkeypatch.setenv("JADA_AGENT_NETWORK", "host")
        result, results, _ = run_commands(instance, anthropic_emulator, probe, task_id="opted-in")
        assert results == ["connected\n"]
        assert session_metadata(result)["sandbox"] == "bubblewrap, network host"
        assert (
            "host's network"
            in build_audit(instance, now=time.time(), expected_running=code_location_automation)["sections"][
                "sandbox"
            ]["summary"]
        )


def test_ordinary_work_still_works(instance, anthropic_emulator, secrets):
    queue = open_queue()
    queue.enqueue("work", "Write a script and commit it.")
    anthropic_emulator.script(
        tool_use(
            "str_replace_based_edit_tool",
            {"command": "create", "path": "hello.py", "file_text": "print('hello from the sandbox')\n"},
        ),
        tool_use("bash", {"command": "python3 hello.py > out.txt && cat out.txt"}),
        tool_use(
            "bash",
            {"command": "git init -q . && git add -A && git commit -qm 'Add hello' && git log --oneline"},
        ),
        end_turn("Committed."),
    )
    request = run_request_for(queue.claim(worker="test", lease_seconds=600))
    result = agent_session_job.execute_in_process(
        run_config=request.run_config,
        tags={**agent_session_job.tags, **request.tags},
        instance=instance,
        resources=RESOURCES,
    )
    assert result.success and queue.get("work").status == "done"
    outputs = [
        r.body["messages"][-1]["content"][0]["content"] for r in anthropic_emulator.message_requests[1:]
    ]
    assert outputs[1] == "hello from the sandbox\n" and "Add hello" in outputs[2]
    workdir = default_workdir("work")
    assert (workdir / "out.txt").read_text() == "hello from the sandbox\n"
    assert (workdir / ".git").is_dir()


def test_a_working_directory_over_its_limit_ends_the_session_as_failed_without_a_retry(
    instance, anthropic_emulator, secrets, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_WORKDIR_MAX_MB", "1")
    result, _, _ = run_commands(instance, anthropic_emulator, "head -c 3000000 /dev/urandom > big.bin", "ls")
    assert not result.success
    failure = result.failure_data_for_node("agent_session").user_failure_data
    assert "ended by a limit" in failure.description and "JADA_AGENT_WORKDIR_MAX_MB=1" in failure.description
    assert failure.metadata["limit"].value == "workdir"
    assert len(anthropic_emulator.message_requests) == 1  # nothing more was asked of the model
    task = open_queue().get("hostile")
    assert task.status == "failed" and "JADA_AGENT_WORKDIR_MAX_MB" in task.last_error


def test_without_bubblewrap_the_sensor_claims_nothing_and_health_says_how_to_fix_it(
    instance, anthropic_emulator, monkeypatch, tmp_path
):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    queue = open_queue()
    queue.enqueue("t1", "x")
    skip = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert isinstance(skip, dg.SkipReason)
    assert "bubblewrap (bwrap) is not installed" in skip.skip_message
    assert "apt-get install bubblewrap" in skip.skip_message
    task = queue.get("t1")
    assert (task.status, task.attempt) == ("queued", 0)  # no attempt spent
    section = build_audit(instance, now=time.time(), expected_running=code_location_automation)["sections"][
        "sandbox"
    ]
    assert section["severity"] == "ERROR" and "apt-get install bubblewrap" in section["summary"]


def test_sandbox_off_runs_unconfined_and_says_so_everywhere(
    instance, anthropic_emulator, secrets, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_SANDBOX", "off")
    result, results, _ = run_commands(instance, anthropic_emulator, "ls -d /proc/1")
    assert result.success and results == ["/proc/1\n"]
    assert session_metadata(result)["sandbox"].startswith(
        "JADA_AGENT_SANDBOX=off: the model's commands run unconfined"
    )
    section = build_audit(instance, now=time.time(), expected_running=code_location_automation)["sections"][
        "sandbox"
    ]
    assert section["severity"] == "WARN" and "single-purpose VM" in section["summary"]
