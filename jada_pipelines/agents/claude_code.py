"""The Claude Code session backend (``JADA_AGENT_BACKEND=claude-code``). Plain Python, no Dagster.

One attempt is one ``claude_agent_sdk.query`` over the Claude Code CLI that the ``claude-agent-sdk`` wheel
bundles, run inside the bubblewrap sandbox behind the key proxy (``claude_sandbox.py``). It keeps the
contract of the Messages backend (``runner.py``): the same ``SessionSpec`` in, the same ``SessionResult`` out.

- Tools: an explicit allow-list (``CLAUDE_CODE_TOOLS``), ``permission_mode="dontAsk"`` (anything else is
  denied, never prompted), no settings files read (``setting_sources=[]``: a repository's ``.claude/`` cannot
  grant itself tools or hooks). ``bypassPermissions`` is never used.
- The turn cap is the CLI's ``max_turns``; reaching it (``error_max_turns``) is ``incomplete``. The handoff
  keeps the Claude Code session id and its cumulative cost; the next attempt ``resume``s that session when
  its files are still in the task's config folder, else starts fresh from the handoff as the Messages
  backend does. ``SessionResult.continuation`` says which.
- The cost ceiling maps to ``max_budget_usd``; reaching it (``error_max_budget_usd``) is ``over_budget``.
- Cost per attempt: the CLI's ``total_cost_usd`` counts the whole session across resumes, so the attempt's
  cost is the difference from what the handoff recorded.
- API errors: the CLI retries them itself (``CLAUDE_CODE_MAX_RETRIES``), then reports the status
  (``api_error_status``): 400/401/403/404/413/422 are ``failed``, the rest ``transient``.
- The transcript is the SDK's message stream, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import threading
import time
from pathlib import Path

from jada_pipelines import settings
from jada_pipelines.agents.claude_sandbox import bundled_cli, cli_version, sandboxed_cli
from jada_pipelines.agents.prices import Usage
from jada_pipelines.agents.runner import (
    HANDOFF_KEYS,
    PERMANENT_STATUSES,
    SessionResult,
    SessionSpec,
    Transcript,
    check_workdir,
    cost_ceiling_error,
    first_message,
    session_max_seconds,
    transcript_path,
)
from jada_pipelines.agents.sandbox import network_mode, sandbox_mode
from jada_pipelines.agents.tools import (
    DEFAULT_TMP_SIZE_MB,
    DEFAULT_WORKDIR_MAX_MB,
    directory_size,
    scrubbed_environment,
)

BACKEND = "claude-code"
CLAUDE_CODE_TOOLS = ("Read", "Edit", "Write", "Grep", "Glob", "Bash", "TodoWrite")
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
# How often the working directory and the CLI's config folder (both writable from inside) are measured.
_DISK_CHECK_S = 2.0


def _disk_check(workdir: Path, config: Path):
    """A function returning why the session must end when the working directory and the task's Claude Code
    folder together use more than JADA_AGENT_WORKDIR_MAX_MB, else None."""
    limit_mb = settings.env_positive_int("JADA_AGENT_WORKDIR_MAX_MB", DEFAULT_WORKDIR_MAX_MB)

    def check() -> str | None:
        used = directory_size(workdir) + directory_size(config)
        if used <= limit_mb * 2**20:
            return None
        return (
            f"the working directory {workdir} and the task's Claude Code folder {config} use {used / 2**20:.1f} "
            f"MB, over JADA_AGENT_WORKDIR_MAX_MB={limit_mb}; the session was ended. Free space in them (or raise "
            "the limit), then `jada task requeue` the task."
        )

    return check


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
            "JADA_AGENT_SANDBOX=uid, but Claude Code sessions run only under bubblewrap: the CLI runs the model's "
            "commands in its own process tree, under its own uid, so the slot uid could not hold them apart from "
            "the CLI and its session files. Use JADA_AGENT_BACKEND=messages where bubblewrap cannot run."
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
    limit_error: str | None = None  # why a limit (the disk) ended the session


def run_claude_code_session(
    spec: SessionSpec,
    *,
    stop: threading.Event | None = None,
    max_retries: int = 2,
    api_timeout_s: float = 300.0,
) -> SessionResult:
    """Run one attempt of ``spec`` with Claude Code, sandboxed, to its outcome."""
    check_workdir(spec.workdir)
    cli = check_cli()
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = started + session_max_seconds()
    config = config_dir(spec.task_id)
    previous = (spec.handoff or {}).get(SESSION_KEY) or {}
    resume = (
        previous.get("id") if previous.get("id") and session_files_exist(config, previous["id"]) else None
    )
    if resume:
        prompt, continuation = RESUME_PROMPT.format(attempt=spec.attempt), f"resumed session {resume}"
    else:
        handoff = {k: v for k, v in (spec.handoff or {}).items() if k != SESSION_KEY} or None
        prompt = first_message(spec.prompt, handoff, spec.attempt)
        continuation = "fresh, from the handoff" if handoff else "fresh"
    previous_cost = float(previous.get("total_cost_usd") or 0.0) if resume else 0.0
    transcript = Transcript(transcript_path(spec.task_id, spec.attempt))
    transcript.write(
        "start",
        task_id=spec.task_id,
        attempt=spec.attempt,
        model=spec.model,
        backend=BACKEND,
        continuation=continuation,
    )
    try:
        progress = _Progress()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        workdir = spec.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        with sandboxed_cli(
            cli,
            workdir=workdir,
            config_dir=config,
            env=scrubbed_environment(workdir),
            network=network_mode() == "host",
            tmp_size_mb=settings.env_positive_int("JADA_AGENT_TMP_MB", DEFAULT_TMP_SIZE_MB),
            cli_env={
                "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
                "API_TIMEOUT_MS": str(int(api_timeout_s * 1000)),
            },
        ) as sandboxed:
            from claude_agent_sdk import ClaudeAgentOptions

            options = ClaudeAgentOptions(
                cli_path=str(sandboxed.executable),
                cwd=str(workdir),
                model=spec.model,
                max_turns=spec.max_turns,
                # The CLI's budget counts the whole session, so a resumed one starts with what it already cost.
                max_budget_usd=None if spec.max_cost_usd is None else spec.max_cost_usd + previous_cost,
                tools=list(CLAUDE_CODE_TOOLS),
                allowed_tools=list(CLAUDE_CODE_TOOLS),
                permission_mode="dontAsk",
                setting_sources=[],
                system_prompt={"type": "preset", "preset": "claude_code", "append": APPEND_PROMPT},
                resume=resume,
                stderr=lambda line: stderr_tail.append(line[-500:]),
            )
            disk_check = _disk_check(workdir, config)
            limit = asyncio.run(
                _drive(prompt, options, progress, transcript, stop, deadline, sandboxed, disk_check)
            )
        result = _result(spec, progress, limit, previous_cost, stderr_tail, transcript.path)
        result.duration_s = time.monotonic() - started
        result.continuation = continuation
        result.cli_version = cli_version(cli)
        transcript.write_outcome(result, session_id=result.session_id)
    finally:
        transcript.close()
    return result


async def _drive(
    prompt, options, progress: _Progress, transcript: Transcript, stop, deadline, sandboxed, disk_check
) -> str | None:
    """Consume the SDK's messages until the result, the stop event, the deadline or a full disk; returns what
    cut it short ("lost", "wall_clock" or "workdir"), else None. Cutting short kills the sandbox (bwrap and all in it): the CLI's
    output ends, and the SDK's query finishes and cleans up as after any CLI exit."""
    task = asyncio.ensure_future(_consume(prompt, options, progress, transcript))
    next_disk_check = time.monotonic() + _DISK_CHECK_S
    while not task.done():
        await asyncio.wait({task}, timeout=_POLL_S)
        cut = "lost" if stop.is_set() else "wall_clock" if time.monotonic() >= deadline else None
        if cut is None and time.monotonic() >= next_disk_check:
            next_disk_check = time.monotonic() + _DISK_CHECK_S
            if (full := await asyncio.to_thread(disk_check)) is not None:
                progress.limit_error, cut = full, "workdir"
        if cut and not task.done():
            sandboxed.kill()
            done, _ = await asyncio.wait({task}, timeout=_KILL_WAIT_S)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            return cut
    return None


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
        # After an error result the CLI exits non-zero and the SDK raises; the result is already recorded.
        if progress.result is None:
            progress.error = f"{type(exc).__name__}: {exc}"
            transcript.write("error", message=progress.error)


