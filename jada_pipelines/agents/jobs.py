"""``agent_session_job``: one run is one Claude session for one claimed task attempt.

The run config carries only the task id and the attempt the sensor claimed (both safe to show in the UI);
the run looks the lease token up in the queue, and reads the prompt, handoff and settings there and the API
key from the environment. Only the first run of a claim may start the session: a second run of the same
attempt (a re-execution from the UI, a launchpad copy) is refused before it touches the working directory or
the transcript. Reaching the turn cap is not a failed run: the run succeeds with outcome ``incomplete`` in
its metadata, and the task waits for its next attempt. Runs are never retried by Dagster
(``dagster/max_retries=0``): the queue owns retries and counts every attempt, so Dagster retries on top
would run a crashed attempt twice.
"""

import dagster as dg
from pydantic import Field

from jada_pipelines import settings
from jada_pipelines.agents.attempt import AttemptOutcome, LeaseLost, execute_attempt
from jada_pipelines.agents.bwrap_sandbox import sandbox_status
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.session import CLAUDE_CODE, DEFAULT_SESSION_MAX_SECONDS
from jada_pipelines.agents.warmup import warm_anthropic_import

warm_anthropic_import()  # only in a run worker: see warmup.py

TASK_ID_TAG = "jada/task-id"
# Dagster's own limit on a run (enforced by run monitoring, on in dagster.yaml): the session's wall-clock limit
# plus room for the handoff call and recording, so a worker hung outside the session loop frees its slot too.
MAX_RUNTIME_MARGIN_SECONDS = 600


def max_runtime_tag(session_max_seconds: float) -> str:
    return str(int(session_max_seconds + MAX_RUNTIME_MARGIN_SECONDS))


ATTEMPT_TAG = "jada/attempt"
SESSION_OP = "agent_session"


class AgentSessionConfig(dg.Config):
    task_id: str = Field(description="The queued task this run works on.")
    attempt: int = Field(description="The attempt of the task the sensor claimed for this run.")


def session_metadata(outcome: AttemptOutcome, *, model: str, max_turns: int, sandbox: str) -> dict:
    """What the run page shows for a session: turns, outcome, tokens, cost, time, retries, request ids, and the
    sandbox its commands ran in."""
    result = outcome.result
    usage = result.usage
    claude_code = (
        {
            "claude_code_session_id": result.session_id or "none",
            "claude_code_version": result.cli_version or "unknown",
            "continuation": result.continuation or "fresh",
            **{
                name: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                for name, v in result.extra.items()
            },
        }
        if result.backend == CLAUDE_CODE
        else {}
    )
    return {
        "backend": result.backend,
        **claude_code,
        "sandbox": sandbox,
        "outcome": result.outcome,
        "task_status": outcome.task_status or "unknown (lease lost)",
        "turns": result.turns,
        "max_turns": max_turns,
        "stop_reason": result.stop_reason or "none",
        "model": model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cost_usd": dg.MetadataValue.float(round(result.cost_usd, 6)),
        "duration_s": dg.MetadataValue.float(round(result.duration_s, 3)),
        "api_retries": result.api_retries,
        "request_ids": dg.MetadataValue.json(result.request_ids),
        "transcript": dg.MetadataValue.path(str(result.transcript_path)),
        **({"limit": result.limit} if result.limit else {}),
        **({"error": dg.MetadataValue.text(result.error)} if result.error else {}),
        **({"handoff": dg.MetadataValue.json(result.handoff)} if result.handoff else {}),
        **({"summary": dg.MetadataValue.text(result.summary)} if result.summary else {}),
    }


# What each non-success outcome means for the person reading the failed run.
FAILURE_TEXT = {
    "failed": "The Anthropic API refused the request for good, so the task is marked failed and will not be "
    "retried: {error}. Fix the cause (401: check ANTHROPIC_API_KEY; 403: the key's permissions; 400: the "
    "request or model JADA_AGENT_MODEL), then `jada task requeue {task_id}`.",
    "transient": "The Anthropic API stayed unavailable after the SDK's retries ({error}). The task went back to "
    "the queue with a back-off (status: {status}).",
    "refused": "The model refused the task ({error}). It is a dead letter for a person to review; "
    "`jada task requeue {task_id}` after changing the prompt.",
    "limit": "The session was ended by a limit: {error}",
    "over_budget": "The task is a dead letter: {error}. Raise the ceiling (the task's max_cost_usd, else "
    "JADA_AGENT_MAX_COST_USD), then `jada task requeue {task_id}`.",
    "lost": "The session stopped because this run lost the task's lease (expired, cancelled or superseded); "
    "another attempt may own it now.",
}


