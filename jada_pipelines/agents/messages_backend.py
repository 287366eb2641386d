"""The Messages session backend (the default, ``JADA_AGENT_BACKEND=messages``). Plain Python, no Dagster.

One attempt is a tool-use loop with the ``anthropic`` SDK, capped at ``max_turns`` model calls; it keeps the
session contract of ``session.py`` (``SessionSpec`` in, ``SessionResult`` out, a ``Transcript``). What the loop
does with each ``stop_reason``:
- ``tool_use``: run every tool call in the working directory and send the results back (matching ids).
- ``pause_turn``: send the conversation back as it is so the model carries on (counted as a turn).
- ``max_tokens``: answer any tool calls, then ask the model to continue.
- ``end_turn`` / ``stop_sequence``: ``done``; the final text is the summary.
- ``refusal``: ``refused``, a dead letter for a person (the category and explanation go in the error).
- ``model_context_window_exceeded``: ``incomplete``, with a handoff built from what the session touched
  (asking the model for one would overflow the same window).
A session whose cost reaches the attempt's share of the task's cost ceiling (``SessionSpec.max_cost_usd``)
ends after that call with outcome ``over_budget``: a dead letter, whose error names the ceiling.
Reaching the turn cap is an outcome, not a crash: pending tool calls are answered "not executed", then one
extra call, not counted and with ``tool_choice: none``, asks for a JSON handoff; the outcome is
``incomplete``. API errors left after the SDK's own retries: 400/401/403/404/413/422 are permanent
(``failed``, ``session.outcome_for_status``), 429/5xx/529 and network errors are ``transient``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jada_pipelines import settings
from jada_pipelines.agents.prices import Usage, cost_usd, price_for
from jada_pipelines.agents.session import (
    HANDOFF_KEYS,
    LEASE_LOST,
    WALL_CLOCK_REACHED,
    SessionOptions,
    SessionResult,
    SessionSpec,
    Transcript,
    cost_ceiling_error,
    empty_handoff,
    first_message,
    outcome_for_status,
    require_api_credentials,
    session_deadline,
    transcript_path,
)
from jada_pipelines.agents.tools import Toolbox, ToolResult, WorkdirFull

if TYPE_CHECKING:
    import anthropic

# The model is told this many calls before the cap that it should finish or prepare a handoff.
WARN_TURNS_BEFORE_CAP = 3
SYSTEM_PROMPT = (
    "You are an autonomous software engineer working on one task in the working directory {workdir}. "
    "Use the bash tool and the text editor to inspect and change files there. Each bash command runs in a "
    "fresh shell started in that directory. Work in small verified steps. When the task is finished, reply "
    "with a short summary of what you did and how you checked it."
)
HANDOFF_REQUEST = (
    "You have reached this session's turn cap; no more tools will run. A fresh session will continue the task "
    "from your handoff. Reply with only a JSON object with these keys: "
    '"done" (list of what is finished), "next_steps" (list, in order), "failed_approaches" (list of what did '
    'not work and why), "files_touched" (list of paths).'
)


def turn_cap_warning(turns_left: int) -> str:
    return (
        f"Note: {turns_left} model calls remain before this session's turn cap. Finish the task if you can; "
        "otherwise get to a clean state and be ready to write a handoff for the next session."
    )


class SessionError(Exception):
    """The API call failed for good; ``outcome`` is ``failed`` (permanent) or ``transient``."""

    def __init__(self, outcome: str, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status_code = status_code


@dataclass
class RetryCounter:
    """Counts the SDK's retries: every retried request carries ``x-stainless-retry-count`` > 0."""

    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            with self._lock:
                self.retries += 1


def build_client(*, max_retries: int, timeout_s: float, retry_counter: RetryCounter) -> anthropic.Anthropic:
    """The SDK client; it reads ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) and ANTHROPIC_BASE_URL itself."""
    import anthropic

    require_api_credentials()
    http_client = anthropic.DefaultHttpxClient(event_hooks={"request": [retry_counter]})
    return anthropic.Anthropic(max_retries=max_retries, timeout=timeout_s, http_client=http_client)


def parse_handoff(text: str, files_touched: list[str]) -> dict:
    """The JSON handoff from the model's reply; a reply that is not JSON is kept as ``notes``."""
    start, end = text.find("{"), text.rfind("}")
    parsed = None
    if start != -1 and end > start:
        try:
            parsed = json.loads(text[start : end + 1])
        except ValueError:
            parsed = None
    handoff = empty_handoff()
    if isinstance(parsed, dict):
        handoff.update({key: parsed[key] for key in HANDOFF_KEYS if isinstance(parsed.get(key), list)})
    elif text.strip():
        handoff["notes"] = text.strip()
    # Files the editor really changed are facts; the model's own list may forget some.
    handoff["files_touched"] = list(dict.fromkeys([*handoff["files_touched"], *files_touched]))
    return handoff


def _text_of(content) -> str:
    return "\n".join(block.text for block in content if block.type == "text").strip()


