"""The Claude Code session backend (``JADA_AGENT_BACKEND=claude-code``). Plain Python, no Dagster.

One attempt is one ``claude_agent_sdk.query`` over the Claude Code CLI that the ``claude-agent-sdk`` wheel
bundles, run inside the bubblewrap sandbox behind the key proxy (``claude_code_sandbox.py``). It keeps the
session contract of ``session.py``: the same ``SessionSpec`` in, the same ``SessionResult`` out, the same
``Transcript``, as the Messages backend (``messages_backend.py``), of which it uses nothing.

- The model's commands never run beside the CLI. The CLI's own ``Bash`` is off; the session's ``bash`` tool
  (``mcp__jada__bash`` to the model) is served in the run worker through the SDK's in-process MCP server and
  runs each command with the Messages backend's own ``Toolbox``: a fresh per-command sandbox with its own PID
  namespace, the same limits, and nothing of the CLI's sandbox (its processes, the bridge, the proxy's
  socket) bound in. The CLI keeps its file tools, confined to the working directory by its sandbox.
- Tools: an explicit allow-list (``CLAUDE_CODE_TOOLS`` and the bash tool), ``permission_mode="dontAsk"``
  (anything else is denied, never prompted), no settings files read (``setting_sources=[]``: a repository's
  ``.claude/`` cannot grant itself tools or hooks). ``bypassPermissions`` is never used.
- The turn cap is the CLI's ``max_turns``; reaching it (``error_max_turns``) is ``incomplete``. The handoff
  keeps the Claude Code session id and its cumulative cost; the next attempt ``resume``s that session when
  its files are still in the task's config folder, else starts fresh from the handoff as the Messages
  backend does. ``SessionResult.continuation`` says which.
- Cost and outcome are what the worker saw, not what the CLI reports. The key proxy's gate (``api_gate.py``)
  prices every answer it relays from the one price table: that is the attempt's cost. It refuses a request
  whose worst case would pass what the task's cost ceiling leaves (``over_budget``); the CLI's
  ``max_budget_usd`` is kept as a first check. The CLI's own ``total_cost_usd`` (minus what the handoff
  recorded, as it counts a resumed session from its start) is kept beside it in metadata, and a difference
  is logged. ``done`` needs the CLI to exit cleanly with a ``success`` result *and* the proxy's last answer
  to be a final one (``end_turn``, no tool call pending); a result that disagrees is logged and never
  trusted (``transient``), and so is a CLI that ends without a result.
- API errors: the CLI retries them itself (``CLAUDE_CODE_MAX_RETRIES``), then reports the status
  (``api_error_status``): 400/401/403/404/413/422 are ``failed``, the rest ``transient``
  (``session.outcome_for_status``).
- The transcript is the SDK's message stream, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import threading
import time
from pathlib import Path

from jada_pipelines import settings
from jada_pipelines.agents import session
from jada_pipelines.agents.api_gate import ApiGate, GateRules
from jada_pipelines.agents.bwrap_sandbox import network_mode, sandbox_mode
from jada_pipelines.agents.claude_code_sandbox import bundled_cli, cli_version, sandboxed_cli
from jada_pipelines.agents.session import SessionOptions, SessionResult, SessionSpec, Transcript
from jada_pipelines.agents.tools import Toolbox, WorkdirFull, scrubbed_environment
from jada_pipelines.agents.workdir_watch import SCAN_COST_FACTOR, WorkdirLimits, over_limit

logger = logging.getLogger(__name__)

BACKEND = session.CLAUDE_CODE
# The CLI's own tools: files only. Its Bash is off; commands go through BASH_TOOL (see the module docstring).
CLAUDE_CODE_TOOLS = ("Read", "Edit", "Write", "Grep", "Glob", "TodoWrite")
MCP_SERVER = "jada"
BASH_TOOL = f"mcp__{MCP_SERVER}__bash"
BASH_DESCRIPTION = (
    "Run a bash command in the working directory and return its output (stdout and stderr, cut to the first "
    "and last 15,000 characters). Each command runs in a fresh sandboxed shell: cd, variables and background "
    "processes do not carry over between calls (files do). No network unless the operator enabled it."
)
BASH_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The bash command to run."},
        "restart": {"type": "boolean", "description": "Ignored: every command already starts fresh."},
    },
}
# The handoff key that carries the Claude Code session to the next attempt.
SESSION_KEY = "claude_code_session"
APPEND_PROMPT = (
    "You work autonomously on one queued task in the working directory; nobody answers questions. Work in "
    "small verified steps. When the task is finished, reply with a short summary of what you did and how you "
    "checked it."
)
RESUME_PROMPT = (
    "This is attempt {attempt}. The previous attempt of this session reached its turn cap. Carry on from "
    "where you stopped and finish the task."
)
_POLL_S = 0.2
# After killing the sandbox, how long the SDK may take to notice before its query is cancelled.
_KILL_WAIT_S = 10.0
# How often the working directory and the CLI's config folder (both writable by the CLI) are measured; while a
# command runs, its own watch measures the working directory too (tools.Toolbox).
_DISK_CHECK_S = 1.0


def _disk_check(workdir: Path, config: Path):
    """A function returning why the session must end when the working directory and the task's Claude Code
    folder together are over JADA_AGENT_WORKDIR_MAX_MB or JADA_AGENT_WORKDIR_MAX_FILES, else None."""
    limits = WorkdirLimits.from_env()
    return lambda: over_limit([workdir, config], limits)


def bash_server(toolbox: Toolbox, on_workdir_full):
    """The SDK's in-process MCP server with the one ``bash`` tool, run by ``toolbox`` in the run worker (each
    command in its own sandbox). A full working directory calls ``on_workdir_full(why)``: the session ends."""
    from claude_agent_sdk import create_sdk_mcp_server, tool

    @tool("bash", BASH_DESCRIPTION, BASH_SCHEMA)
    async def bash(args: dict) -> dict:
        try:
            result = await asyncio.to_thread(toolbox.run, "bash", dict(args))
        except WorkdirFull as exc:
            on_workdir_full(str(exc))
            return {"content": [{"type": "text", "text": f"[{exc}]"}], "is_error": True}
        return {
            "content": [{"type": "text", "text": result.content or "(no output)"}],
            "is_error": result.is_error,
        }

    return create_sdk_mcp_server(MCP_SERVER, tools=[bash])


def config_dir(task_id: str) -> Path:
    """The task's Claude Code folder (CLAUDE_CONFIG_DIR): its sessions, kept between attempts for ``resume``."""
    return settings.data_dir() / "claude-code" / task_id


