"""One contract, both session backends: the same tasks through real agent_session_job runs, with the Messages
loop (``messages``) and with the bundled Claude Code CLI in the sandbox (``claude-code``), both against the
Anthropic emulator. Only how a tool call is spelled differs (``bash`` vs Claude Code's ``Bash``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest

from jada_pipelines.agents.jobs import agent_session_job
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import agent_task_sensor
from jada_pipelines.agents.session import default_workdir
from jada_pipelines.emulators.anthropic import api_error, end_turn, tool_use
from tests.fixtures.anthropic import EMULATOR_API_KEY

RESOURCES = {"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()}
BACKENDS = [
    pytest.param("messages", id="messages"),
    pytest.param("claude-code", id="claude-code", marks=pytest.mark.claude_code),
]
# Enough tokens that one call costs more than the ceiling of the cost tests (claude-sonnet-5-5: $2 per M in).
EXPENSIVE = {
    "input_tokens": 400_000,
    "output_tokens": 10,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch, anthropic_emulator):
    monkeypatch.setenv("JADA_AGENT_BACKEND", request.param)
    return request.param


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def bash(backend: str, command: str, **kwargs):
    """A tool call of the backend's shell tool."""
    if backend == "claude-code":
        return tool_use("mcp__jada__bash", {"command": command}, **kwargs)  # our bash, served to the CLI
    return tool_use("bash", {"command": command}, **kwargs)


def write_file(backend: str, path: Path, content: str, **kwargs):
    """A tool call that writes a file: Claude Code's ``Write``, the Messages loop's text editor."""
    if backend == "claude-code":
        return tool_use("Write", {"file_path": str(path), "content": content}, **kwargs)
    return tool_use(
        "str_replace_based_edit_tool",
        {"command": "create", "path": path.name, "file_text": content},
        **kwargs,
    )


def credential(request) -> str | None:
    """The key a request reached the API with (the anthropic SDK sends a bearer token, the proxy x-api-key)."""
    return request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
        "Bearer "
    )