class ClaudeSession:
    """Runs one attempt of one task. ``stop`` is set from outside (lease lost) to end the session early."""

    def __init__(
        self,
        spec: SessionSpec,
        *,
        client: anthropic.Anthropic,
        toolbox: Toolbox,
        transcript: Transcript,
        retry_counter: RetryCounter | None = None,
    ) -> None:
        price_for(spec.model)  # an unpriced model fails before any money is spent
        self.spec = spec
        self.client = client
        self.toolbox = toolbox
        self.transcript = transcript
        self.retry_counter = retry_counter or RetryCounter()
        self.usage = Usage()
        self.request_ids: list[str] = []
        self.turns = 0
        self.messages: list[dict] = [
            {"role": "user", "content": first_message(spec.prompt, spec.handoff, spec.attempt)}
        ]
        self.system = SYSTEM_PROMPT.format(workdir=toolbox.workdir)
        self.tools = toolbox.definitions()

    @property
    def stop(self) -> threading.Event:
        return self.toolbox.stop

    def run(self) -> SessionResult:
        started = time.monotonic()
        self.transcript.write_start(self.spec)
        try:
            result = self._loop()
        except SessionError as exc:
            result = self._result(exc.outcome, None, error=str(exc), status_code=exc.status_code)
        return self.transcript.finish(result, started)

    def _result(self, outcome: str, stop_reason: str | None, **extra) -> SessionResult:
        return SessionResult(
            outcome=outcome,
            stop_reason=stop_reason,
            turns=self.turns,
            usage=self.usage,
            cost_usd=cost_usd(self.spec.model, self.usage),
            duration_s=0.0,
            api_retries=self.retry_counter.retries,
            request_ids=self.request_ids,
            transcript_path=self.transcript.path,
            **extra,
        )

    def _loop(self) -> SessionResult:
        try:
            return self._turns()
        except WorkdirFull as exc:
            return self._result("failed", None, error=str(exc), limit="workdir")

    def _past_deadline(self) -> bool:
        deadline = self.toolbox.deadline
        return deadline is not None and time.monotonic() >= deadline

    def _turns(self) -> SessionResult:
        reply = None
        while True:
            if self.stop.is_set():
                return self._result("lost", None, error=LEASE_LOST)
            if reply is not None and self._past_deadline():
                return self._hand_off(reply, answered=True, limit="wall_clock")
            reply = self._call()
            self.turns += 1
            stop_reason = reply.stop_reason
            if (over := self._over_budget(stop_reason)) is not None:
                return over
            if stop_reason in ("end_turn", "stop_sequence"):
                return self._result("done", stop_reason, summary=_text_of(reply.content) or None)
            if stop_reason == "refusal":
                details = reply.stop_details
                reason = f"{details.category}: {details.explanation}" if details else "no details given"
                return self._result("refused", stop_reason, error=f"the model refused the task ({reason})")
            if stop_reason == "model_context_window_exceeded":
                handoff = parse_handoff("", self.toolbox.files_touched)
                handoff["notes"] = "The context window filled up; start a fresh session from this handoff."
                return self._result("incomplete", stop_reason, handoff=handoff)
            if stop_reason not in ("tool_use", "pause_turn", "max_tokens"):
                return self._result("failed", stop_reason, error=f"unexpected stop_reason {stop_reason!r}")
            if self.turns >= self.spec.max_turns:
                return self._hand_off(reply)
            self._continue_after(reply)

    def _over_budget(self, stop_reason: str | None) -> SessionResult | None:
        """``over_budget`` once this attempt's cost reached what the task's cost ceiling left it (unless the
        model just finished: that work is kept as ``done``)."""
        limit = self.spec.max_cost_usd
        if limit is None or stop_reason in ("end_turn", "stop_sequence"):
            return None
        spent = cost_usd(self.spec.model, self.usage)
        if spent < limit:
            return None
        return self._result("over_budget", stop_reason, error=cost_ceiling_error(spent, limit), limit="cost")

    def _continue_after(self, reply) -> None:
        """Add the user message that lets the model carry on after a tool_use, pause_turn or max_tokens."""
        content = [self._run_tool(block) for block in reply.content if block.type == "tool_use"]
        if reply.stop_reason == "max_tokens":
            content.append(
                {"type": "text", "text": "Your reply was cut off at max_tokens; continue from there."}
            )
        turns_left = self.spec.max_turns - self.turns
        # A cap of 3 or fewer is warned after the first call, so every capped session gets its warning.
        if turns_left == min(WARN_TURNS_BEFORE_CAP, self.spec.max_turns - 1):
            content.append({"type": "text", "text": turn_cap_warning(turns_left)})
        if content:  # a pause_turn is resumed by sending the conversation back as it is
            self.messages.append({"role": "user", "content": content})

    def _run_tool(self, block) -> dict:
        if self.stop.is_set():
            outcome = ToolResult("not executed: the session was stopped", is_error=True)
        else:
            outcome = self.toolbox.run(block.name, dict(block.input))
        self.transcript.write(
            "tool_result",
            tool_use_id=block.id,
            name=block.name,
            is_error=outcome.is_error,
            content=outcome.content,
        )
        return {
            "type": "tool_result",
            "tool_use_id": block.id,
            "content": outcome.content,
            "is_error": outcome.is_error,
        }

    def _hand_off(self, reply, *, answered: bool = False, limit: str | None = None) -> SessionResult:
        """At the cap (or the wall-clock limit): answer pending tool calls as not executed, then one uncounted
        call for a JSON handoff. ``answered``: the reply's tool calls already have their results in the last
        user message, which then carries the request."""
        if answered and self.messages[-1]["role"] == "user":
            self.messages[-1]["content"].append({"type": "text", "text": HANDOFF_REQUEST})
        else:
            content = [
                {
                    "type": "tool_result",
                    "tool_use_id": block.id,
                    "content": "not executed: the turn cap was reached",
                    "is_error": True,
                }
                for block in reply.content
                if block.type == "tool_use"
            ]
            content.append({"type": "text", "text": HANDOFF_REQUEST})
            self.messages.append({"role": "user", "content": content})
        try:
            # tool_choice none rather than no tools: the history holds tool_use blocks, which need the tool list.
            final = self._call(tool_choice={"type": "none"})
            handoff = parse_handoff(_text_of(final.content), self.toolbox.files_touched)
            error = None
        except SessionError as exc:
            handoff = parse_handoff("", self.toolbox.files_touched)
            error = f"the handoff call failed: {exc}"
        if limit == "wall_clock":
            error = f"{WALL_CLOCK_REACHED}; {error}" if error else WALL_CLOCK_REACHED
        return self._result("incomplete", reply.stop_reason, handoff=handoff, error=error, limit=limit)

    def _call(self, **extra):
        """One Messages API call, recorded in the transcript; API errors become SessionError."""
        import anthropic

        self.transcript.write("request", turn=self.turns + 1, last_message=self.messages[-1], **extra)
        try:
            reply = self.client.messages.create(
                model=self.spec.model,
                max_tokens=self.spec.max_tokens,
                system=self.system,
                tools=self.tools,
                messages=self.messages,
                # Automatic caching: the breakpoint moves forward with the conversation, so each call re-reads
                # the previous calls' prefix from the cache instead of paying for it again.
                cache_control={"type": "ephemeral"},
                **extra,
            )
        except anthropic.APIStatusError as exc:
            self.request_ids.append(exc.request_id or "")
            outcome = outcome_for_status(exc.status_code)
            kind = (
                (exc.body or {}).get("error", {}).get("type", "error")
                if isinstance(exc.body, dict)
                else "error"
            )
            message = (
                f"Anthropic API {exc.status_code} {kind} (request {exc.request_id}): {_error_message(exc)}"
            )
            self.transcript.write("error", status=exc.status_code, message=message)
            raise SessionError(outcome, message, exc.status_code) from None
        except anthropic.APIConnectionError as exc:
            message = (
                f"could not reach the Anthropic API ({type(exc).__name__}): {exc} Check ANTHROPIC_BASE_URL "
                "(unset means https://api.anthropic.com) and this machine's network or proxy."
            )
            self.transcript.write("error", message=message)
            raise SessionError("transient", message) from None
        self.request_ids.append(reply._request_id or "")
        self.usage.add(reply.usage)
        self.messages.append(reply.to_param())
        self.transcript.write(
            "reply",
            stop_reason=reply.stop_reason,
            content=[block.to_dict() for block in reply.content],
            usage=reply.usage.to_dict(),
            request_id=reply._request_id,
        )
        return reply


