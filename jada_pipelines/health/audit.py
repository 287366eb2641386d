"""The health audit behind `jada health`: one report of everything the old by-hand audit looked at.

Each section is graded OK, WARN or ERROR. A section that cannot be read (an unreachable queue, a broken
token file) is itself an ERROR that says why, so one broken part never hides the others.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.agents.bwrap_sandbox import sandbox_status
from jada_pipelines.agents.latency import describe_latencies, dispatch_latencies
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.run_workers import started_run_workers, with_lost_workers
from jada_pipelines.alerts.history import step_failures
from jada_pipelines.google_api.credentials import check_credentials
from jada_pipelines.health import grading, sessions_starting
from jada_pipelines.health.automation import stopped
from jada_pipelines.health.configuration import problems

DAY_SECONDS = 24 * 3600
RECENT_FAILURES = 5
DEAD_LETTERS_SHOWN = 20
# Free space on the disk holding DAGSTER_HOME or JADA_DATA_DIR below which the audit warns / errs.
DISK_WARN_FREE_PERCENT = 10
DISK_ERROR_FREE_PERCENT = 2


@dataclass(frozen=True)
class Section:
    severity: str
    summary: str
    details: dict = field(default_factory=dict)


def daemon_heartbeats(instance: dg.DagsterInstance) -> dict[str, float | None]:
    """Last heartbeat time of each daemon this instance requires (None: never seen)."""
    beats = instance.get_daemon_heartbeats()
    return {
        name: beats[name].timestamp if name in beats else None
        for name in sorted(instance.get_required_daemon_types())
    }


def build_audit(
    instance: dg.DagsterInstance, *, now: float, expected_running: Callable[[], Collection[str]]
) -> dict:
    """The whole audit as JSON-ready data: ``overall`` severity plus one entry per section.

    ``expected_running`` gives the names of the schedules and sensors meant to run (the caller's
    ``automation.running_by_default`` of the code location); the "automation" section names those someone
    stopped. It is called inside that section, so a code location that fails to load is that section's ERROR.
    """
    thresholds = grading.Thresholds.from_env()
    builders: dict[str, Callable[[], Section]] = {
        # First: a missing key explains most of what the sections below it show.
        "configuration": _configuration_section,
        "instance": lambda: _instance_section(instance),
        "daemons": lambda: _finding_section(daemon_finding(instance, now, thresholds)),
        "runs_24h": lambda: _runs_section(instance, now),
        "recent_failures": lambda: _failures_section(instance, now),
        "automation": lambda: _automation_section(instance, set(expected_running())),
        "queue": lambda: _queue_section(now, thresholds),
        "dispatch": lambda: _dispatch_section(instance, now, thresholds),
        "sessions": lambda: _sessions_section(now, thresholds),
        "backends": lambda: _backends_section(now),
        "dispatch_24h": lambda: _dispatch_latency_section(now),
        "cost_24h": lambda: _cost_section(now),
        "sandbox": lambda: _finding_section(grading.grade_sandbox(sandbox_status())),
        "google_token": _google_section,
        "disk": _disk_section,
    }
    sections = {name: _guarded(build) for name, build in builders.items()}
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "overall": grading.worst(s.severity for s in sections.values()),
        "sections": {
            name: {"severity": s.severity, "summary": s.summary, **s.details} for name, s in sections.items()
        },
    }


def daemon_finding(instance: dg.DagsterInstance, now: float, thresholds: grading.Thresholds):
    finding = grading.grade_daemon(daemon_heartbeats(instance), now=now, thresholds=thresholds)
    return with_lost_workers(finding, started_run_workers(instance))


def _guarded(build: Callable[[], Section]) -> Section:
    # The audit exists for bad days: a section that fails to read is reported, not allowed to end the report.
    try:
        return build()
    except Exception as exc:
        return Section("ERROR", f"Could not be read: {exc.__class__.__name__}: {exc}")


def _finding_section(finding: grading.Finding) -> Section:
    return Section(finding.severity, finding.description, dict(finding.metadata))


def _configuration_section() -> Section:
    found = problems()
    if not found:
        return Section("OK", "Claude, Slack and Google are configured.", {"problems": []})
    return Section(
        grading.worst(p.severity for p in found),
        found[0].text
        + (f" (and {grading.plural(len(found) - 1, 'more problem')} below)" if len(found) > 1 else ""),
        {"problems": [{"severity": p.severity, "variable": p.variable, "text": p.text} for p in found]},
    )


def _instance_section(instance: dg.DagsterInstance) -> Section:
    details = {
        "dagster_home": str(settings.dagster_home()),
        "run_storage": type(instance.run_storage).__name__,
        "event_storage": type(instance.event_log_storage).__name__,
        "run_launcher": type(instance.run_launcher).__name__,
    }
    return Section("OK", f"{details['dagster_home']} ({details['run_storage']})", details)


def _runs_since(instance: dg.DagsterInstance, now: float, **filters) -> list:
    after = datetime.fromtimestamp(now - DAY_SECONDS, UTC)
    return list(instance.get_run_records(filters=dg.RunsFilter(created_after=after, **filters)))


# "4 failed, 1 succeeded" rather than Dagster's "4 failure, 1 success".
_RUN_STATUS_WORDS = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELED": "canceled",
    "CANCELING": "canceling",
    "STARTED": "running",
    "STARTING": "starting",
    "QUEUED": "queued",
    "NOT_STARTED": "not started",
    "MANAGED": "managed",
}


def _runs_section(instance: dg.DagsterInstance, now: float) -> Section:
    counts = Counter(record.dagster_run.status.value for record in _runs_since(instance, now))
    summary = (
        f"{grading.plural(sum(counts.values()), 'run')}: "
        + ", ".join(
            f"{n} {_RUN_STATUS_WORDS.get(status, status.lower())}" for status, n in counts.most_common()
        )
        if counts
        else "no runs"
    )
    return Section("OK", summary, {"by_status": dict(counts), "total": sum(counts.values())})


def _failures_section(instance: dg.DagsterInstance, now: float) -> Section:
    failed = _runs_since(instance, now, statuses=[dg.DagsterRunStatus.FAILURE])
    failures = [
        {
            "run_id": record.dagster_run.run_id,
            "job": record.dagster_run.job_name,
            "ended_at": _iso(record.end_time),
            "reasons": [
                f"{step}: {reason}" for step, reason in step_failures(instance, record.dagster_run.run_id)
            ],
        }
        for record in failed[:RECENT_FAILURES]
    ]
    severity = "WARN" if failed else "OK"
    return Section(
        severity,
        f"{grading.plural(len(failed), 'failed run')} in 24 h",
        {"count": len(failed), "latest": failures},
    )


def _queue_section(now: float, thresholds: grading.Thresholds) -> Section:
    queue = open_queue()
    stats = queue.stats(now=now)
    backlog = grading.grade_backlog(stats, thresholds)
    dead = grading.grade_dead_letters(stats)
    dead_tasks = [
        {"id": t.id, "attempts": t.attempt, "last_error": t.last_error, "source": t.source}
        for t in queue.list(status="dead", limit=DEAD_LETTERS_SHOWN)
    ]
    failed_tasks = [
        {"id": t.id, "attempts": t.attempt, "last_error": t.last_error, "source": t.source}
        for t in queue.list(status="failed", limit=DEAD_LETTERS_SHOWN)
    ]
    return Section(
        grading.worst([backlog.severity, dead.severity]),
        f"{backlog.description} {dead.description}",
        {
            "depth_by_status": stats.depth_by_status,
            "oldest_queued_age_s": stats.oldest_queued_age_s,
            "live_sessions": stats.live_sessions,
            "dead_letters": stats.dead_letters,
            "dead_letter_tasks": dead_tasks,
            "failed_tasks": failed_tasks,
        },
    )


def _automation_section(instance: dg.DagsterInstance, expected: set[str]) -> Section:
    off = stopped(instance, expected)
    if not off:
        return Section("OK", f"All {len(expected)} schedules and sensors are on.", {"stopped": []})
    return Section(
        "ERROR",
        f"Turned off: {', '.join(off)}. While off, nothing it does happens and nothing else says so "
        "(a stopped port_sheet_sync_schedule looks like a quiet sheet): turn it back on in the UI (Automation).",
        {"stopped": off},
    )


def _dispatch_section(instance: dg.DagsterInstance, now: float, thresholds: grading.Thresholds) -> Section:
    stale = sessions_starting.stale_daemons(daemon_heartbeats(instance), now=now, thresholds=thresholds)
    return _finding_section(
        sessions_starting.grade(
            sessions_starting.gather(open_queue(), instance, now=now, stale_daemons=stale), thresholds
        )
    )


def _attempts_24h(now: float) -> list:
    return open_queue().attempts(since=now - DAY_SECONDS)


def _sessions_section(now: float, thresholds: grading.Thresholds) -> Section:
    attempts = _attempts_24h(now)
    turn_cap = grading.grade_turn_cap(attempts, thresholds)
    outcomes = Counter(a.outcome or "in_flight" for a in attempts)
    return Section(
        turn_cap.severity, turn_cap.description, {"by_outcome": dict(outcomes), **turn_cap.metadata}
    )


# Outcomes of an attempt whose session ended badly. "lost" counts only for a session that started: a claim
# withdrawn or expired before its run started is not a session.
_FAILED_OUTCOMES = ("failed", "transient", "refused", "lost", "over_budget")


def _backends_section(now: float) -> Section:
    """Sessions and failures per session backend over 24 h, and the Claude Code backend's install: the
    ``claude-code`` extra and the version of the CLI its wheel bundles (read from the wheel's files; nothing
    is run and nothing is fetched)."""
    from jada_pipelines.agents.resources import backend_from_env
    from jada_pipelines.agents.session import BACKENDS

    try:
        default = backend_from_env()
    except settings.ConfigError:
        default = None  # the configuration section says what is wrong with JADA_AGENT_BACKEND
    queue, backend_of = open_queue(), {}
    counts = {name: {"sessions": 0, "failures": 0} for name in BACKENDS}
    for attempt in _attempts_24h(now):
        if attempt.outcome in ("", "lost") and attempt.run_started_at is None:
            continue  # in flight before its session started, or a claim that never started
        if attempt.task_id not in backend_of:
            task = queue.get(attempt.task_id)
            backend_of[attempt.task_id] = (
                (task.backend if task is not None else None) or default or "messages"
            )
        figures = counts.setdefault(backend_of[attempt.task_id], {"sessions": 0, "failures": 0})
        figures["sessions"] += 1
        figures["failures"] += attempt.outcome in _FAILED_OUTCOMES
    claude_code = _claude_code_install()
    per_backend = "; ".join(
        f"{name}{' (default)' if name == default else ''}: {grading.plural(c['sessions'], 'session')}, "
        f"{c['failures']} failed"
        for name, c in counts.items()
    )
    cli = (
        f"Claude Code CLI {claude_code['cli_version']} (claude-agent-sdk {claude_code['sdk_version']})"
        if claude_code["installed"]
        else "Claude Code: not installed (the claude-code extra)"
    )
    return Section(
        "OK",
        f"{per_backend} in 24 h; {cli}",
        {"default": default, "by_backend": counts, "claude_code": claude_code},
    )


def _claude_code_install() -> dict:
    from importlib import metadata

    from jada_pipelines.agents.claude_code_sandbox import bundled_cli, cli_version

    try:
        sdk_version = metadata.version("claude-agent-sdk")
    except metadata.PackageNotFoundError:
        return {"installed": False, "sdk_version": None, "cli_version": "not installed"}
    try:
        version = cli_version(bundled_cli())
    except settings.ConfigError:
        version = "not installed"  # a wheel without its CLI (another platform, a broken install)
    return {"installed": True, "sdk_version": sdk_version, "cli_version": version}


def _dispatch_latency_section(now: float) -> Section:
    latencies = dispatch_latencies(_attempts_24h(now))
    return Section("OK", describe_latencies(latencies), {"latencies": latencies})


def _cost_section(now: float) -> Section:
    attempts = _attempts_24h(now)
    total = round(sum(a.cost_usd for a in attempts), 4)
    turns = sum(a.turns for a in attempts)
    return Section(
        "OK",
        f"${total:.2f} over {grading.plural(len(attempts), 'session')}, {grading.plural(turns, 'turn')}",
        {"usd": total, "turns": turns},
    )


def _google_section() -> Section:
    verdict = check_credentials()
    details = {
        "kind": verdict.kind,
        "token_age_days": verdict.token_age_days,
        "expires_at": verdict.expires_at.isoformat() if verdict.expires_at else None,
    }
    return Section(verdict.severity, verdict.description, details)


def _disk_section() -> Section:
    paths = {"dagster_home": settings.dagster_home(), "data_dir": settings.data_dir()}
    details, severities = {}, []
    for name, path in paths.items():
        usage = shutil.disk_usage(path)
        free_percent = 100 * usage.free / usage.total
        severities.append(_grade_free_space(free_percent))
        details[name] = {
            "path": str(path),
            "used_bytes": _tree_size(path),
            "disk_free_bytes": usage.free,
            "disk_free_percent": round(free_percent, 1),
        }
    summary = "; ".join(
        f"{name} uses {_human(d['used_bytes'])}, {d['disk_free_percent']} % of its disk free"
        for name, d in details.items()
    )
    return Section(grading.worst(severities), summary, details)


def _grade_free_space(free_percent: float) -> str:
    if free_percent < DISK_ERROR_FREE_PERCENT:
        return "ERROR"
    return "WARN" if free_percent < DISK_WARN_FREE_PERCENT else "OK"


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:  # removed while we walked (a run finishing, a temp file)
                continue
    return total


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


def render_text(audit: dict) -> str:
    """The audit as lines a person can scan: one graded line per section, details indented below."""
    lines = [f"jada health at {audit['generated_at']}: overall {audit['overall']}", ""]
    for name, section in audit["sections"].items():
        lines.append(f"[{section['severity']:<5}] {name:<16} {section['summary']}")
        lines += [f"{'':24}{line}" for line in _detail_lines(name, section)]
    return "\n".join(lines)


def _detail_lines(name: str, section: dict) -> list[str]:
    if name == "recent_failures":
        return [
            f"{f['ended_at']} {f['job']} {f['run_id']}: {'; '.join(f['reasons']) or 'no step failed'}"
            for f in section.get("latest", [])
        ]
    if name == "configuration":
        return [f"{p['severity']}: {p['text']}" for p in section.get("problems", [])[1:]]
    if name == "queue":
        return [
            f"dead letter {t['id']} after {grading.plural(t['attempts'], 'attempt')}: {t['last_error']}"
            for t in section.get("dead_letter_tasks", [])
        ] + [
            f"failed {t['id']} (attempt {t['attempts']}): {t['last_error']}"
            for t in section.get("failed_tasks", [])
        ]
    if name == "google_token" and section.get("expires_at"):
        return [f"predicted expiry {section['expires_at']}"]
    return []
