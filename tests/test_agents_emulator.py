"""The local Messages API stand-in answers like the real API: either auth header, query strings ignored,
errors in the documented shape with request ids and retry hints, usage in every reply."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from jada_pipelines.emulators.anthropic import api_error, end_turn


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
