"""The key proxy's gate and meter on their own: every model it forwards is priced, and an answer is metered the
same however its bytes are split on the way."""

from __future__ import annotations

import json

import pytest

from jada_pipelines import settings
from jada_pipelines.agents.api_gate import AnswerMeter, ApiGate, GateRules
from jada_pipelines.emulators.anthropic import _message_body, _sse, stream_events, tool_use

MODEL = "claude-sonnet-5-5"
USAGE = {"input_tokens": 1200, "output_tokens": 340, "cache_read_input_tokens": 5000}


def test_an_unpriced_model_in_the_proxys_allow_list_is_a_config_error_naming_the_price_table(monkeypatch):
    monkeypatch.setenv("JADA_AGENT_PROXY_MODELS", "claude-haiku-4-5, claude-mystery-9")
    with pytest.raises(settings.ConfigError, match=r"claude-mystery-9.*prices\.py"):
        GateRules.from_env(MODEL)


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20])
def test_a_streamed_answer_is_metered_the_same_however_its_bytes_arrive(piece):
    data = b"".join(_sse(event) for event in stream_events(tool_use("bash", usage=USAGE), MODEL))
    data = data.replace(b"\n", b"\r\n") if piece == 7 else data  # servers may end lines with CRLF
    meter = AnswerMeter(streamed=True)
    for start in range(0, len(data), piece):
        meter.feed(data[start : start + piece])
    meter.finish()
    assert (meter.model, meter.stop_reason, meter.tool_use) == (MODEL, "tool_use", True)
    assert {k: meter.usage[k] for k in USAGE} == USAGE


def test_a_json_answer_is_metered_and_priced_once():
    gate = ApiGate(GateRules(MODEL))
    meter = AnswerMeter(streamed=False)
    meter.feed(json.dumps(_message_body(tool_use("bash", usage=USAGE), MODEL)).encode())
    meter.finish()
    answer = gate.record(MODEL, meter)
    # $2 per million input, $10 output, $0.10 cache read (claude-sonnet-5-5 in prices.py)
    assert answer.cost_usd == pytest.approx((1200 * 2 + 340 * 10 + 5000 * 0.10) / 1e6)
    assert gate.spent_usd == answer.cost_usd and gate.last_answer == answer


def test_an_answer_without_usage_is_not_counted_and_a_body_that_is_not_json_is_refused():
    gate = ApiGate(GateRules(MODEL))
    meter = AnswerMeter(streamed=True)
    meter.feed(b'event: ping\ndata: {"type": "ping"}\n\n')
    assert gate.record(MODEL, meter) is None and gate.answers == []
    with pytest.raises(Exception, match="not a JSON object"):
        gate.check({}, b"[1, 2]")
    assert gate.refusals == {"not_json": 1}