def _usage(raw: dict | None) -> Usage:
    """The result's usage (over the whole ``query``), with the 1-hour cache writes apart as the CLI reports."""
    raw = raw or {}
    written = int(raw.get("cache_creation_input_tokens") or 0)
    one_hour = int((raw.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_write_5m_tokens=written - one_hour,
        cache_write_1h_tokens=one_hour,
        cache_read_tokens=int(raw.get("cache_read_input_tokens") or 0),
    )


def _handoff(progress: _Progress, total_cost: float, note: str) -> dict:
    handoff: dict = {key: [] for key in HANDOFF_KEYS}
    handoff["notes"] = note + (f" Its last message: {progress.last_text}" if progress.last_text else "")
    handoff[SESSION_KEY] = {"id": progress.session_id, "total_cost_usd": total_cost}
    return handoff


def _result(
    spec: SessionSpec,
    progress: _Progress,
    limit: str | None,
    previous_cost: float,
    stderr_tail: collections.deque[str],
    path: Path,
) -> SessionResult:
    message = progress.result
    total_cost = float(getattr(message, "total_cost_usd", None) or 0.0) + (0.0 if message else previous_cost)
    # total_cost_usd counts the whole Claude Code session, earlier attempts included when resumed.
    cost = max(0.0, total_cost - previous_cost) if message else 0.0
    common = {
        "turns": len(progress.message_ids),
        "usage": _usage(getattr(message, "usage", None)),
        "cost_usd": cost,
        "duration_s": 0.0,
        "api_retries": progress.retries,
        "request_ids": [],  # the CLI does not report them
        "transcript_path": path,
        "backend": BACKEND,
        "session_id": progress.session_id,
    }
    subtype = getattr(message, "subtype", None)
    stop_reason = getattr(message, "stop_reason", None)
    if limit == "lost":
        return SessionResult(
            "lost", None, error="the session was stopped: its lease was lost or withdrawn", **common
        )
    if limit == "workdir":
        return SessionResult("failed", None, error=progress.limit_error, limit="workdir", **common)
    if limit == "wall_clock":
        handoff = _handoff(progress, previous_cost, "The session reached its wall-clock limit.")
        reached = "the session reached its wall-clock limit (JADA_AGENT_SESSION_MAX_SECONDS) and was stopped"
        return SessionResult("incomplete", None, handoff=handoff, error=reached, limit="wall_clock", **common)
    if message is None:
        detail = progress.error or "the Claude Code CLI ended without a result"
        tail = " | ".join(list(stderr_tail)[-5:])
        error = f"{detail}{f' (stderr: {tail})' if tail else ''}"
        return SessionResult("transient", None, error=error, **common)
    if subtype == "success" and not message.is_error:
        return SessionResult(
            "done", stop_reason, summary=message.result or progress.last_text or None, **common
        )
    if subtype == "error_max_turns":
        note = f"The Claude Code session {progress.session_id} reached its turn cap ({spec.max_turns})."
        return SessionResult(
            "incomplete", stop_reason, handoff=_handoff(progress, total_cost, note), **common
        )
    if subtype == "error_max_budget_usd":
        error = cost_ceiling_error(cost, spec.max_cost_usd or 0.0)
        return SessionResult("over_budget", stop_reason, error=error, limit="cost", **common)
    status = getattr(message, "api_error_status", None)
    text = message.result or "; ".join(message.errors or []) or subtype or "error"
    if status is not None:
        outcome = "failed" if status in PERMANENT_STATUSES else "transient"
        return SessionResult(
            outcome, stop_reason, error=f"Anthropic API {status}: {text}", status_code=status, **common
        )
    return SessionResult(
        "transient", stop_reason, error=f"Claude Code ended with {subtype}: {text}", **common
    )