def session_files_exist(config: Path, session_id: str) -> bool:
    return any(config.glob(f"projects/*/{session_id}.jsonl"))


# check_cli runs the CLI's `--version` once per this many seconds (the sensor asks every tick).
_CLI_PROBE_TTL_S = 300.0
_cli_probes: dict[str, tuple[float, str | None]] = {}


def probe_cli(cli: Path) -> str | None:
    """None when ``cli --version`` runs and reports the version its wheel says; else why not, with the fix.
    (``--version`` makes no network call and runs no model; an empty environment keeps every secret out.)"""
    import subprocess

    cached = _cli_probes.get(str(cli))
    if cached and time.monotonic() - cached[0] < _CLI_PROBE_TTL_S:
        return cached[1]
    expected = cli_version(cli)
    try:
        done = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=30, env={})
        reported = done.stdout.strip()
        if done.returncode != 0 or not reported.startswith(expected):
            detail = (done.stderr or done.stdout).strip().splitlines()
            problem = (
                f"The Claude Code CLI at {cli} does not start as version {expected} "
                f"({detail[-1] if detail else f'exit {done.returncode}'})"
            )
        else:
            problem = None
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"The Claude Code CLI at {cli} could not be started ({exc})"
    if problem:
        problem += (
            ": reinstall the extra (`pip install --force-reinstall -c requirements.lock -e '.[claude-code]'`) "
            "on a Linux x86-64 worker, or set JADA_AGENT_BACKEND=messages."
        )
    _cli_probes[str(cli)] = (time.monotonic(), problem)
    return problem


def check_cli() -> Path:
    """The bundled CLI, or ConfigError naming the fix (missing package, no binary, a CLI that does not start,
    a sandbox that is off)."""
    cli = bundled_cli()
    if problem := probe_cli(cli):
        raise settings.ConfigError(problem)
    if sandbox_mode() == "off":
        raise settings.ConfigError(
            "JADA_AGENT_SANDBOX=off, but Claude Code sessions only run sandboxed (the CLI would hold the API "
            "key and run the model's commands unconfined): unset JADA_AGENT_SANDBOX, or use "
            "JADA_AGENT_BACKEND=messages."
        )
    if sandbox_mode() == "uid":
        raise settings.ConfigError(
            "JADA_AGENT_SANDBOX=uid, but Claude Code sessions run only under bubblewrap: the CLI's own file tools "
            "are confined by bubblewrap, and without it the CLI would have to run as the slot uid to write the "
            "working directory, the same uid as the model's commands, which could then signal it and open its "
            "pipes. Use JADA_AGENT_BACKEND=messages where bubblewrap cannot run."
        )
    return cli


