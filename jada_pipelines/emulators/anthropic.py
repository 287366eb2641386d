"""A LOCAL STAND-IN for the Anthropic Messages API, on 127.0.0.1. It is not Claude and runs no model.

The real ``anthropic`` SDK reaches it through ``ANTHROPIC_BASE_URL`` (SDK 2.x sends through httpx2, which
respx cannot intercept, so a real local server is the faithful way to test). It answers ``POST /v1/messages``
(query strings such as ``?beta=true`` are ignored) with the documented response shape: a ``request-id``
header, ``usage`` in every reply, and errors as ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with ``retry-after`` / ``retry-after-ms`` where the API sends them. It accepts either
``x-api-key`` or ``Authorization: Bearer`` and records every request. Like the API, it answers 400
``invalid_request_error`` when a ``tool_use`` is not answered by a ``tool_result`` with its id in the next
message, so every emulator-backed test also checks that tool results go back with matching ids.

A request with ``"stream": true`` (the Claude Code CLI sends only those) gets the same reply as server-sent
events, in the order and shapes of https://docs.anthropic.com/en/api/messages-streaming ("Messages
streaming"): ``message_start`` (the message with empty ``content``, input-side usage and ``output_tokens``
1), a ``ping``, then per content block ``content_block_start`` (text ``""`` / tool_use with ``input: {}``),
``content_block_delta`` events (``text_delta`` / ``input_json_delta`` with ``partial_json`` pieces) and
``content_block_stop``, then ``message_delta`` (``stop_reason``, ``stop_sequence`` and the cumulative
``usage``) and ``message_stop``. Errors are answered before the stream starts, with the status and JSON body
of a non-streaming error, as the API does for errors it detects up front; ``overloaded_mid_stream()`` sends
the documented ``error`` event inside a stream that has started.

Tests script the replies in order (``emulator.script(tool_use(...), end_turn("done"))``). With nothing
scripted it plays a small demo agent chosen by a marker in the task's first user message:
- ``[demo:turn-cap]``: always asks to run a harmless ``echo``, so the session reaches its turn cap;
- ``[demo:refuse]``: refuses (``stop_reason: refusal``);
- anything else: one to three ``echo`` tool calls, then ``end_turn`` with a short summary.
The demo calls the shell tool by the name the request offers: ``bash`` (our Messages loop), the same tool as
Claude Code sees it through the run worker's MCP server (``mcp__jada__bash``), or Claude Code's own ``Bash``.
A request without tools (the handoff call) gets a JSON handoff back.

    emulator = AnthropicEmulator(delay_s=0.5)
    os.environ["ANTHROPIC_BASE_URL"] = emulator.start()
    emulator.script(tool_use("bash", {"command": "ls"}), end_turn("All done."))
    ...
    emulator.requests[0].body["cache_control"]
    emulator.stop()
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from jada_pipelines.emulators._server import LocalServer

MESSAGES_PATH = "/v1/messages"
DEFAULT_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
# The error "type" the API documents for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
DEMO_TURN_CAP = "[demo:turn-cap]"
DEMO_REFUSE = "[demo:refuse]"
_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_emu{next(_ids):08d}"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a message (``content`` + ``stop_reason``) or an error (``status`` >= 400)."""

    status: int = 200
    content: tuple[dict, ...] = ()
    stop_reason: str | None = "end_turn"
    stop_details: dict | None = None
    usage: dict = field(default_factory=lambda: dict(DEFAULT_USAGE))
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Streamed requests only: after message_start and a ping, an ``error`` event of this type, then the end
    # (the docs' example is an overloaded_error during high usage, which a non-streamed call gets as a 529).
    stream_error: str | None = None


def end_turn(text: str = "Done.", *, usage: dict | None = None) -> Reply:
    return Reply(
        content=({"type": "text", "text": text},), stop_reason="end_turn", usage=usage or dict(DEFAULT_USAGE)
    )


def tool_use(
    name: str = "bash", tool_input: dict | None = None, *, text: str | None = None, usage: dict | None = None
) -> Reply:
    """One tool call (``bash`` ``echo`` by default), optionally after some text."""
    block = {
        "type": "tool_use",
        "id": _new_id("toolu"),
        "name": name,
        "input": tool_input or {"command": "echo ok"},
    }
    content = ({"type": "text", "text": text}, block) if text else (block,)
    return Reply(content=content, stop_reason="tool_use", usage=usage or dict(DEFAULT_USAGE))


def tool_uses(*calls: tuple[str, dict], usage: dict | None = None) -> Reply:
    """Several tool calls in one reply: ``tool_uses(("bash", {...}), ("str_replace_based_edit_tool", {...}))``."""
    content = tuple(
        {"type": "tool_use", "id": _new_id("toolu"), "name": name, "input": args} for name, args in calls
    )
    return Reply(content=content, stop_reason="tool_use", usage=usage or dict(DEFAULT_USAGE))


