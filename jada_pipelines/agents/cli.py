"""`jada task add|list|show|requeue|cancel` and `jada queue init`. Keep imports inside the handlers: every
`jada` command loads this module."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from jada_pipelines.agents.session import BACKENDS

if TYPE_CHECKING:
    from jada_pipelines.agents.queue import Task


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more, so the error names the flag, not a queue field."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _dollars(text: str) -> float:
    """An argparse type: a positive amount of US dollars."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text} must be more than 0 dollars (leave the flag out for JADA_AGENT_MAX_COST_USD)"
        )
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this domain's subcommands to the `jada` parser."""
    task = subparsers.add_parser("task", help="add, list, show, re-queue or cancel agent tasks")
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="queue a task for a Claude session; prints its id")
    add.add_argument("prompt", help="what the agent should do")
    add.add_argument("--id", dest="task_id", help="task id (the idempotency key); default: a new random id")
    add.add_argument(
        "--max-turns",
        type=_at_least_one,
        help="turn cap for each session (default: JADA_AGENT_MAX_TURNS, 30)",
    )
    add.add_argument("--workdir", help="working directory (default: $JADA_DATA_DIR/workdirs/<id>)")
    add.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    add.add_argument(
        "--max-attempts", type=_at_least_one, default=3, help="sessions before a dead letter (default 3)"
    )
    add.add_argument(
        "--backend",
        choices=BACKENDS,
        help="session backend: our Messages API loop or Claude Code (default: JADA_AGENT_BACKEND, messages)",
    )
    add.add_argument(
        "--max-cost-usd",
        type=_dollars,
        help="cost ceiling over all attempts; reaching it makes a dead letter (default: JADA_AGENT_MAX_COST_USD, none)",
    )
    add.set_defaults(func=add_task)

    listing = actions.add_parser("list", help="list tasks")
    listing.add_argument("--status", help="only tasks with this status, e.g. queued, incomplete, dead")
    listing.add_argument("--limit", type=_at_least_one, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_tasks)

    show = actions.add_parser("show", help="show one task in full, with its handoff")
    show.add_argument("task_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_task)

    requeue = actions.add_parser("requeue", help="queue a task again (dead letters and failed tasks too)")
    requeue.add_argument("task_id")
    requeue.add_argument("--reset-attempts", action="store_true", help="grant the full attempt budget again")
    requeue.set_defaults(func=requeue_task)

    cancel = actions.add_parser("cancel", help="cancel a task; a running session stops at its next heartbeat")
    cancel.add_argument("task_id")
    cancel.set_defaults(func=cancel_task)

    queue = subparsers.add_parser("queue", help="set up the task queue")
    queue_actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = queue_actions.add_parser("init", help="create the queue's schema (SQLite file or DynamoDB table)")
    init.set_defaults(func=init_queue)


def _reports_queue_errors(handler):
    """Bad input to the queue is a one-line error and exit code 2, like a configuration error."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        from jada_pipelines.agents.queue import QueueError

        try:
            return handler(args)
        except QueueError as exc:
            print(f"jada: {exc}", file=sys.stderr)
            return 2

    return wrapper


def _queue():
    from jada_pipelines.agents.queue import open_queue

    return open_queue()


def _not_found(task_id: str) -> int:
    print(f"jada: no task {task_id!r} in the queue; `jada task list` shows the ids.", file=sys.stderr)
    return 1


@_reports_queue_errors
def add_task(args: argparse.Namespace) -> int:
    import uuid

    from jada_pipelines.agents.queue import QueueError

    # Checked before an id is made up, so no error names a task that was never created (the numeric flags
    # are checked by their argparse types).
    if args.task_id is None and not args.prompt.strip():
        raise QueueError("The prompt is empty: say what the agent should do.")
    task_id = args.task_id or f"task-{uuid.uuid4().hex[:12]}"
    result = _queue().enqueue(
        task_id,
        args.prompt,
        max_turns=args.max_turns,
        workdir=args.workdir,
        priority=args.priority,
        max_attempts=args.max_attempts,
        source="cli",
        backend=args.backend,
        max_cost_usd=args.max_cost_usd,
    )
    if not result.created:
        if result.task.prompt != args.prompt:
            print(
                f"jada: task {task_id} already exists with another prompt; nothing changed.\n"
                f"  its prompt: {result.task.prompt}\n"
                f"  yours:      {args.prompt}\n"
                f"An id names one task for good: choose another --id for your prompt{_old_task_hint(result.task)}.",
                file=sys.stderr,
            )
            return 1
        print(
            f"Task {task_id} already exists with this prompt (status {result.task.status}); nothing changed.",
            file=sys.stderr,
        )
    print(task_id)
    if result.task.status in WAITING:
        _say_why_it_cannot_start(task_id)
    return 0


# Statuses of a task that has not ended; the others have (see the queue's STATUSES).
WAITING = ("queued", "incomplete")
ACTIVE = (*WAITING, "dispatched", "running")


def _old_task_hint(task: Task) -> str:
    if task.status in ACTIVE:
        return f" (the old one is {task.status}; `jada task cancel {task.id}` stops it)"
    return f" (the old one is {task.status}; `jada task requeue {task.id}` runs its prompt again)"


def _say_why_it_cannot_start(task_id: str) -> None:
    """A queued task that no session can pick up yet (no API key, no sandbox) says so now, not in an hour."""
    from jada_pipelines.agents.sensors import why_no_session_can_run

    blocked = why_no_session_can_run()
    if blocked:
        print(
            f"jada: task {task_id} is queued, but no session can start yet: {blocked} It starts by itself once "
            "that is fixed; `jada health` shows what else is missing.",
            file=sys.stderr,
        )


ERROR_CHARS = 60


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters; a cut ends with '…'."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _row(task: Task) -> str:
    error = _cut(task.last_error or "", ERROR_CHARS)
    steps = len(task.handoff.get("next_steps", [])) if task.handoff else 0
    handoff = (f"{steps} next step" + ("" if steps == 1 else "s")) if task.handoff else ""
    attempts = f"{task.attempt}/{task.max_attempts}"
    return f"{task.id:<24} {task.status:<11} {attempts:>7} {task.turns:>5} {task.cost_usd:>9.4f}  {handoff:<14} {error}"


def local_time(epoch: float | None, *, now: float | None = None) -> str:
    """Local ISO 8601 with the age, e.g. ``2026-12-02T04:10:05+01:00 (3 min ago)``; '-' for None."""
    import time
    from datetime import datetime

    if epoch is None:
        return "-"
    stamp = datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
    return f"{stamp} ({age(epoch, now=time.time() if now is None else now)})"


def age(epoch: float, *, now: float) -> str:
    """'just now', '42 s ago', '3 min ago', '2 h ago', '5 days ago', or 'in 4 min' for a future time."""
    delta = now - epoch
    ahead = delta < 0
    seconds = abs(delta)
    if seconds < 5:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count} {unit}" + ("s" if unit == "day" and count != 1 else "")
            return f"in {text}" if ahead else f"{text} ago"
    return "just now"


@_reports_queue_errors
def list_tasks(args: argparse.Namespace) -> int:
    tasks = _queue().list(status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(task) for task in tasks], indent=2))
        return 0
    print(
        f"{'ID':<24} {'STATUS':<11} {'ATTEMPT':>7} {'TURNS':>5} {'COST_USD':>9}  {'HANDOFF':<14} LAST ERROR"
    )
    for task in tasks:
        print(_row(task))
    return 0


def show_task(args: argparse.Namespace) -> int:
    from jada_pipelines import settings

    queue = _queue()
    task = queue.get(args.task_id)
    if task is None:
        return _not_found(args.task_id)
    if args.json:
        print(json.dumps(asdict(task), indent=2))
        return 0
    fields = asdict(task)
    fields.pop("nonce")  # internal: tells a re-added task's runs from the old ones
    # A new claim clears the task's run_id until its run starts: the last run is then the attempts' one.
    runs = [a.run_id for a in queue.attempts(since=task.created_at) if a.task_id == task.id and a.run_id]
    run_id = task.run_id or (runs[-1] if runs else None)
    fields["run_id"] = f"{run_id}  {settings.webserver_url()}/runs/{run_id}" if run_id else None
    handoff = fields.pop("handoff")
    for name in ("created_at", "updated_at", "available_at", "lease_expires_at"):
        fields[name] = local_time(fields[name])
    for name, value in fields.items():
        print(f"{name:>17}: {value if value is not None else '-'}")
    print(f"{'handoff':>17}: {json.dumps(handoff, indent=2) if handoff else '-'}")
    return 0


def requeue_task(args: argparse.Namespace) -> int:
    queue = _queue()
    if queue.requeue(args.task_id, reset_attempts=args.reset_attempts):
        task = queue.get(args.task_id)
        print(f"Task {task.id} is queued again (next attempt {task.attempt + 1} of {task.max_attempts}).")
        return 0
    if queue.get(args.task_id) is None:
        return _not_found(args.task_id)
    print(f"jada: task {args.task_id} is running; cancel it first or wait for it to finish.", file=sys.stderr)
    return 1


def cancel_task(args: argparse.Namespace) -> int:
    queue = _queue()
    if queue.cancel(args.task_id):
        print(f"Task {args.task_id} is cancelled.")
        return 0
    task = queue.get(args.task_id)
    if task is None:
        return _not_found(args.task_id)
    print(f"jada: task {args.task_id} is already {task.status}; nothing to cancel.", file=sys.stderr)
    return 1


def init_queue(args: argparse.Namespace) -> int:
    from jada_pipelines.agents.queue import default_queue_url

    queue = _queue()
    # Opening a SQLite queue creates its schema; the DynamoDB backend creates its table in init().
    queue.init()
    print(f"Task queue ready at {default_queue_url()}.")
    return 0
