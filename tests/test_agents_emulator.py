"""The local Messages API stand-in answers like the real API: either auth header, query strings ignored,
errors in the documented shape with request ids and retry hints, usage in every reply."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from jada_pipelines.emulators.anthropic import api_error, end_turn, tool_use


def post(base_url: str, headers: dict[str, str], path: str = "/v1/messages", body: dict | None = None):
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.parametrize("headers", [{"x-api-key": "k"}, {"Authorization": "Bearer k"}])
def test_either_auth_header_is_accepted_and_a_query_string_is_ignored(anthropic_emulator, headers):
    anthropic_emulator.script(end_turn("hello"))
    status, response_headers, body = post(anthropic_emulator.base_url, headers, path="/v1/messages?beta=true")
    assert status == 200 and response_headers["request-id"].startswith("req_")
    assert body["content"] == [{"type": "text", "text": "hello"}] and body["stop_reason"] == "end_turn"
    assert set(body["usage"]) >= {"input_tokens", "output_tokens", "cache_read_input_tokens"}


def test_a_request_without_credentials_is_a_401_authentication_error(anthropic_emulator):
    status, headers, body = post(anthropic_emulator.base_url, {})
    assert status == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == headers["request-id"]


def test_scripted_errors_carry_their_type_and_retry_headers(anthropic_emulator):
    anthropic_emulator.script(api_error(429, retry_after=7), api_error(529, retry_after_ms=1))
    status, headers, body = post(anthropic_emulator.base_url, {"x-api-key": "k"})
    assert (status, headers["retry-after"], body["error"]["type"]) == (429, "7", "rate_limit_error")
    status, headers, body = post(anthropic_emulator.base_url, {"x-api-key": "k"})
    assert (status, headers["retry-after-ms"], body["error"]["type"]) == (529, "1", "overloaded_error")
    assert [r.status for r in anthropic_emulator.requests] == [429, 529]


def test_a_tool_call_left_unanswered_is_a_400_as_in_the_api_and_keeps_the_script(anthropic_emulator):
    anthropic_emulator.script(end_turn("scripted"))
    call = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}
    answer = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "x"}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [answer]},
        ],
    }
    status, _, error = post(anthropic_emulator.base_url, {"x-api-key": "k"}, body=body)
    assert (status, error["error"]["type"]) == (400, "invalid_request_error")
    assert "without `tool_result` blocks immediately after: toolu_1" in error["error"]["message"]

    answer["tool_use_id"] = "toolu_1"
    status, _, reply = post(anthropic_emulator.base_url, {"x-api-key": "k"}, body=body)
    assert status == 200 and reply["content"][0]["text"] == "scripted"


def test_a_streamed_reply_is_the_documented_event_sequence_and_the_sdk_rebuilds_the_message(
    anthropic_emulator,
):
    """The real SDK's streaming client accumulates the events into the same message a plain call returns."""
    import anthropic

    usage = {
        "input_tokens": 50,
        "output_tokens": 33,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 5,
    }
    command = {"command": "grep -rn 'a \"quoted\" needle' src/ | head -40"}
    anthropic_emulator.script(tool_use("bash", command, text="Looking for the needle first.", usage=usage))
    client = anthropic.Anthropic()
    with client.messages.stream(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
    client.close()
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Looking for the needle first."
    assert message.content[1].input == command and message.content[1].id.startswith("toolu_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 33)
    assert (message.usage.cache_creation_input_tokens, message.usage.cache_read_input_tokens) == (7, 5)
    assert stream.request_id == anthropic_emulator.requests[0].request_id
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "input_json" in events and "text" in events  # the SDK's names for text_delta / input_json_delta


def test_the_raw_stream_has_the_documented_shapes(anthropic_emulator):
    """What the Claude Code CLI parses itself: event names match each data's type, blocks open, grow and close
    by index, the tool input arrives as partial JSON pieces, and message_delta carries stop reason and usage."""
    anthropic_emulator.script(tool_use("bash", {"command": "echo a long enough command to split"}, text="Hi"))
    request = urllib.request.Request(
        anthropic_emulator.base_url + "/v1/messages?beta=true",
        data=json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
        ).encode(),
        headers={"content-type": "application/json", "x-api-key": "k"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        raw = response.read().decode()
    events = []
    for chunk in raw.strip().split("\n\n"):
        name_line, data_line = chunk.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == name_line[len("event: ") :]
        events.append(data)
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1]
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1]
    tool_start = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)
    assert tool_start["content_block"]["input"] == {} and tool_start["content_block"]["name"] == "bash"
    pieces = [
        e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1
    ]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {
        "command": "echo a long enough command to split"
    }
    final = events[-2]
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["output_tokens"] == 20


def test_an_error_for_a_streamed_request_comes_before_the_stream_with_its_status(anthropic_emulator):
    import anthropic

    anthropic_emulator.script(
        api_error(529, retry_after_ms=1), api_error(529, retry_after_ms=1), end_turn("ok")
    )
    client = anthropic.Anthropic(max_retries=2)
    with client.messages.stream(
        model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text() == "ok"
    client.close()
    assert [r.status for r in anthropic_emulator.requests] == [529, 529, 200]


def test_gather_holds_the_first_requests_until_that_many_wait_at_once():
    import threading

    from jada_pipelines.emulators.anthropic import AnthropicEmulator

    with AnthropicEmulator(gather=3) as emulator:
        answered = []

        def call():
            post(emulator.base_url, {"x-api-key": "k"})
            answered.append(time.monotonic())

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert answered == []  # two are held
        started = time.monotonic()
        call()  # the third releases all three
        for thread in threads:
            thread.join(5)
        assert len(answered) == 3 and all(t >= started for t in answered)
        assert emulator.gathered_at_once == 3
        post(emulator.base_url, {"x-api-key": "k"})  # afterwards nothing is held


def test_an_error_inside_a_started_stream_is_the_documented_error_event(anthropic_emulator):
    import anthropic

    from jada_pipelines.emulators.anthropic import overloaded_mid_stream

    anthropic_emulator.script(overloaded_mid_stream())
    client = anthropic.Anthropic(max_retries=0)
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        stream.get_final_message()
    client.close()
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