def pause_turn(text: str = "Still working…") -> Reply:
    return Reply(content=({"type": "text", "text": text},), stop_reason="pause_turn")


def max_tokens(text: str = "The answer was cut") -> Reply:
    return Reply(content=({"type": "text", "text": text},), stop_reason="max_tokens")


def refusal(category: str = "cyber", explanation: str = "This request could enable harm.") -> Reply:
    return Reply(
        content=(),
        stop_reason="refusal",
        stop_details={"type": "refusal", "category": category, "explanation": explanation},
    )


def context_window_exceeded(text: str = "") -> Reply:
    content = ({"type": "text", "text": text},) if text else ()
    return Reply(content=content, stop_reason="model_context_window_exceeded")


def overloaded_mid_stream(message: str = "Overloaded") -> Reply:
    """A streamed reply that fails after it started: an ``error`` event of type ``overloaded_error``."""
    return Reply(content=(), stop_reason=None, stream_error="overloaded_error", error_message=message)


def api_error(
    status: int,
    message: str | None = None,
    *,
    retry_after: int | None = None,
    retry_after_ms: int | None = None,
    should_retry: bool | None = None,
) -> Reply:
    """An error answer shaped as the API documents it. ``retry_after_ms=1`` keeps SDK retries fast in tests."""
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return Reply(
        status=status,
        stop_reason=None,
        error_message=message or f"emulated {ERROR_TYPES.get(status, 'api_error')}",
        headers=headers,
    )


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict
    request_id: str
    status: int


def _first_user_text(body: dict) -> str:
    messages = body.get("messages") or [{}]
    content = messages[0].get("content", "")
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if isinstance(block, dict))


