"""The key proxy's gate and meter: what a Messages API call from the Claude Code sandbox may ask for, and what
its answer cost. Plain Python, no Dagster, no I/O.

The proxy (``claude_code_sandbox.KeyProxy``) is the only way from the sandbox to the API, so it is where spend is
counted and bounded, whatever the CLI itself reports:

- ``ApiGate.check(headers, body)`` runs before a request is forwarded. It refuses a model outside the allow-list
  (the session's model and its dated ids, plus ``JADA_AGENT_PROXY_MODELS``), a ``max_tokens`` over
  ``JADA_AGENT_PROXY_MAX_TOKENS``, an ``anthropic-beta`` value outside ``JADA_AGENT_PROXY_BETAS``, any server
  tool (web search, web fetch, code execution, computer use, the MCP connector...) that
  ``JADA_AGENT_SERVER_TOOLS`` does not name, and a request whose worst case would pass what the task's cost
  ceiling leaves: ``max_tokens`` at the model's output price, plus its input (estimated at one token per 4
  bytes of the request body, the usual rule of thumb; the exact count is only known after the call).
- ``AnswerMeter`` reads an answer as it is relayed, streamed (server-sent events) or not, and keeps its model,
  ``usage``, ``stop_reason`` and whether it asked for a tool; ``ApiGate.record`` prices it from the one price
  table (``prices.py``) and adds it to what the attempt spent.

Server tools are refused by default because they are a way out of a sandbox that has no network: with
``web_fetch`` Anthropic's servers fetch any URL a command names, data in its query string included.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from jada_pipelines import settings
from jada_pipelines.agents.prices import Usage, cost_usd, price_for

# The largest answer output a request may ask for (JADA_AGENT_PROXY_MAX_TOKENS); the CLI is told the same
# (CLAUDE_CODE_MAX_OUTPUT_TOKENS), so its own requests pass.
DEFAULT_MAX_TOKENS = settings.default("JADA_AGENT_PROXY_MAX_TOKENS")
# The anthropic-beta values the bundled Claude Code CLI sends in our sessions, observed through the emulator
# (claude-agent-sdk 0.2.189 / Claude Code 2.1.332, with and without an MCP server) ...
OBSERVED_BETAS = (
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "context-management-2025-06-27",
    "per-turn-control-2026-07-01",
    "mid-conversation-tool-changes-2026-07-01",
    "thinking-token-count-2026-05-13",
    "advanced-tool-use-2025-11-20",
    "effort-2025-11-24",
    "thinking-display-updates-2026-08-18",
)
# ... and others its binary names that only shape a request or its answer (caching, thinking, counting), not
# seen in a session (not verified). Left out on purpose: server tools and their betas (web search/fetch, code
# execution, MCP servers and tunnels, files, managed agents, advisor, memory, batches), and those that change
# the price per token (context-1m, fast-mode, server-side fallback). JADA_AGENT_PROXY_BETAS adds more.
DEFAULT_BETAS = (
    *OBSERVED_BETAS,
    "prompt-caching-scope-2026-01-05",
    "extended-cache-ttl-2025-04-11",
    "redact-thinking-2026-02-12",
    "thinking-resumption-2026-07-17",
    "token-counting-2024-11-01",
    "tool-provenance-2026-10-26",
    "structured-outputs-2025-12-15",
)
# Tool "type" prefixes of the tools Anthropic runs on its side (platform.claude.com/docs/en/agents-and-tools/
# tool-use/overview, "server tools"; the type names as anthropic SDK 2.14.0 spells them), and the request
# fields of the MCP connector and code-execution containers. The CLI sends no typed tool at all (observed):
# its tools are plain name + input_schema. Server tools are added over time, so any other typed tool is
# refused too (reason "tool_type"), unless JADA_AGENT_SERVER_TOOLS names it.
SERVER_TOOL_PREFIXES = ("web_search", "web_fetch", "code_execution", "tool_search", "mcp_toolset")
CLIENT_TOOL_TYPES = ("custom",)  # a plain tool, the CLI's own kind
SERVER_FIELDS = ("mcp_servers", "container")
# An input token is estimated as this many bytes of request body for the worst case before a call.
BYTES_PER_INPUT_TOKEN = 4
_DATED = re.compile(r"^-\d{8}$")


def _names(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True)
class GateRules:
    """What the proxy lets through, from the session's model and the JADA_AGENT_PROXY_* settings."""

    model: str
    extra_models: tuple[str, ...] = ()
    max_tokens: int = DEFAULT_MAX_TOKENS
    betas: tuple[str, ...] = DEFAULT_BETAS
    server_tools: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, model: str) -> GateRules:
        extra_models = _names(settings.get("JADA_AGENT_PROXY_MODELS"))
        for name in (model, *extra_models):
            price_for(name)  # every model the proxy forwards must be priced: a ConfigError names the fix
        return cls(
            model=model,
            extra_models=extra_models,
            max_tokens=settings.get("JADA_AGENT_PROXY_MAX_TOKENS"),
            betas=DEFAULT_BETAS + _names(settings.get("JADA_AGENT_PROXY_BETAS")),
            server_tools=_names(settings.get("JADA_AGENT_SERVER_TOOLS")),
        )

    def model_allowed(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        for allowed in (self.model, *self.extra_models):
            if model == allowed or (model.startswith(allowed) and _DATED.match(model[len(allowed) :])):
                return True
        return False

    def server_tool_allowed(self, kind: str) -> bool:
        return any(kind.startswith(name) for name in self.server_tools)


@dataclass(frozen=True)
class Answer:
    """What one relayed answer said about itself."""

    model: str
    usage: Usage
    stop_reason: str | None
    tool_use: bool
    cost_usd: float


class Refusal(Exception):
    """A request the gate does not forward: ``status`` and ``kind`` make the Anthropic-shaped error."""

    def __init__(self, status: int, kind: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.reason = reason  # a short key for the refusal counts in run metadata


@dataclass
class ApiGate:
    """The rules and the running account of one attempt's API calls through the proxy (thread-safe)."""

    rules: GateRules
    # What the task's cost ceiling leaves this attempt; None: no ceiling.
    budget_usd: float | None = None
    spent_usd: float = 0.0
    usage: Usage = field(default_factory=Usage)
    answers: list[Answer] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)
    over_budget: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refuse(self, reason: str) -> None:
        with self._lock:
            self.refusals[reason] += 1

    @property
    def last_answer(self) -> Answer | None:
        with self._lock:
            return self.answers[-1] if self.answers else None

    def check(self, headers: Mapping[str, str], body: bytes) -> dict:
        """The parsed request if it may be forwarded, else Refusal (counted)."""
        try:
            return self._check(headers, body)
        except Refusal as refusal:
            self.refuse(refusal.reason)
            raise

    def _check(self, headers: Mapping[str, str], body: bytes) -> dict:
        rules = self.rules
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            raise Refusal(400, "invalid_request_error", "the request body is not a JSON object", "not_json")
        model = request.get("model")
        if not rules.model_allowed(model):
            raise Refusal(
                403,
                "permission_error",
                f"the sandbox's key proxy forwards only the session's model {rules.model} (and its dated ids, "
                f"or JADA_AGENT_PROXY_MODELS), not {model!r}",
                "model",
            )
        max_tokens = request.get("max_tokens")
        if type(max_tokens) is not int or max_tokens > rules.max_tokens:
            raise Refusal(
                403,
                "permission_error",
                f"max_tokens {max_tokens!r} is over the key proxy's cap of {rules.max_tokens} "
                "(JADA_AGENT_PROXY_MAX_TOKENS)",
                "max_tokens",
            )
        betas = [b.strip() for value in _header_values(headers, "anthropic-beta") for b in value.split(",")]
        if unknown := [b for b in betas if b and b not in rules.betas]:
            raise Refusal(
                403,
                "permission_error",
                f"anthropic-beta {', '.join(unknown)} is not allowed by the key proxy (JADA_AGENT_PROXY_BETAS)",
                "beta",
            )
        for name in SERVER_FIELDS:
            if request.get(name) and not rules.server_tool_allowed("mcp" if name == "mcp_servers" else name):
                raise Refusal(403, "permission_error", _server_tool_text(name), "server_tool")
        for tool in request.get("tools") or []:
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind in (None, *CLIENT_TOOL_TYPES):
                continue
            if not isinstance(kind, str) or not rules.server_tool_allowed(kind):
                reason = "server_tool" if str(kind).startswith(SERVER_TOOL_PREFIXES) else "tool_type"
                raise Refusal(403, "permission_error", _server_tool_text(str(kind)), reason)
        if self.budget_usd is not None:
            price = price_for(model)
            worst = (price.output * max_tokens + price.input * len(body) / BYTES_PER_INPUT_TOKEN) / 1e6
            with self._lock:
                left = self.budget_usd - self.spent_usd
                if worst > left:
                    self.over_budget = True
            if worst > left:
                raise Refusal(
                    400,
                    "invalid_request_error",
                    f"the task's cost ceiling leaves ${max(left, 0):.4f} and this request could cost up to "
                    f"${worst:.4f} (max_tokens {max_tokens} at {model}'s output price, plus its input), so "
                    "the key proxy did not send it",
                    "cost_ceiling",
                )
        return request

    def record(self, model: str, meter: AnswerMeter) -> Answer | None:
        """Price a relayed answer and add it to the attempt's account; None when it carried no usage."""
        if meter.usage is None:
            return None
        usage = Usage()
        usage.add(_UsageView(meter.usage))
        cost = cost_usd(model, usage)
        answer = Answer(meter.model or model, usage, meter.stop_reason, meter.tool_use, cost)
        with self._lock:
            self.answers.append(answer)
            self.spent_usd += cost
            for name in vars(usage):
                setattr(self.usage, name, getattr(self.usage, name) + getattr(usage, name))
        return answer


def _server_tool_text(kind: str) -> str:
    return (
        f"the tool type {kind} is not allowed from the sandbox: the key proxy forwards plain tools only, as a "
        "server tool would run outside the sandbox (name it in JADA_AGENT_SERVER_TOOLS to allow it)"
    )


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return list(get_all(name) or [])
    return [value for key, value in headers.items() if key.lower() == name]


class _UsageView:
    """A usage dict read as the SDK's Usage object (what ``prices.Usage.add`` takes)."""

    def __init__(self, raw: dict) -> None:
        self.input_tokens = _int(raw.get("input_tokens"))
        self.output_tokens = _int(raw.get("output_tokens"))
        self.cache_read_input_tokens = _int(raw.get("cache_read_input_tokens"))
        self.cache_creation_input_tokens = _int(raw.get("cache_creation_input_tokens"))
        split = raw.get("cache_creation")
        self.cache_creation = (
            _Split(_int(split.get("ephemeral_1h_input_tokens"))) if isinstance(split, dict) else None
        )


@dataclass
class _Split:
    ephemeral_1h_input_tokens: int


def _int(value: object) -> int:
    return value if type(value) is int and value > 0 else 0


# A server-sent event line longer than this is not one the meter needs (usage events are small); its bytes
# are still relayed, only not parsed.
_MAX_EVENT_LINE = 1 << 20


class AnswerMeter:
    """Reads an answer's bytes as they are relayed and keeps what it says about itself.

    Streamed (https://docs.anthropic.com/en/api/messages-streaming): ``message_start`` carries the model and
    the input-side usage, ``message_delta`` the ``stop_reason`` and the cumulative usage (its fields replace
    the start's), a ``content_block_start`` of type ``tool_use`` a tool call. Not streamed: the JSON message,
    kept up to ``max_json_bytes``.
    """

    def __init__(self, *, streamed: bool, max_json_bytes: int = 8 << 20) -> None:
        self.streamed = streamed
        self.max_json_bytes = max_json_bytes
        self.model: str | None = None
        self.usage: dict | None = None
        self.stop_reason: str | None = None
        self.tool_use = False
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        if not self.streamed:
            if len(self._buffer) + len(chunk) <= self.max_json_bytes:
                self._buffer += chunk
            return
        self._buffer += chunk
        while (end := self._buffer.find(b"\n")) != -1:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if line.startswith(b"data:"):
                self._event(line[5:])
        if len(self._buffer) > _MAX_EVENT_LINE:
            self._buffer.clear()
            self._skipping = True

    def finish(self) -> None:
        if self.streamed:
            return
        try:
            message = json.loads(self._buffer)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "message":
            self.model = message.get("model") if isinstance(message.get("model"), str) else None
            self.usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
            self.stop_reason = message.get("stop_reason")
            content = message.get("content") if isinstance(message.get("content"), list) else []
            self.tool_use = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)

    def _event(self, data: bytes) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = event["message"]
            self.model = message.get("model") if isinstance(message.get("model"), str) else None
            self.usage = dict(message.get("usage") or {})
        elif kind == "message_delta":
            if isinstance(event.get("usage"), dict):
                self.usage = {
                    **(self.usage or {}),
                    **{k: v for k, v in event["usage"].items() if v is not None},
                }
            if isinstance(event.get("delta"), dict):
                self.stop_reason = event["delta"].get("stop_reason")
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                self.tool_use = True