@dataclasses.dataclass
class _Progress:
    session_id: str | None = None
    message_ids: set[str] = dataclasses.field(default_factory=set)
    last_text: str = ""
    retries: int = 0  # the CLI's api_retry events
    result: object = None
    error: str | None = None
    exit_error: str | None = None  # how the CLI ended, when not cleanly (also after a result)
    limit_error: str | None = None  # why a limit (the disk) ended the session


def run_claude_code_session(spec: SessionSpec, **options) -> SessionResult:
    """Run one attempt of ``spec`` with Claude Code, sandboxed, to its outcome. ``options``: the fields of
    ``session.SessionOptions``."""
    run = SessionOptions(**options)
    deadline = session.session_deadline(spec)
    cli = check_cli()
    started = time.monotonic()
    config = config_dir(spec.task_id)
    previous = (spec.handoff or {}).get(SESSION_KEY) or {}
    resume = (
        previous.get("id") if previous.get("id") and session_files_exist(config, previous["id"]) else None
    )
    if resume:
        prompt, continuation = RESUME_PROMPT.format(attempt=spec.attempt), f"resumed session {resume}"
    else:
        handoff = {k: v for k, v in (spec.handoff or {}).items() if k != SESSION_KEY} or None
        prompt = session.first_message(spec.prompt, handoff, spec.attempt)
        continuation = "fresh, from the handoff" if handoff else "fresh"
    previous_cost = float(previous.get("total_cost_usd") or 0.0) if resume else 0.0
    transcript = Transcript.for_attempt(spec)
    transcript.write_start(spec, backend=BACKEND, continuation=continuation)
    try:
        progress = _Progress()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        workdir = spec.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        gate = ApiGate(GateRules.from_env(spec.model), budget_usd=spec.max_cost_usd)
        # Its own stop: set by _drive when the session ends for any reason (the CLI gone included), so no
        # command outlives the session.
        toolbox = Toolbox.from_env(
            workdir, stop=threading.Event(), deadline=deadline, **run.toolbox_overrides()
        )
        with sandboxed_cli(
            cli,
            workdir=workdir,
            config_dir=config,
            env=scrubbed_environment(workdir),
            gate=gate,
            network=network_mode() == "host",
            tmp_size_mb=settings.get("JADA_AGENT_TMP_MB"),
            cli_env={
                "CLAUDE_CODE_MAX_RETRIES": str(run.max_retries),
                "API_TIMEOUT_MS": str(int(run.api_timeout_s * 1000)),
            },
        ) as sandboxed:
            from claude_agent_sdk import ClaudeAgentOptions

            def on_workdir_full(why: str) -> None:
                progress.limit_error = why

            agent_options = ClaudeAgentOptions(
                cli_path=str(sandboxed.executable),
                cwd=str(workdir),
                model=spec.model,
                max_turns=spec.max_turns,
                # The CLI's budget counts the whole session, so a resumed one starts with what it already cost.
                max_budget_usd=None if spec.max_cost_usd is None else spec.max_cost_usd + previous_cost,
                tools=list(CLAUDE_CODE_TOOLS),
                allowed_tools=[*CLAUDE_CODE_TOOLS, BASH_TOOL],
                mcp_servers={MCP_SERVER: bash_server(toolbox, on_workdir_full)},
                permission_mode="dontAsk",
                setting_sources=[],
                system_prompt={"type": "preset", "preset": "claude_code", "append": APPEND_PROMPT},
                resume=resume,
                stderr=lambda line: stderr_tail.append(line[-500:]),
            )
            disk_check = _disk_check(workdir, config)
            limit = asyncio.run(
                _drive(
                    prompt,
                    agent_options,
                    progress,
                    transcript,
                    run.stop,
                    deadline,
                    sandboxed,
                    disk_check,
                    toolbox.stop,
                )
            )
            sandboxed.proxy.drain()  # every answer relayed is priced before the outcome is decided
        result = _result(spec, progress, limit, previous_cost, stderr_tail, transcript, gate)
        result.continuation = continuation
        result.cli_version = cli_version(cli)
        return transcript.finish(result, started, session_id=result.session_id)
    finally:
        transcript.close()


