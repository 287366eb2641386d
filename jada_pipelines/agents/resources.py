"""The agents domain's resources: ``task_queue`` (where tasks wait) and ``claude`` (how a session runs).

Both read the environment when a run or tick uses them, never when definitions load (see settings.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from jada_pipelines import settings
from jada_pipelines.agents.prices import price_for
from jada_pipelines.agents.session import (
    BACKENDS,
    CLAUDE_CODE,
    DEFAULT_API_TIMEOUT_S,
    MESSAGES,
    SessionSpec,
    check_workdir,
    default_workdir,
    require_api_credentials,
)
from jada_pipelines.agents.tools import DEFAULT_COMMAND_TIMEOUT_S

if TYPE_CHECKING:
    from jada_pipelines.agents.queue import Task, TaskQueue
    from jada_pipelines.agents.session import SessionResult


class TaskQueueResource(dg.ConfigurableResource):
    """The durable agent-task queue (SQLite on one host, DynamoDB on AWS).

    Example::

        defs = dg.Definitions(resources={"task_queue": TaskQueueResource()})  # $JADA_TASK_QUEUE_URL or SQLite

        @dg.op
        def count_waiting(task_queue: TaskQueueResource) -> int:
            return task_queue.open().stats().depth_by_status["queued"]
    """

    url: str | None = Field(
        default=None,
        description="sqlite:///path or dynamodb://TABLE. None: $JADA_TASK_QUEUE_URL, else sqlite in $JADA_DATA_DIR.",
    )

    def open(self) -> TaskQueue:
        from jada_pipelines.agents.queue import open_queue

        return open_queue(self.url)


def backend_from_env() -> str:
    """``JADA_AGENT_BACKEND``: ``messages`` (the default: our own loop over the Messages API) or ``claude-code``."""
    raw = settings.get("JADA_AGENT_BACKEND").lower()
    if raw not in BACKENDS:
        raise settings.ConfigError(
            f"JADA_AGENT_BACKEND={raw!r} is not a session backend: set it to '{MESSAGES}' (the default) or "
            f"'{CLAUDE_CODE}' (needs the .[claude-code] extra)."
        )
    return raw


def max_cost_from_env() -> float | None:
    """``JADA_AGENT_MAX_COST_USD``: what one task may cost over all its attempts; unset means no ceiling."""
    return settings.get("JADA_AGENT_MAX_COST_USD")


class ClaudeSessionResource(dg.ConfigurableResource):
    """Runs one Claude session for a task, with the anthropic SDK (backend ``messages``) or the Claude Code CLI
    (``claude-code``, JADA_AGENT_BACKEND). The API key and base URL come from
    ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) and ANTHROPIC_BASE_URL, read by the SDK when the run starts.

    Example::

        defs = dg.Definitions(resources={"claude": ClaudeSessionResource(max_retries=3)})
    """

    model: str | None = Field(
        default=None, description="Model id. None: $JADA_AGENT_MODEL, else a current Sonnet."
    )
    max_turns: int | None = Field(
        default=None, description="Turn cap for tasks that set none. None: $JADA_AGENT_MAX_TURNS, else 30."
    )
    max_retries: int = Field(default=2, description="SDK retries of 429/5xx/529 and network errors per call.")
    api_timeout_seconds: float = Field(default=DEFAULT_API_TIMEOUT_S, description="Timeout of one API call.")
    command_timeout_seconds: float | None = Field(
        default=None,
        description="Timeout of one bash command; its sandbox is killed. None: "
        f"$JADA_AGENT_COMMAND_TIMEOUT_SECONDS, else {DEFAULT_COMMAND_TIMEOUT_S:g}.",
    )

    def resolved_model(self) -> str:
        return self.model or settings.get("JADA_AGENT_MODEL")

    def resolved_max_turns(self, task: Task) -> int:
        if task.max_turns is not None:
            return task.max_turns
        if self.max_turns is not None:
            return self.max_turns
        max_turns = settings.get("JADA_AGENT_MAX_TURNS")
        if max_turns < 1:
            raise settings.ConfigError(
                f"JADA_AGENT_MAX_TURNS={max_turns} leaves a session no model call: set it to 1 or more "
                f"(unset means {settings.DEFAULT_AGENT_MAX_TURNS})."
            )
        return max_turns

    def resolved_backend(self, task: Task) -> str:
        """The task's own backend (``jada task add --backend``, the sheet's ``backend`` column), else
        JADA_AGENT_BACKEND."""
        return task.backend or backend_from_env()

    def spec_for(self, task: Task) -> SessionSpec:
        ceiling = task.max_cost_usd if task.max_cost_usd is not None else max_cost_from_env()
        return SessionSpec(
            task_id=task.id,
            attempt=task.attempt,
            prompt=task.prompt,
            workdir=Path(task.workdir) if task.workdir else default_workdir(task.id),
            max_turns=self.resolved_max_turns(task),
            model=self.resolved_model(),
            handoff=task.handoff,
            backend=self.resolved_backend(task),
            max_cost_usd=None if ceiling is None else ceiling - task.cost_usd,
        )

    def check_ready(self, spec: SessionSpec) -> None:
        """Raise ConfigError, naming the variable, when no session could start: no API key, unpriced model, a
        working directory outside the allowed roots, or no sandbox (bubblewrap missing or unusable)."""
        from jada_pipelines.agents.bwrap_sandbox import sandbox_status

        require_api_credentials()
        price_for(spec.model)
        check_workdir(spec.workdir)
        problem = sandbox_status().problem
        if problem:
            raise settings.ConfigError(problem)
        if spec.backend == CLAUDE_CODE:
            from jada_pipelines.agents.claude_code_backend import check_cli

            check_cli()

    def run(self, spec: SessionSpec, stop: threading.Event) -> SessionResult:
        if spec.backend == CLAUDE_CODE:
            from jada_pipelines.agents.claude_code_backend import run_claude_code_session as run_session
        else:
            from jada_pipelines.agents.messages_backend import run_session
        return run_session(
            spec,
            stop=stop,
            max_retries=self.max_retries,
            api_timeout_s=self.api_timeout_seconds,
            command_timeout_s=self.command_timeout_seconds,
        )