def refusal_text(queue, config: AgentSessionConfig) -> str:
    task = queue.get(config.task_id)
    if task is None:
        return f"Task {config.task_id} is not in the queue."
    if task.attempt == config.attempt and task.status == "running":
        held = f"run {task.run_id} already runs it"
    else:
        held = f"the task is now {task.status} at attempt {task.attempt}"
    return (
        f"Task {config.task_id} attempt {config.attempt} is not this run's to start: {held} (its lease expired, "
        "it finished, or it was cancelled, superseded or started by another run). Nothing was sent to the model "
        "and its working directory and transcript were not touched."
    )


@dg.op(name=SESSION_OP, out=dg.Out(dg.Nothing), description="Run one Claude session for the claimed task.")
def agent_session(
    context: dg.OpExecutionContext,
    config: AgentSessionConfig,
    task_queue: TaskQueueResource,
    claude: ClaudeSessionResource,
):
    queue = task_queue.open()
    lease = queue.lease_for(config.task_id, config.attempt)
    if lease is None or not queue.mark_running(lease, run_id=context.run_id):
        raise dg.Failure(description=refusal_text(queue, config), allow_retries=False)
    task = lease.task
    try:
        # reads JADA_AGENT_MODEL, JADA_AGENT_MAX_TURNS, JADA_AGENT_BACKEND and JADA_AGENT_MAX_COST_USD
        spec = claude.spec_for(task)
        claude.check_ready(spec)
    except settings.ConfigError as exc:
        # Every attempt would fail the same way: park the task as failed until a person fixes the setting.
        queue.fail(lease, error=str(exc), retryable=False)
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if spec.max_cost_usd is not None and spec.max_cost_usd <= 0:
        # The ceiling was reached by earlier attempts: no model call, a dead letter that says why.
        error = (
            f"the task reached its cost ceiling (its max_cost_usd, else JADA_AGENT_MAX_COST_USD): its attempts "
            f"cost ${task.cost_usd:.4f} of ${task.cost_usd + spec.max_cost_usd:.4f}, so no further attempts run"
        )
        queue.fail(lease, error=error, retryable=False, outcome="over_budget")
        raise dg.Failure(
            description=FAILURE_TEXT["over_budget"].format(error=error, task_id=task.id, status="dead"),
            allow_retries=False,
        )
    try:
        outcome = execute_attempt(
            queue,
            lease,
            spec,
            run_id=context.run_id,
            already_running=True,
            run_session=claude.run,
            on_heartbeat_error=lambda exc: context.log.warning(
                f"Heartbeat of task {task.id} failed: {exc!r}"
            ),
        )
    except LeaseLost as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    sandbox = sandbox_status()
    if sandbox.mode == "off":
        context.log.warning(sandbox.summary)
    metadata = session_metadata(outcome, model=spec.model, max_turns=spec.max_turns, sandbox=sandbox.summary)
    result = outcome.result
    if result.outcome in ("done", "incomplete"):
        context.log.info(
            f"Task {task.id} attempt {task.attempt}: {result.outcome} after {result.turns} turns."
        )
        yield dg.Output(None, metadata=metadata)
        return
    key = result.outcome if result.outcome == "over_budget" else "limit" if result.limit else result.outcome
    text = FAILURE_TEXT[key].format(error=result.error, task_id=task.id, status=outcome.task_status)
    raise dg.Failure(description=text, metadata=metadata, allow_retries=False)


@dg.job(
    description="One Claude session for one claimed agent task (launched by agent_task_sensor).",
    # One op: running it in the run worker itself saves a second Python start per session.
    executor_def=dg.in_process_executor,
    tags={
        settings.AGENT_SESSION_TAG: "1",
        "dagster/max_retries": "0",
        "dagster/max_runtime": max_runtime_tag(DEFAULT_SESSION_MAX_SECONDS),
    },
)
def agent_session_job():
    agent_session()
