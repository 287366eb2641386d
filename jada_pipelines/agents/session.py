"""The session contract both backends keep. Plain Python, no Dagster.

A session is one attempt of one task: a ``SessionSpec`` goes in, a ``SessionResult`` comes out, and a
``Transcript`` (JSON lines, readable by its owner only) records it. What lives here is what the two backends
share, so each rule has one home:

- the backend names (``BACKENDS``), which the CLI, the sheet's ``backend`` column, JADA_AGENT_BACKEND and the
  sensor all check against;
- where a session may work (``check_workdir``), its wall-clock limit and deadline, where its transcript goes,
  the API key it needs, and the first message of an attempt that continues from a handoff;
- the handoff's keys, and the outcome of an API status the API will not accept again (``outcome_for_status``);
- the sentences of outcomes both backends reach: a lost lease, the wall-clock limit, the cost ceiling, a
  missing key.

The backends themselves: ``messages_backend.py`` (our tool-use loop over the Messages API, the default) and
``claude_code_backend.py`` (the Claude Code CLI in its sandbox). Each rests on this module and on nothing of
the other.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jada_pipelines import settings
from jada_pipelines.agents.prices import Usage

# -- the backends -----------------------------------------------------------------------------------------------
MESSAGES = "messages"  # our own tool-use loop over the Messages API (messages_backend.py)
CLAUDE_CODE = "claude-code"  # the Claude Code CLI, sandboxed behind the key proxy (claude_code_backend.py)
BACKENDS = (MESSAGES, CLAUDE_CODE)
DEFAULT_BACKEND = settings.default("JADA_AGENT_BACKEND")

# -- limits -----------------------------------------------------------------------------------------------------
DEFAULT_MAX_TOKENS = 8192
DEFAULT_API_TIMEOUT_S = 300.0
# A session's wall-clock limit (JADA_AGENT_SESSION_MAX_SECONDS); agent_session_job's dagster/max_runtime is a
# little longer, so Dagster ends a run whose worker hangs outside the session.
DEFAULT_SESSION_MAX_SECONDS = settings.default("JADA_AGENT_SESSION_MAX_SECONDS")
# Statuses the API will not accept again however often it is retried.
PERMANENT_STATUSES = {400, 401, 403, 404, 413, 422}

# -- the handoff ------------------------------------------------------------------------------------------------
HANDOFF_KEYS = ("done", "next_steps", "failed_approaches", "files_touched")

# -- the shared outcome sentences -------------------------------------------------------------------------------
LEASE_LOST = "the session was stopped: its lease was lost or withdrawn"
WALL_CLOCK_REACHED = (
    "the session reached its wall-clock limit (JADA_AGENT_SESSION_MAX_SECONDS) and handed off"
)
MISSING_KEY = (
    "ANTHROPIC_API_KEY is not set: put your Claude API key in it (in .env for `make dev`) before agent "
    "sessions can run."
)


def cost_ceiling_error(spent: float, allowed: float) -> str:
    return (
        f"the task reached its cost ceiling (its max_cost_usd, else JADA_AGENT_MAX_COST_USD): this attempt "
        f"spent ${spent:.4f} of the ${allowed:.4f} left, so no further attempts run"
    )


def outcome_for_status(status: int) -> str:
    """``failed`` for an API status no retry will change (400/401/403/404/413/422), else ``transient``."""
    return "failed" if status in PERMANENT_STATUSES else "transient"


def empty_handoff() -> dict:
    """A handoff with every key and nothing in it: what a backend fills in."""
    return {key: [] for key in HANDOFF_KEYS}


@dataclass(frozen=True)
class SessionSpec:
    task_id: str
    attempt: int
    prompt: str
    workdir: Path
    max_turns: int
    model: str
    handoff: dict | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    backend: str = DEFAULT_BACKEND  # one of BACKENDS
    # What this attempt may still spend before the task's cost ceiling (JADA_AGENT_MAX_COST_USD); None: no
    # ceiling. The session stops with outcome ``over_budget`` once its cost reaches it.
    max_cost_usd: float | None = None


@dataclass
class SessionResult:
    outcome: str  # done | incomplete | failed | transient | refused | over_budget | lost
    stop_reason: str | None
    turns: int
    usage: Usage
    cost_usd: float
    duration_s: float
    api_retries: int
    request_ids: list[str]
    transcript_path: Path
    summary: str | None = None
    handoff: dict | None = None
    error: str | None = None
    status_code: int | None = None
    # Which limit ended the session, when one did: "workdir" (disk), "wall_clock", "cost" or "sandbox".
    limit: str | None = None
    backend: str = DEFAULT_BACKEND
    # Claude Code only: its session id and CLI version, and how the attempt began ("resumed session <id>",
    # "fresh, from the handoff" or "fresh").
    session_id: str | None = None
    cli_version: str | None = None
    continuation: str | None = None
    # Backend-specific facts for the run's metadata (Claude Code: the CLI's own cost figure, the key proxy's
    # answers and refusals).
    extra: dict = field(default_factory=dict)


@dataclass
class SessionOptions:
    """How a session runs beyond its spec: what the ``claude`` resource sets. Both backends take these as
    keyword arguments (``run_session(spec, stop=..., max_retries=...)``) and build one of these from them."""

    # Set from outside (the lease was lost or withdrawn) to end the session early.
    stop: threading.Event | None = None
    # Retries of 429/5xx/529 and network errors per API call (the SDK's, or the CLI's CLAUDE_CODE_MAX_RETRIES).
    max_retries: int = 2
    api_timeout_s: float = DEFAULT_API_TIMEOUT_S
    # One bash command's timeout; None: JADA_AGENT_COMMAND_TIMEOUT_SECONDS.
    command_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.stop is None:
            self.stop = threading.Event()

    def toolbox_overrides(self) -> dict:
        """What the session's ``Toolbox.from_env`` gets beside the environment."""
        return {} if self.command_timeout_s is None else {"command_timeout_s": self.command_timeout_s}