def run_next(instance):
    """One sensor tick and the run it asks for, executed in process; returns (result, metadata)."""
    (request,) = agent_task_sensor(
        dg.build_sensor_context(instance=instance, resources=RESOURCES)
    ).run_requests
    result = agent_session_job.execute_in_process(
        run_config=request.run_config,
        tags={**agent_session_job.tags, **request.tags},
        instance=instance,
        resources=RESOURCES,
        raise_on_error=False,
    )
    if result.success:
        (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        return result, output.event_specific_data.metadata
    return result, result.failure_data_for_node("agent_session").user_failure_data.metadata


def test_a_session_that_finishes_is_done_with_its_figures_in_metadata(backend, instance, anthropic_emulator):
    open_queue().enqueue("t1", "Write a greeting to hello.txt")
    anthropic_emulator.script(bash(backend, "echo hello > hello.txt && cat hello.txt"), end_turn("Wrote it."))
    result, metadata = run_next(instance)
    assert result.success
    assert metadata["backend"].value == backend
    assert (metadata["outcome"].value, metadata["turns"].value) == ("done", 2)
    assert (metadata["input_tokens"].value, metadata["output_tokens"].value) == (200, 40)
    assert (metadata["cache_write_tokens"].value, metadata["cache_read_tokens"].value) == (0, 0)
    assert metadata["cost_usd"].value > 0 and metadata["duration_s"].value > 0
    transcript = Path(metadata["transcript"].value)
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert lines[0]["kind"] == "start" and lines[-1]["kind"] == "outcome"
    assert oct(transcript.stat().st_mode & 0o777) == "0o600"
    task = open_queue().get("t1")
    assert (task.status, task.turns, task.summary) == ("done", 2, "Wrote it.")
    workdir = Path(metadata["transcript"].value).parents[2] / "workdirs" / "t1"
    assert (workdir / "hello.txt").read_text() == "hello\n"
    # The tool really ran and its output went back to the model, on every backend.
    assert "hello" in json.dumps(anthropic_emulator.message_requests[-1].body["messages"][-1])
    assert {credential(r) for r in anthropic_emulator.requests} == {EMULATOR_API_KEY}
    if backend == "claude-code":
        assert metadata["claude_code_session_id"].value == lines[-1]["session_id"]
        assert metadata["claude_code_version"].value == "2.1.332"
        assert metadata["continuation"].value == "fresh"
        assert all(r.body["stream"] is True for r in anthropic_emulator.requests)


def test_a_session_capped_at_3_turns_is_incomplete_and_attempt_2_finishes(
    backend, instance, anthropic_emulator
):
    open_queue().enqueue("t1", "A long job", max_turns=3)
    anthropic_emulator.script(*[bash(backend, f"echo step {i} >> log.txt") for i in (1, 2, 3)])
    if backend == "messages":  # the Messages loop asks for a JSON handoff after the cap
        anthropic_emulator.script(end_turn('{"done": ["steps 1-3"], "next_steps": ["step 4"]}'))
    result, metadata = run_next(instance)
    assert result.success
    assert (metadata["outcome"].value, metadata["turns"].value) == ("incomplete", 3)
    task = open_queue().get("t1")
    assert (task.status, task.attempt) == ("incomplete", 1)
    first_cost = task.cost_usd
    assert first_cost > 0

    anthropic_emulator.script(bash(backend, "echo step 4 >> log.txt"), end_turn("All four steps done."))
    result, metadata = run_next(instance)
    assert result.success
    assert (metadata["outcome"].value, metadata["turns"].value) == ("done", 2)
    task = open_queue().get("t1")
    assert (task.status, task.attempt, task.summary) == ("done", 2, "All four steps done.")
    # Each attempt's cost is its own (Claude Code's total_cost_usd counts the resumed session from its start):
    # attempt 2 made 2 calls against attempt 1's 3 or 4, and the task's total is the sum.
    assert 0 < metadata["cost_usd"].value < first_cost
    assert task.cost_usd == pytest.approx(first_cost + metadata["cost_usd"].value, rel=1e-3)
    workdir = Path(metadata["transcript"].value).parents[2] / "workdirs" / "t1"
    # Work of attempt 1 is kept (the Messages loop answers the call that hit the cap "not executed"; Claude
    # Code runs it before it stops).
    steps = (workdir / "log.txt").read_text().split()
    assert steps[:4] == ["step", "1", "step", "2"] and steps[-2:] == ["step", "4"]
    attempt_2_first_request = anthropic_emulator.message_requests[-2].body["messages"]
    if backend == "claude-code":
        # The same Claude Code session went on: attempt 2 sent the whole conversation of attempt 1.
        assert metadata["continuation"].value.startswith("resumed session ")
        assert metadata["claude_code_session_id"].value in metadata["continuation"].value
        assert "echo step 3" in json.dumps(attempt_2_first_request)
    else:
        assert "step 4" in json.dumps(attempt_2_first_request[0])  # started fresh from the handoff


def test_the_cost_ceiling_stops_the_session_and_leaves_a_dead_letter_saying_so(
    backend, instance, anthropic_emulator, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_MAX_COST_USD", "0.5")
    open_queue().enqueue("t1", "An expensive job", max_attempts=3)
    anthropic_emulator.script(*[bash(backend, "echo spend", usage=EXPENSIVE) for _ in range(4)])
    result, metadata = run_next(instance)
    assert not result.success
    assert metadata["outcome"].value == "over_budget" and metadata["limit"].value == "cost"
    failure = result.failure_data_for_node("agent_session").user_failure_data
    assert "cost ceiling (its max_cost_usd, else JADA_AGENT_MAX_COST_USD)" in failure.description
    task = open_queue().get("t1")
    assert task.status == "dead" and "cost ceiling" in task.last_error
    assert task.cost_usd > 0.5
    assert len(anthropic_emulator.message_requests) == 1  # the first call already reached the ceiling


def test_a_ceiling_reached_by_earlier_attempts_sends_nothing_to_the_model(
    instance, anthropic_emulator, monkeypatch
):
    queue = open_queue()
    queue.enqueue("t1", "x", max_turns=1)
    anthropic_emulator.script(tool_use(usage=EXPENSIVE), end_turn("{}"))
    assert run_next(instance)[0].success  # incomplete after one expensive turn, with no ceiling yet
    monkeypatch.setenv("JADA_AGENT_MAX_COST_USD", "0.5")
    requests_before = len(anthropic_emulator.requests)
    result, _ = run_next(instance)
    assert not result.success
    assert (
        "its attempts cost $0.80"
        in result.failure_data_for_node("agent_session").user_failure_data.description
    )
    assert len(anthropic_emulator.requests) == requests_before
    assert queue.get("t1").status == "dead"


def test_api_errors_map_to_failed_or_transient_after_the_retries_as_on_the_messages_backend(
    backend, instance, anthropic_emulator
):
    queue = open_queue()
    queue.enqueue("t1", "x")
    anthropic_emulator.script(*[api_error(401, "invalid x-api-key") for _ in range(4)])
    result, metadata = run_next(instance)
    assert not result.success and metadata["outcome"].value == "failed"
    failure = result.failure_data_for_node("agent_session").user_failure_data
    assert "check ANTHROPIC_API_KEY" in failure.description and "401" in failure.description
    assert queue.get("t1").status == "failed"
    # The Messages loop does not retry a 401; the Claude Code CLI retries it (CLAUDE_CODE_MAX_RETRIES = 2).
    assert anthropic_emulator.clear_script() == (3 if backend == "messages" else 1)

    # One 529 is retried away; three (the first call and both retries) leave the task queued with a back-off.
    queue.enqueue("t2", "x")
    anthropic_emulator.script(api_error(529, retry_after_ms=1), end_turn("fine"))
    result, metadata = run_next(instance)
    assert result.success and metadata["api_retries"].value == 1 and queue.get("t2").status == "done"
    queue.enqueue("t3", "x")
    anthropic_emulator.script(*[api_error(529, retry_after_ms=1) for _ in range(3)])
    result, metadata = run_next(instance)
    assert not result.success and metadata["outcome"].value == "transient"
    assert metadata["api_retries"].value == 2
    task = queue.get("t3")
    assert task.status == "queued" and task.available_at > time.time() + 30


def test_a_session_cut_by_an_overloaded_api_leaves_a_handoff_and_the_next_attempt_starts_from_it(
    backend, instance, anthropic_emulator
):
    queue = open_queue()
    queue.enqueue("t1", "Write the release notes")
    workdir = default_workdir("t1")
    workdir.mkdir(parents=True)
    anthropic_emulator.script(
        write_file(backend, workdir / "NOTES.md", "draft\n", text="Drafting the notes first."),
        bash(backend, "wc -l < NOTES.md", text="Checking the draft has its line."),
        *[api_error(529, retry_after_ms=1) for _ in range(3)],  # the first try and both retries
    )
    result, metadata = run_next(instance)
    assert not result.success and metadata["outcome"].value == "transient"
    task = queue.get("t1")
    assert (task.status, task.attempt) == ("queued", 1)
    handoff = task.handoff
    assert handoff["files_touched"] == ["NOTES.md"]
    assert handoff["last_text"] == "Checking the draft has its line."
    *_, write, check = handoff["last_tool_calls"]
    assert "NOTES.md" in write["input"] and not write["is_error"]
    assert "wc -l < NOTES.md" in check["input"] and check["result"] == "1" and not check["is_error"]
    assert "ended transient" in handoff["notes"] and "529" in handoff["notes"]
    assert metadata["handoff"].value == handoff

    queue.requeue("t1")  # due now rather than after the back-off
    anthropic_emulator.script(end_turn("Notes written."))
    result, metadata = run_next(instance)
    assert result.success and queue.get("t1").status == "done"
    first = json.dumps(anthropic_emulator.message_requests[-1].body["messages"][0])
    assert first.startswith('{"role": "user"') and "Write the release notes" in first
    for shown in ("This is attempt 2", "NOTES.md", "wc -l < NOTES.md", "Checking the draft has its line."):
        assert shown in first
    if backend == "claude-code":
        assert metadata["continuation"].value == "fresh, from the handoff"


def test_a_session_cut_before_any_reply_keeps_the_handoff_of_the_attempt_before(instance, anthropic_emulator):
    queue = open_queue()
    queue.enqueue("t1", "A long job", max_turns=1)
    anthropic_emulator.script(bash("messages", "echo one"), end_turn('{"next_steps": ["step two"]}'))
    assert run_next(instance)[0].success
    anthropic_emulator.script(*[api_error(529, retry_after_ms=1) for _ in range(3)])
    result, _ = run_next(instance)
    assert not result.success
    task = queue.get("t1")
    assert task.status == "queued" and task.handoff["next_steps"] == ["step two"]


@pytest.mark.claude_code
def test_without_the_sdk_a_claude_code_task_is_parked_failed_with_the_fix_before_any_call(
    instance, anthropic_emulator, monkeypatch
):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "claude_agent_sdk" else real_find_spec(name, *a),
    )
    open_queue().enqueue("t1", "x", backend="claude-code")  # the default backend (messages) can run
    result, _ = run_next(instance)
    assert not result.success
    description = result.failure_data_for_node("agent_session").user_failure_data.description
    assert ".[claude-code]" in description and "JADA_AGENT_BACKEND=messages" in description
    assert anthropic_emulator.requests == []
    assert open_queue().get("t1").status == "failed"


def test_an_unknown_backend_or_ceiling_setting_claims_nothing_and_names_the_fix(
    instance, anthropic_emulator, monkeypatch
):
    open_queue().enqueue("t1", "x")
    for name, value, expected in [
        ("JADA_AGENT_BACKEND", "codex", "JADA_AGENT_BACKEND='codex' is not a session backend"),
        ("JADA_AGENT_MAX_COST_USD", "lots", "JADA_AGENT_MAX_COST_USD='lots' is not a positive number"),
    ]:
        monkeypatch.setenv(name, value)
        skip = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
        assert isinstance(skip, dg.SkipReason) and expected in skip.skip_message
        monkeypatch.delenv(name)
    assert open_queue().get("t1").attempt == 0


@pytest.mark.claude_code
def test_a_tasks_own_backend_and_ceiling_override_the_environment(instance, anthropic_emulator, monkeypatch):
    monkeypatch.setenv("JADA_AGENT_BACKEND", "messages")
    monkeypatch.setenv("JADA_AGENT_MAX_COST_USD", "100")
    open_queue().enqueue("t1", "x", backend="claude-code", max_cost_usd=0.5)
    anthropic_emulator.script(*[bash("claude-code", "echo spend", usage=EXPENSIVE) for _ in range(3)])
    result, metadata = run_next(instance)
    assert not result.success
    assert (metadata["backend"].value, metadata["outcome"].value) == ("claude-code", "over_budget")
    assert "$0.5000 left" in open_queue().get("t1").last_error


@pytest.mark.claude_code
def test_claude_code_refuses_to_run_with_the_sandbox_off(instance, anthropic_emulator, monkeypatch):
    monkeypatch.setenv("JADA_AGENT_SANDBOX", "off")
    open_queue().enqueue("t1", "x", backend="claude-code")
    result, _ = run_next(instance)
    description = result.failure_data_for_node("agent_session").user_failure_data.description
    assert "only run sandboxed" in description and "JADA_AGENT_BACKEND=messages" in description
    assert anthropic_emulator.requests == []
    monkeypatch.setenv("JADA_AGENT_BACKEND", "claude-code")  # as the default, the sensor claims nothing
    open_queue().enqueue("t2", "x")
    skip = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert "only run sandboxed" in skip.skip_message and open_queue().get("t2").attempt == 0


@pytest.mark.claude_code
def test_claude_code_refuses_the_uid_sandbox_and_says_to_use_the_messages_backend(
    instance, anthropic_emulator, monkeypatch
):
    """Until the model's commands leave the CLI's process tree, a slot uid could not hold them apart from it."""
    monkeypatch.setenv("JADA_AGENT_SANDBOX", "uid")
    open_queue().enqueue("t1", "x", backend="claude-code")
    result, _ = run_next(instance)
    description = result.failure_data_for_node("agent_session").user_failure_data.description
    assert "JADA_AGENT_SANDBOX=uid, but Claude Code sessions run only under bubblewrap" in description
    assert "JADA_AGENT_BACKEND=messages" in description
    assert anthropic_emulator.requests == []


@pytest.mark.claude_code
def test_a_default_backend_that_cannot_start_claims_nothing_so_no_attempt_is_spent(
    instance, anthropic_emulator, monkeypatch
):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "claude_agent_sdk" else real_find_spec(name, *a),
    )
    monkeypatch.setenv("JADA_AGENT_BACKEND", "claude-code")
    open_queue().enqueue("t1", "x")
    skip = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert isinstance(skip, dg.SkipReason) and ".[claude-code]" in skip.skip_message
    task = open_queue().get("t1")
    assert (task.status, task.attempt) == ("queued", 0)


@pytest.mark.claude_code
def test_a_cli_that_does_not_start_claims_nothing_and_names_the_fix(
    instance, anthropic_emulator, monkeypatch, tmp_path
):
    from jada_pipelines.agents import claude_code_backend as claude_code

    broken = tmp_path / "_bundled" / "claude"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cannot execute binary file: Exec format error' >&2\nexit 126\n")
    broken.chmod(0o755)
    (broken.parent / "claude.version").write_text("2.1.332 (Claude Code)\n")
    monkeypatch.setattr(claude_code, "bundled_cli", lambda: broken)
    monkeypatch.setenv("JADA_AGENT_BACKEND", "claude-code")
    open_queue().enqueue("t1", "x")
    skip = agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert "does not start as version 2.1.332 (cannot execute binary file" in skip.skip_message
    assert "--force-reinstall" in skip.skip_message and "JADA_AGENT_BACKEND=messages" in skip.skip_message
    assert open_queue().get("t1").attempt == 0