def tool_pairing_error(body: dict) -> str | None:
    """The API's 400 for a conversation whose tool calls are not answered in the very next user message
    (every ``tool_use`` id needs a ``tool_result``, and no ``tool_result`` may name an unknown id); else None."""
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "assistant" or not isinstance(content, list) or i + 1 == len(messages):
            continue
        calls = [b.get("id") for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        following = messages[i + 1].get("content")
        results = [
            b.get("tool_use_id")
            for b in (following if isinstance(following, list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if missing := [call for call in calls if call not in results]:
            return (
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                "the next message."
            )
        if unknown := [result for result in results if result not in calls]:
            return (
                f"messages.{i + 1}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unknown)}. Each `tool_result` block must have a corresponding `tool_use` block "
                "in the previous message."
            )
    return None


def demo_reply(body: dict) -> Reply:
    """The script-less behaviour used by ``make demo`` (see the module docstring)."""
    prompt = _first_user_text(body)
    if not body.get("tools") or (body.get("tool_choice") or {}).get("type") == "none":
        handoff = {
            "done": ["ran the demo echo commands"],
            "next_steps": ["continue the demo task"],
            "failed_approaches": [],
            "files_touched": [],
        }
        return end_turn(json.dumps(handoff))
    if DEMO_REFUSE in prompt:
        return refusal("general_harms", "The emulator refuses tasks marked [demo:refuse].")
    calls_so_far = sum(1 for message in body.get("messages", []) if message.get("role") == "assistant")
    wanted = 1 if DEMO_TURN_CAP in prompt else 1 + zlib.crc32(prompt.encode()) % 3
    if DEMO_TURN_CAP in prompt or calls_so_far < wanted:
        command = f"echo 'demo step {calls_so_far + 1}'"
        names = {tool.get("name") for tool in body.get("tools") or []}
        if "bash" not in names and "Bash" in names:  # Claude Code's own shell tool
            return tool_use("Bash", {"command": command, "description": "demo step"}, text="Working on it.")
        # Our bash tool, or the same served to Claude Code by the run worker's MCP server.
        shell = next((name for name in names if name and name.endswith("__bash")), "bash")
        return tool_use(shell, {"command": command}, text="Working on it.")
    return end_turn(f"Demo task finished after {calls_so_far} tool calls (local emulator, no model).")


class AnthropicEmulator(LocalServer):
    """A local stand-in for the Messages API: scripted or demo replies, recorded requests, a fixed delay."""

    thread_name = "anthropic-emulator"

    def __init__(
        self, *, delay_s: float = 0.0, port: int = 0, gather: int = 0, gather_timeout_s: float = 120
    ) -> None:
        """``gather``: hold the first requests until this many are waiting at once (or ``gather_timeout_s``
        passed), then answer them all and never hold again: a test that needs N sessions in flight together
        gets them, whatever their start-up times."""
        super().__init__(port=port)
        self.delay_s = delay_s
        self.gather = gather
        self.gather_timeout_s = gather_timeout_s
        self.gathered_at_once = 0
        self._gathering = threading.Condition()
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self.requests: list[RecordedRequest] = []

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; afterwards the demo behaviour applies."""
        with self._lock:
            self._script.extend(replies)

    def clear_script(self) -> int:
        """Drop the replies not used yet (a client may retry fewer times than scripted); returns how many."""
        with self._lock:
            left, self._script = len(self._script), []
        return left

    @property
    def message_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == MESSAGES_PATH]

    def _gather(self) -> None:
        with self._gathering:
            if self.gathered_at_once >= self.gather:
                return
            self.gathered_at_once += 1
            if self.gathered_at_once >= self.gather:
                self._gathering.notify_all()
                return
            self._gathering.wait_for(
                lambda: self.gathered_at_once >= self.gather, timeout=self.gather_timeout_s
            )
            # Timed out: stop holding anyone (the test then sees fewer sessions in flight than it wanted).
            self.gather = min(self.gather, self.gathered_at_once)
            self._gathering.notify_all()

    def _answer(self, path: str, headers: dict[str, str], body: dict) -> tuple[Reply, str]:
        with self._lock:
            if not _authenticated(headers):
                reply = api_error(401, "x-api-key header or Authorization: Bearer is required")
            elif path != MESSAGES_PATH:
                reply = api_error(404, f"Not found: {path}")
            elif (unpaired := tool_pairing_error(body)) is not None:
                reply = api_error(400, unpaired)  # as the API does; the script is not consumed
            elif self._script:
                reply = self._script.pop(0)
            else:
                reply = None
            request_id = _new_id("req")
            if reply is None:
                reply = demo_reply(body)
            self.requests.append(RecordedRequest(path, headers, body, request_id, reply.status))
        return reply, request_id

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                path = self.path.split("?", 1)[0]
                if body is None:
                    reply, request_id = api_error(400, "The request body is not valid JSON."), _new_id("req")
                else:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    reply, request_id = emulator._answer(path, headers, body)
                emulator._gather()
                if emulator.delay_s:
                    time.sleep(emulator.delay_s)
                model = (body or {}).get("model", "claude-emulated")
                if reply.status < 400 and (body or {}).get("stream") is True:
                    self._stream(reply, request_id, model)
                else:
                    self._send(reply, request_id, model)

            def _stream(self, reply: Reply, request_id: str, model: str) -> None:
                # No content-length: the events are written as they are made and the connection then closes,
                # which ends the body for an HTTP/1.0 server (BaseHTTPRequestHandler's default).
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("request-id", request_id)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.close_connection = True
                try:
                    for event in stream_events(reply, model):
                        self.wfile.write(_sse(event))
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client went away mid-stream
                    return

            def _send(self, reply: Reply, request_id: str, model: str) -> None:
                payload = (
                    _error_body(reply, request_id) if reply.status >= 400 else _message_body(reply, model)
                )
                data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", request_id)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # keep test output clean
                return

        return Handler


def _authenticated(headers: dict[str, str]) -> bool:
    return bool(headers.get("x-api-key") or headers.get("authorization", "").startswith("Bearer "))


def _message_body(reply: Reply, model: str) -> dict:
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(reply.content),
        "stop_reason": reply.stop_reason,
        "stop_details": reply.stop_details,
        "stop_sequence": None,
        "usage": reply.usage,
    }


def stream_events(reply: Reply, model: str) -> list[dict]:
    """The reply as the documented event sequence (see the module docstring); each dict is one event's data."""
    message = _message_body(reply, model)
    usage = dict(reply.usage)
    start_usage = {**usage, "output_tokens": 1}
    events: list[dict] = [
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
        },
        {"type": "ping"},
    ]
    if reply.stream_error:
        error = {"type": reply.stream_error, "message": reply.error_message or reply.stream_error}
        return [*events, {"type": "error", "error": error}]
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            text = block["text"]
            pieces = [text[i : i + 16] for i in range(0, len(text), 16)] or [""]
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
                for piece in pieces
            ]
        elif block["type"] == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            raw = json.dumps(block["input"])
            # The API sends the input as partial JSON strings that only parse once joined.
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 12]},
                }
                for i in range(0, len(raw), 12)
            ]
        else:  # any other block (thinking, server tools) arrives whole in its start event
            events.append({"type": "content_block_start", "index": index, "content_block": block})
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": None}
    if reply.stop_details is not None:
        delta["stop_details"] = reply.stop_details
    events += [{"type": "message_delta", "delta": delta, "usage": usage}, {"type": "message_stop"}]
    return events


def _sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _error_body(reply: Reply, request_id: str) -> dict:
    error_type = ERROR_TYPES.get(reply.status, "api_error")
    return {
        "type": "error",
        "error": {"type": error_type, "message": reply.error_message},
        "request_id": request_id,
    }
