"""A Claude session, driven by the real anthropic SDK against the local Messages API emulator, turns every
stop reason and API error into an outcome, hands off at the turn cap, and prices its tokens from one table."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from jada_pipelines.agents.messages_backend import HANDOFF_REQUEST, run_session
from jada_pipelines.agents.prices import PRICES, Usage, cost_usd
from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue
from jada_pipelines.agents.session import SessionSpec, default_workdir
from jada_pipelines.emulators.anthropic import (
    api_error,
    context_window_exceeded,
    end_turn,
    max_tokens,
    pause_turn,
    refusal,
    tool_use,
    tool_uses,
)
from jada_pipelines.settings import ConfigError

MODEL = "claude-sonnet-5-5"


def spec(task_id="t1", *, max_turns=30, handoff=None, attempt=1, prompt="Fix the bug") -> SessionSpec:
    return SessionSpec(
        task_id=task_id,
        attempt=attempt,
        prompt=prompt,
        workdir=default_workdir(task_id),
        max_turns=max_turns,
        model=MODEL,
        handoff=handoff,
    )


def fast_retry(status):
    return api_error(status, retry_after_ms=1)


def test_end_turn_gives_done_with_the_final_text_as_summary(anthropic_emulator):
    anthropic_emulator.script(end_turn("Fixed it and ran the tests."))
    result = run_session(spec())
    assert (result.outcome, result.stop_reason, result.turns) == ("done", "end_turn", 1)
    assert result.summary == "Fixed it and ran the tests."
    assert result.request_ids == [anthropic_emulator.requests[0].request_id]


def test_tool_results_go_back_with_the_ids_of_their_calls(anthropic_emulator):
    first = tool_uses(
        ("bash", {"command": "echo hello > greeting.txt && cat greeting.txt"}),
        ("str_replace_based_edit_tool", {"command": "view", "path": "greeting.txt"}),
    )
    anthropic_emulator.script(first, end_turn())
    result = run_session(spec())
    assert result.outcome == "done" and result.turns == 2
    sent = anthropic_emulator.requests[1].body["messages"][-1]
    ids = [block["id"] for block in first.content]
    assert [block["tool_use_id"] for block in sent["content"]] == ids
    assert sent["content"][0]["content"].strip() == "hello"
    assert "hello" in sent["content"][1]["content"] and not sent["content"][1]["is_error"]


def test_prompt_caching_model_and_tools_are_on_every_request(anthropic_emulator, monkeypatch):
    anthropic_emulator.script(tool_use(), pause_turn(), max_tokens(), end_turn())
    result = run_session(spec())
    assert result.turns == 4
    for request in anthropic_emulator.requests:
        assert request.body["cache_control"] == {"type": "ephemeral"}
        assert request.body["model"] == MODEL
        assert [tool["name"] for tool in request.body["tools"]] == ["bash", "str_replace_based_edit_tool"]


def test_pause_turn_is_sent_back_unchanged_and_max_tokens_asks_to_continue(anthropic_emulator):
    anthropic_emulator.script(pause_turn("thinking"), max_tokens("half an ans"), end_turn())
    run_session(spec())
    after_pause = anthropic_emulator.requests[1].body["messages"]
    assert after_pause[-1]["role"] == "assistant" and after_pause[-1]["content"][0]["text"] == "thinking"
    after_cut = anthropic_emulator.requests[2].body["messages"][-1]
    assert after_cut["role"] == "user" and "continue" in after_cut["content"][0]["text"]


def test_thirty_tool_calls_reach_the_cap_then_one_handoff_call_and_the_next_attempt_carries_it(
    anthropic_emulator, queue_clock, tmp_path
):
    queue = SQLiteTaskQueue(tmp_path / "q.db", clock=queue_clock)
    queue.enqueue("t1", "Port the service")
    handoff = {
        "done": ["read main.py"],
        "next_steps": ["edit main.py"],
        "failed_approaches": ["sed"],
        "files_touched": [],
    }
    anthropic_emulator.script(*[tool_use() for _ in range(30)], end_turn(json.dumps(handoff)))

    lease = queue.claim(worker="test", lease_seconds=60)
    result = run_session(spec(max_turns=30, prompt=lease.task.prompt))
    assert (result.outcome, result.turns, result.stop_reason) == ("incomplete", 30, "tool_use")
    assert len(anthropic_emulator.requests) == 31
    final = anthropic_emulator.requests[30].body
    assert final["tool_choice"] == {"type": "none"}
    pending = anthropic_emulator.requests[29].body  # the 30th call; its tool call is never run
    assert not any("not executed" in json.dumps(m) for m in pending["messages"])
    answered = final["messages"][-1]["content"]
    assert answered[0]["content"] == "not executed: the turn cap was reached" and answered[0]["is_error"]
    assert answered[-1]["text"] == HANDOFF_REQUEST
    warned = anthropic_emulator.requests[27].body["messages"][-1]["content"]
    assert "3 model calls remain" in warned[-1]["text"]
    assert result.handoff == handoff
    # The uncounted handoff call too: caching is on for every request of the session.
    assert all(r.body["cache_control"] == {"type": "ephemeral"} for r in anthropic_emulator.requests)

    queue.complete(
        lease,
        outcome="incomplete",
        turns=result.turns,
        cost_usd=result.cost_usd,
        summary=None,
        handoff=result.handoff,
        stop_reason=result.stop_reason,
    )
    assert queue.get("t1").status == "incomplete"
    second = queue.claim(worker="test", lease_seconds=60)
    assert second.attempt == 2
    anthropic_emulator.script(end_turn("Finished."))
    run_session(spec(attempt=2, handoff=second.task.handoff, prompt=second.task.prompt))
    first_message = anthropic_emulator.requests[31].body["messages"][0]["content"]
    assert first_message.startswith("Port the service") and '"edit main.py"' in first_message
    assert "attempt 2" in first_message


def test_a_handoff_that_is_not_json_is_kept_as_notes_with_the_files_the_editor_touched(anthropic_emulator):
    create = tool_use(
        "str_replace_based_edit_tool", {"command": "create", "path": "notes.md", "file_text": "x"}
    )
    anthropic_emulator.script(create, end_turn("I could not finish, sorry."))
    result = run_session(spec(max_turns=1))
    assert result.outcome == "incomplete"
    assert result.handoff["notes"] == "I could not finish, sorry."
    assert result.handoff["files_touched"] == []  # the create came at the cap and was not executed
    assert not (default_workdir("t1") / "notes.md").exists()


def test_overloaded_twice_then_ok_succeeds_after_two_sdk_retries(anthropic_emulator):
    anthropic_emulator.script(fast_retry(529), fast_retry(529), end_turn())
    result = run_session(spec())
    assert (result.outcome, result.turns, result.api_retries) == ("done", 1, 2)
    assert [r.status for r in anthropic_emulator.requests] == [529, 529, 200]


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")]
)
def test_a_rate_limit_server_error_or_overload_that_outlasts_the_sdk_retries_is_transient(
    anthropic_emulator, status, kind
):
    anthropic_emulator.script(fast_retry(status), fast_retry(status), fast_retry(status))
    result = run_session(spec())
    assert (result.outcome, result.status_code, result.api_retries) == ("transient", status, 2)
    assert kind in result.error
    assert len(result.request_ids) == 1 and result.request_ids[0].startswith("req_")


def test_an_unreachable_api_is_transient_and_says_which_variable_to_check(monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    result = run_session(spec(), max_retries=0)
    assert (result.outcome, result.turns) == ("transient", 0)
    assert "ANTHROPIC_BASE_URL" in result.error and "sk-ant-must-not-leak" not in result.error


def test_a_cap_of_three_or_fewer_calls_is_still_warned_before_it_is_reached(anthropic_emulator):
    anthropic_emulator.script(tool_use(), tool_use(), end_turn("{}"))
    result = run_session(spec(max_turns=2))
    assert result.outcome == "incomplete"
    warned = anthropic_emulator.requests[1].body["messages"][-1]["content"]
    assert "1 model calls remain" in warned[-1]["text"]


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_client_error_fails_at_once_without_a_retry(anthropic_emulator, status):
    anthropic_emulator.script(api_error(status, "invalid x-api-key"))
    result = run_session(spec())
    assert (result.outcome, result.status_code, result.turns) == ("failed", status, 0)
    assert len(anthropic_emulator.requests) == 1
    assert result.request_ids == [anthropic_emulator.requests[0].request_id]
    assert "invalid x-api-key" in result.error


def test_a_refusal_is_its_own_outcome_with_the_category(anthropic_emulator):
    anthropic_emulator.script(refusal("cyber", "Looks like malware."))
    result = run_session(spec())
    assert result.outcome == "refused" and "cyber: Looks like malware." in result.error


def test_a_full_context_window_hands_off_without_another_call(anthropic_emulator):
    anthropic_emulator.script(context_window_exceeded())
    result = run_session(spec())
    assert result.outcome == "incomplete" and len(anthropic_emulator.requests) == 1
    assert "context window" in result.handoff["notes"]


def test_cost_is_summed_over_calls_from_the_price_table(anthropic_emulator):
    usage = {
        "input_tokens": 300,
        "output_tokens": 60,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 150,
    }
    anthropic_emulator.script(tool_use(usage=usage), end_turn(usage=usage))
    result = run_session(spec())
    price = PRICES[MODEL]
    one_call = (300 * price.input + 60 * price.output + 150 * price.cache_read) / 1e6
    assert one_call == pytest.approx(0.001215)
    assert result.cost_usd == pytest.approx(2 * one_call)
    assert (result.usage.input_tokens, result.usage.cache_read_tokens) == (600, 300)


def test_cache_writes_are_priced_by_their_lifetime():
    usage = Usage(cache_write_5m_tokens=1_000_000, cache_write_1h_tokens=1_000_000)
    assert cost_usd("claude-sonnet-5-5-20261001", usage) == pytest.approx(2.50 + 4)
    with pytest.raises(ConfigError, match="no price"):
        cost_usd("gpt-4", usage)


def test_a_stopped_session_ends_as_lost_before_its_next_call(anthropic_emulator):
    stop = threading.Event()
    stop.set()
    result = run_session(spec(), stop=stop)
    assert result.outcome == "lost" and anthropic_emulator.requests == []


def test_without_an_api_key_the_session_says_which_variable_to_set(monkeypatch):
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        run_session(spec())


def test_the_transcript_is_jsonl_with_the_outcome_last(anthropic_emulator):
    anthropic_emulator.script(tool_use(), end_turn("ok"))
    result = run_session(spec())
    lines = [json.loads(line) for line in result.transcript_path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == [
        "start",
        "request",
        "reply",
        "tool_result",
        "request",
        "reply",
        "outcome",
    ]
    assert lines[-1]["outcome"] == "done"


def test_the_demo_behaviour_needs_no_script(anthropic_emulator):
    assert run_session(spec(prompt="[demo:refuse] do something")).outcome == "refused"
    capped = run_session(spec("t2", prompt="[demo:turn-cap] loop forever", max_turns=4))
    assert capped.outcome == "incomplete" and capped.handoff["next_steps"]
    done = run_session(spec("t3", prompt="an ordinary task"))
    assert done.outcome == "done" and 2 <= done.turns <= 4


def test_cache_writes_reported_by_lifetime_are_priced_apart(anthropic_emulator):
    usage = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    anthropic_emulator.script(end_turn(usage=usage))
    result = run_session(spec())
    assert (result.usage.cache_write_5m_tokens, result.usage.cache_write_1h_tokens) == (1000, 2000)
    assert result.cost_usd == pytest.approx((1000 * 2.50 + 2000 * 4) / 1e6)


def test_a_session_past_its_wall_clock_limit_hands_off_after_the_running_command(
    anthropic_emulator, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_SESSION_MAX_SECONDS", "1")
    handoff = {"done": [], "next_steps": ["wait less"], "failed_approaches": [], "files_touched": []}
    anthropic_emulator.script(tool_use("bash", {"command": "sleep 30"}), end_turn(json.dumps(handoff)))
    result = run_session(spec())
    assert (result.outcome, result.limit, result.turns) == ("incomplete", "wall_clock", 1)
    assert "JADA_AGENT_SESSION_MAX_SECONDS" in result.error and result.handoff["next_steps"] == ["wait less"]
    last = anthropic_emulator.requests[1].body
    # The command was cut at the session's deadline, and its result travels with the handoff request.
    tool_result, request = last["messages"][-1]["content"]
    assert tool_result["is_error"] and "command timeout" in tool_result["content"]
    assert request["text"] == HANDOFF_REQUEST and last["tool_choice"] == {"type": "none"}


def test_a_working_directory_outside_the_allowed_roots_is_refused_before_any_call(
    anthropic_emulator, monkeypatch, tmp_path
):
    monkeypatch.setenv("JADA_AGENT_WORKDIR_ROOTS", str(tmp_path / "repos"))
    outside = SessionSpec("t1", 1, "x", tmp_path / "elsewhere", 30, MODEL)
    with pytest.raises(ConfigError, match="outside JADA_AGENT_WORKDIR_ROOTS"):
        run_session(outside)
    assert anthropic_emulator.requests == []