def _error_message(exc) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str((body.get("error") or {}).get("message") or exc.message)


def run_session(spec: SessionSpec, **options) -> SessionResult:
    """Build the client, toolbox and transcript for ``spec`` and run the session to its outcome. ``options``:
    the fields of ``session.SessionOptions``."""
    run = SessionOptions(**options)
    deadline = session_deadline(spec)
    retry_counter = RetryCounter()
    client = build_client(
        max_retries=run.max_retries, timeout_s=run.api_timeout_s, retry_counter=retry_counter
    )
    try:
        toolbox = Toolbox.from_env(spec.workdir, stop=run.stop, deadline=deadline, **run.toolbox_overrides())
    except settings.ConfigError as exc:  # JADA_AGENT_SANDBOX=uid found the session could not be confined
        client.close()
        return SessionResult(
            "transient" if getattr(exc, "transient", False) else "failed",
            None,
            0,
            Usage(),
            0.0,
            0.0,
            0,
            [],
            transcript_path(spec.task_id, spec.attempt),
            error=str(exc),
            limit="sandbox",
        )
    try:
        session = ClaudeSession(
            spec,
            client=client,
            toolbox=toolbox,
            transcript=Transcript.for_attempt(spec),
            retry_counter=retry_counter,
        )
        return session.run()
    finally:
        client.close()
        toolbox.close()