async def _drive(
    prompt,
    options,
    progress: _Progress,
    transcript: Transcript,
    stop,
    deadline,
    sandboxed,
    disk_check,
    end_commands,
) -> str | None:
    """Consume the SDK's messages until the result, the stop event, the deadline, a full disk or the cost
    ceiling (the key proxy refused a request for it); returns what cut it short ("lost", "wall_clock",
    "workdir" or "cost"), else None. Cutting short kills the sandbox (bwrap and all in it): the CLI's output
    ends, and the SDK's query finishes and cleans up as after any CLI exit. ``end_commands`` is set on the way
    out: a command still running (its tool call can outlive a killed CLI) is ended with its sandbox."""
    try:
        task = asyncio.ensure_future(_consume(prompt, options, progress, transcript))
        next_disk_check = time.monotonic() + _DISK_CHECK_S
        while not task.done():
            await asyncio.wait({task}, timeout=_POLL_S)
            cut = "lost" if stop.is_set() else "wall_clock" if time.monotonic() >= deadline else None
            if cut is None and progress.limit_error is not None:
                cut = "workdir"
            if cut is None and sandboxed.proxy.gate.over_budget:
                cut = "cost"  # the CLI would only retry the refused request
            if cut is None and time.monotonic() >= next_disk_check:
                scan_started = time.monotonic()
                if (full := await asyncio.to_thread(disk_check)) is not None:
                    progress.limit_error, cut = full, "workdir"
                # Spaced out on a big tree, as the command's own watch is (workdir_watch.SCAN_COST_FACTOR).
                scan_s = time.monotonic() - scan_started
                next_disk_check = time.monotonic() + max(_DISK_CHECK_S, SCAN_COST_FACTOR * scan_s)
            if cut and not task.done():
                end_commands.set()
                sandboxed.kill()
                done, _ = await asyncio.wait({task}, timeout=_KILL_WAIT_S)
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                return cut
        return None
    finally:
        end_commands.set()


async def _consume(prompt, options, progress: _Progress, transcript: Transcript) -> None:
    from claude_agent_sdk import AssistantMessage, ClaudeSDKError, ResultMessage, SystemMessage, query

    try:
        async for message in query(prompt=prompt, options=options):
            data = dataclasses.asdict(message) if dataclasses.is_dataclass(message) else message
            transcript.write(type(message).__name__, message=data)
            if isinstance(message, SystemMessage) and message.subtype == "init":
                progress.session_id = message.data.get("session_id") or progress.session_id
            elif isinstance(message, SystemMessage) and message.subtype == "api_retry":
                progress.retries += 1
            elif isinstance(message, AssistantMessage):
                if message.model != "<synthetic>" and message.message_id:
                    progress.message_ids.add(message.message_id)
                text = "\n".join(getattr(block, "text", "") for block in message.content).strip()
                progress.last_text = text or progress.last_text
            elif isinstance(message, ResultMessage):
                progress.result = message
                progress.session_id = message.session_id or progress.session_id
    except ClaudeSDKError as exc:
        # After an error result the CLI exits non-zero and the SDK raises; the result is already recorded. A
        # CLI that ends badly after a success result is kept too: such a result is not trusted.
        progress.exit_error = f"{type(exc).__name__}: {exc}"
        if progress.result is None:
            progress.error = f"{type(exc).__name__}: {exc}"
            transcript.write("error", message=progress.error)


def _handoff(progress: _Progress, total_cost: float, note: str) -> dict:
    handoff = session.empty_handoff()
    handoff["notes"] = note + (f" Its last message: {progress.last_text}" if progress.last_text else "")
    handoff[SESSION_KEY] = {"id": progress.session_id, "total_cost_usd": total_cost}
    return handoff


def _untrusted_success(progress: _Progress, gate: ApiGate) -> str | None:
    """Why a ``success`` result cannot be taken as the session's end, else None: the CLI must also have exited
    cleanly, and the key proxy's last relayed answer must be a final one."""
    reasons = []
    if progress.exit_error is not None:
        reasons.append(f"the CLI then ended with {progress.exit_error}")
    answer = gate.last_answer
    if answer is None:
        reasons.append("no answer went through the key proxy")
    elif answer.stop_reason not in FINAL_STOP_REASONS or answer.tool_use:
        pending = ", with a tool call pending" if answer.tool_use else ""
        reasons.append(f"the key proxy's last answer ended with stop_reason {answer.stop_reason!r}{pending}")
    return "; ".join(reasons) or None


FINAL_STOP_REASONS = ("end_turn", "stop_sequence")


