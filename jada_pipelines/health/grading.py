"""Grading the agent task queue and the Dagster daemon as OK, WARN or ERROR (plain Python, no Dagster).

The same grades back the ``agent_task_queue`` asset checks and the ``jada health`` audit, so the UI and
the command never disagree. Thresholds come from environment variables, read when a grade is computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jada_pipelines import settings
from jada_pipelines.agents.bwrap_sandbox import SandboxStatus
from jada_pipelines.agents.queue import CLAIMABLE, AttemptRecord, QueueStats

SEVERITIES = ("OK", "WARN", "ERROR")
# Below this many finished sessions in 24 h a turn-cap rate says nothing (1 of 1 is 100 %).
TURN_CAP_MIN_SESSIONS = 3


@dataclass(frozen=True)
class Finding:
    """One graded measurement: ``description`` says what was measured and, when not OK, what to do."""

    name: str
    severity: str
    description: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """Where WARN and ERROR start. Each is the setting JADA_HEALTH_<FIELD> (declared with its default in
    ``settings.REGISTRY``); ``docs/alerts_health.md`` lists them."""

    backlog_warn_depth: int = settings.default("JADA_HEALTH_BACKLOG_WARN_DEPTH")
    backlog_error_depth: int = settings.default("JADA_HEALTH_BACKLOG_ERROR_DEPTH")
    queued_age_warn_minutes: int = settings.default("JADA_HEALTH_QUEUED_AGE_WARN_MINUTES")
    queued_age_error_minutes: int = settings.default("JADA_HEALTH_QUEUED_AGE_ERROR_MINUTES")
    turn_cap_warn_percent: int = settings.default("JADA_HEALTH_TURN_CAP_WARN_PERCENT")
    turn_cap_error_percent: int = settings.default("JADA_HEALTH_TURN_CAP_ERROR_PERCENT")
    daemon_stale_seconds: int = settings.default("JADA_HEALTH_DAEMON_STALE_SECONDS")
    # A due task waiting this long while a session slot is free, or a claim whose run has not begun its
    # session this long (a run worker starts in seconds, tens on a loaded box), means sessions are not starting.
    dispatch_wait_seconds: int = settings.default("JADA_HEALTH_DISPATCH_WAIT_SECONDS")
    dispatch_start_seconds: int = settings.default("JADA_HEALTH_DISPATCH_START_SECONDS")

    @classmethod
    def from_env(cls) -> Thresholds:
        values = {name: settings.get(_variable(name)) for name in _FIELDS}
        thresholds = cls(**values)
        thresholds._validate()
        return thresholds

    def _validate(self) -> None:
        for warn, error in _PAIRS:
            if getattr(self, warn) > getattr(self, error):
                raise settings.ConfigError(
                    f"{_variable(warn)}={getattr(self, warn)} is above {_variable(error)}={getattr(self, error)}: "
                    "the WARN threshold must not exceed the ERROR one."
                )


_FIELDS = tuple(Thresholds.__dataclass_fields__)
_PAIRS = (
    ("backlog_warn_depth", "backlog_error_depth"),
    ("queued_age_warn_minutes", "queued_age_error_minutes"),
    ("turn_cap_warn_percent", "turn_cap_error_percent"),
)


def _variable(field_name: str) -> str:
    return f"JADA_HEALTH_{field_name.upper()}"


def _grade(value: float, warn: float, error: float) -> str:
    if value > error:
        return "ERROR"
    return "WARN" if value > warn else "OK"


def worst(severities: Iterable[str]) -> str:
    return max(severities, key=SEVERITIES.index, default="OK")


def grade_backlog(stats: QueueStats, thresholds: Thresholds) -> Finding:
    depth = sum(stats.depth_by_status.get(status, 0) for status in CLAIMABLE)
    age_minutes = (stats.oldest_queued_age_s or 0.0) / 60
    severity = worst(
        [
            _grade(depth, thresholds.backlog_warn_depth, thresholds.backlog_error_depth),
            _grade(age_minutes, thresholds.queued_age_warn_minutes, thresholds.queued_age_error_minutes),
        ]
    )
    description = (
        f"{plural(depth, 'task')} waiting; the oldest has waited {age_minutes:.0f} min."
        if stats.oldest_queued_age_s is not None
        else "No task is waiting."
    )
    if severity != "OK":
        description += (
            f" Limits: WARN past {thresholds.backlog_warn_depth} tasks or {thresholds.queued_age_warn_minutes} min,"
            f" ERROR past {thresholds.backlog_error_depth} or {thresholds.queued_age_error_minutes} min."
            " Check that agent_task_sensor is running and that sessions are finishing (`jada health`)."
        )
    return Finding(
        "backlog",
        severity,
        description,
        {
            "depth": depth,
            "oldest_queued_minutes": round(age_minutes, 1),
            "live_sessions": stats.live_sessions,
        },
    )


def grade_dead_letters(stats: QueueStats) -> Finding:
    """Dead letters (out of attempts) and failed tasks (a permanent error) both wait for a person."""
    failed = stats.depth_by_status.get("failed", 0)
    waiting = stats.dead_letters + failed
    metadata = {"dead_letters": stats.dead_letters, "failed": failed}
    if waiting == 0:
        return Finding("dead_letters", "OK", "No task is waiting for a person.", metadata)
    return Finding(
        "dead_letters",
        "ERROR",
        f"{plural(waiting, 'task')} {'waits' if waiting == 1 else 'wait'} for a person "
        f"({stats.dead_letters} out of attempts, {failed} failed): `jada health` lists them with their last "
        "error; fix the cause, then `jada task requeue <id>` (or cancel the task).",
        metadata,
    )


def plural(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def grade_turn_cap(attempts: Iterable[AttemptRecord], thresholds: Thresholds) -> Finding:
    finished = [a for a in attempts if a.outcome]
    capped = sum(a.outcome == "incomplete" for a in finished)
    metadata = {"sessions": len(finished), "turn_capped": capped}
    if len(finished) < TURN_CAP_MIN_SESSIONS:
        return Finding(
            "turn_cap_rate",
            "OK",
            f"{capped} of {plural(len(finished), 'session')} in 24 h hit the turn cap; too few to judge a rate.",
            metadata,
        )
    percent = 100 * capped / len(finished)
    severity = _grade(percent, thresholds.turn_cap_warn_percent, thresholds.turn_cap_error_percent)
    description = f"{capped} of {len(finished)} sessions in 24 h hit the turn cap ({percent:.0f} %)."
    if severity != "OK":
        description += " Tasks are too big for one session: split them, or raise JADA_AGENT_MAX_TURNS for this kind of work."
    return Finding("turn_cap_rate", severity, description, {**metadata, "percent": round(percent, 1)})


def grade_daemon(heartbeats: Mapping[str, float | None], *, now: float, thresholds: Thresholds) -> Finding:
    """``heartbeats``: the last heartbeat time of each daemon the instance requires (None: never seen)."""
    ages = {name: None if ts is None else round(now - ts, 1) for name, ts in heartbeats.items()}
    stale = sorted(name for name, age in ages.items() if age is None or age > thresholds.daemon_stale_seconds)
    if not stale:
        return Finding(
            "daemon_heartbeat", "OK", f"All {plural(len(ages), 'daemon')} sent a heartbeat recently.", ages
        )
    return Finding(
        "daemon_heartbeat",
        "ERROR",
        f"No heartbeat in {thresholds.daemon_stale_seconds} s from: {', '.join(stale)}. Schedules and sensors are "
        "not running: start `dagster-daemon run` (or `make dev`) and read its log.",
        ages,
    )


def grade_sandbox(status: SandboxStatus) -> Finding:
    """Whether sessions can run, and how confined their commands are (``agents.bwrap_sandbox.sandbox_status()``)."""
    details = {"mode": status.mode, "network": status.network}
    if status.problem:
        return Finding(
            "sandbox",
            "ERROR",
            f"{status.problem} Until then agent_task_sensor claims no task, so no attempt is spent.",
            details,
        )
    if status.mode == "off":
        return Finding(
            "sandbox",
            "WARN",
            f"{status.summary} Acceptable only on a single-purpose VM or container that holds no other secrets "
            "(docs/agents.md, Sandbox); unset JADA_AGENT_SANDBOX to confine them, or set it to 'uid' where "
            "bubblewrap cannot run.",
            details,
        )
    if status.mode == "uid":
        return Finding(
            "sandbox",
            "OK",
            "sandbox: uid (network not confined). Commands run as an unprivileged slot uid of "
            "JADA_AGENT_UID_RANGE, with no secrets, no other task's files and no process outliving them; the "
            "network is open to them, so confine it outside (on AWS, the run task's security group: docs/agents.md).",
            details,
        )
    if status.network == "host":
        return Finding(
            "sandbox",
            "OK",
            "Commands run under bubblewrap with the host's network (JADA_AGENT_NETWORK=host): they can reach "
            "this machine's loopback services (the Dagster webserver, Postgres).",
            details,
        )
    return Finding("sandbox", "OK", "Commands run under bubblewrap, with no network.", details)