def first_message(prompt: str, handoff: dict | None, attempt: int) -> str:
    """The task prompt, followed by the previous attempt's handoff when there is one."""
    if not handoff:
        return prompt
    return (
        f"{prompt}\n\n---\nThis is attempt {attempt}. An earlier session on this task stopped before finishing "
        "(its turn cap, a limit, or a failure: the notes say which) and left this handoff. Continue from it "
        "rather than starting over:\n"
        f"```json\n{json.dumps(handoff, indent=2)}\n```"
    )


def default_workdir(task_id: str) -> Path:
    return settings.data_dir() / "workdirs" / task_id


def session_max_seconds() -> float:
    return settings.get("JADA_AGENT_SESSION_MAX_SECONDS")


def check_workdir(workdir: Path) -> None:
    """A session only ever works under JADA_AGENT_WORKDIR_ROOTS, whatever the queue holds (a task added before
    the roots changed, or through another backend)."""
    resolved = workdir.expanduser().resolve()
    roots = settings.workdir_roots()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise settings.ConfigError(
            f"The task's working directory {resolved} is outside JADA_AGENT_WORKDIR_ROOTS "
            f"({', '.join(map(str, roots))}); add its parent there, or `jada task add` it again with a "
            "--workdir under one of them."
        )


def session_deadline(spec: SessionSpec) -> float:
    """Where every session starts: its working directory checked, then the ``time.monotonic()`` past which it
    must end (JADA_AGENT_SESSION_MAX_SECONDS from now)."""
    check_workdir(spec.workdir)
    return time.monotonic() + session_max_seconds()


def transcript_path(task_id: str, attempt: int) -> Path:
    return settings.data_dir() / "transcripts" / task_id / f"attempt-{attempt}.jsonl"


def require_api_credentials() -> None:
    if not (settings.get("ANTHROPIC_API_KEY") or settings.get("ANTHROPIC_AUTH_TOKEN")):
        raise settings.ConfigError(MISSING_KEY)


class Transcript:
    """The session as JSON lines: its start, what the backend saw on the way, and the outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Every folder it creates is 0700, the transcripts/ folder too (mkdir's parents=True would make it 0755).
        for folder in [*reversed(path.parent.parents), path.parent]:
            if not folder.is_dir():
                folder.mkdir(mode=0o700, exist_ok=True)
        # Transcripts hold the prompt and every tool result: readable by their owner only.
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")

    @classmethod
    def for_attempt(cls, spec: SessionSpec) -> Transcript:
        return cls(transcript_path(spec.task_id, spec.attempt))

    def write(self, kind: str, **data) -> None:
        self._file.write(json.dumps({"ts": time.time(), "kind": kind, **data}, default=str) + "\n")
        self._file.flush()

    def write_start(self, spec: SessionSpec, **extra) -> None:
        """The transcript's first line: which task, attempt and model (and what the backend adds)."""
        self.write("start", task_id=spec.task_id, attempt=spec.attempt, model=spec.model, **extra)

    def write_outcome(self, result: SessionResult, **extra) -> None:
        """The transcript's last line: how the session ended (both backends write the same fields)."""
        self.write(
            "outcome",
            outcome=result.outcome,
            stop_reason=result.stop_reason,
            turns=result.turns,
            error=result.error,
            handoff=result.handoff,
            cost_usd=result.cost_usd,
            **extra,
        )

    def finish(self, result: SessionResult, started: float, **extra) -> SessionResult:
        """Time the session from ``started`` (``time.monotonic()``), write its outcome and close."""
        result.duration_s = time.monotonic() - started
        self.write_outcome(result, **extra)
        self.close()
        return result

    def close(self) -> None:
        self._file.close()