def _result(
    spec: SessionSpec,
    progress: _Progress,
    limit: str | None,
    previous_cost: float,
    stderr_tail: collections.deque[str],
    transcript: Transcript,
    gate: ApiGate,
) -> SessionResult:
    message = progress.result
    # total_cost_usd counts the whole Claude Code session, earlier attempts included when resumed.
    reported_total = float(getattr(message, "total_cost_usd", None) or 0.0)
    cli_cost = max(0.0, reported_total - previous_cost) if message else None
    cost = gate.spent_usd  # what the key proxy relayed and priced: the attempt's cost
    if cli_cost is not None and abs(cli_cost - cost) > 1e-6:
        transcript.write("cost_difference", cli_cost_usd=cli_cost, proxy_cost_usd=cost)
        logger.warning(
            "Claude Code reported $%.6f for task %s attempt %d; the key proxy counted $%.6f (recorded).",
            cli_cost,
            spec.task_id,
            spec.attempt,
            cost,
        )
    # For the next attempt's resume: the CLI's own running total (its max_budget_usd counts from the start).
    total_cost = reported_total if message else previous_cost + cost
    common = {
        "turns": len(progress.message_ids),
        "usage": gate.usage,
        "cost_usd": cost,
        "duration_s": 0.0,
        "api_retries": progress.retries,
        "request_ids": [],  # the CLI does not report them
        "transcript_path": transcript.path,
        "backend": BACKEND,
        "session_id": progress.session_id,
        "extra": {
            "cli_reported_cost_usd": round(cli_cost, 6) if cli_cost is not None else "no result",
            "proxy_answers": len(gate.answers),
            "proxy_refusals": dict(gate.refusals),
        },
    }
    subtype = getattr(message, "subtype", None)
    stop_reason = getattr(message, "stop_reason", None)
    if limit == "lost":
        return SessionResult("lost", None, error=session.LEASE_LOST, **common)
    if limit == "workdir":
        return SessionResult("failed", None, error=progress.limit_error, limit="workdir", **common)
    if limit == "wall_clock":
        handoff = _handoff(progress, total_cost, "The session reached its wall-clock limit.")
        return SessionResult(
            "incomplete",
            None,
            handoff=handoff,
            error=session.WALL_CLOCK_REACHED,
            limit="wall_clock",
            **common,
        )
    doubt = _untrusted_success(progress, gate) if subtype == "success" and not message.is_error else None
    finished = subtype == "success" and not message.is_error and doubt is None
    budget = spec.max_cost_usd
    if (
        gate.over_budget
        or subtype == "error_max_budget_usd"
        or (budget is not None and cost >= budget and not finished)
    ):
        error = session.cost_ceiling_error(cost, budget or 0.0)
        if gate.over_budget:
            error += " (the key proxy refused a request whose worst case would have passed it)"
        return SessionResult("over_budget", stop_reason, error=error, limit="cost", **common)
    if message is None:
        how = progress.error.splitlines()[0] if progress.error else None
        detail = "the Claude Code CLI ended without a result" + (f" ({how})" if how else "")
        tail = " | ".join(list(stderr_tail)[-5:])
        error = f"{detail}{f' (stderr: {tail})' if tail else ''}"
        handoff = _handoff(progress, total_cost, "The Claude Code CLI ended without a result.")
        return SessionResult("transient", None, handoff=handoff, error=error, **common)
    if finished:
        return SessionResult(
            "done", stop_reason, summary=message.result or progress.last_text or None, **common
        )
    if doubt is not None:
        transcript.write("result_disagrees", reported=message.result, why=doubt)
        logger.warning("Claude Code's success result for task %s was not trusted: %s", spec.task_id, doubt)
        error = f"the Claude Code CLI reported success, but {doubt}; its result was not trusted"
        handoff = _handoff(progress, total_cost, "The session's end could not be confirmed.")
        return SessionResult("transient", stop_reason, handoff=handoff, error=error, **common)
    if subtype == "error_max_turns":
        note = f"The Claude Code session {progress.session_id} reached its turn cap ({spec.max_turns})."
        return SessionResult(
            "incomplete", stop_reason, handoff=_handoff(progress, total_cost, note), **common
        )
    status = getattr(message, "api_error_status", None)
    text = message.result or "; ".join(message.errors or []) or subtype or "error"
    if status is not None:
        return SessionResult(
            session.outcome_for_status(status),
            stop_reason,
            error=f"Anthropic API {status}: {text}",
            status_code=status,
            **common,
        )
    return SessionResult(
        "transient", stop_reason, error=f"Claude Code ended with {subtype}: {text}", **common
    )
