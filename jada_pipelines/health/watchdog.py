"""The watchdog outside the daemon: `jada health --alert` posts the audit's ERROR sections to Slack.

Every other alert comes from a sensor inside ``dagster-daemon``, so a dead daemon (or a machine whose
daemon did not come back after a reboot) says nothing. This runs from a systemd timer or an ECS scheduled
task instead, needs no daemon and no Dagster run, and keeps its memory in one small JSON file
(``JADA_WATCHDOG_STATE_FILE``, default ``$JADA_DATA_DIR/watchdog-state.json``):

- each problem at ERROR is posted once when it appears: a section that lists its ``problems`` (each with a
  ``severity`` and a ``text``, like ``configuration``) gives one problem per ERROR entry, so a second problem
  in a section that is already red is posted too; any other section at ERROR is one problem;
- while a problem lasts it is posted again every ``JADA_ALERT_REMIND_HOURS`` (default 6);
- when it is gone, one recovery is posted for it and it is forgotten (the section's other problems stay).

The state is written after each post that Slack took, so a run that fails half-way neither loses a problem
nor posts one twice. A Retry-After too long to wait for is kept in the file as "not before".
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jada_pipelines import settings
from jada_pipelines.alerts import messages
from jada_pipelines.alerts.errors import SlackDeliveryError

STATE_VARIABLE = "JADA_WATCHDOG_STATE_FILE"
REMIND_HOURS_VARIABLE = "JADA_ALERT_REMIND_HOURS"
DEFAULT_REMIND_HOURS = settings.default(REMIND_HOURS_VARIABLE)


def state_path() -> Path:
    raw = settings.get(STATE_VARIABLE)
    return Path(raw) if raw else settings.data_dir() / "watchdog-state.json"


@dataclass
class WatchdogState:
    # problem key (``problem_key``) -> {"since", "alerted_at", "summary", "section"}
    problems: dict[str, dict] = field(default_factory=dict)
    not_before: float | None = None

    @classmethod
    def load(cls, path: Path) -> WatchdogState:
        try:
            raw = json.loads(path.read_text())
            return cls(problems=dict(raw["problems"]), not_before=raw.get("not_before"))
        except FileNotFoundError:
            return cls()
        except (ValueError, KeyError, TypeError):
            # Starting afresh re-posts the problems that are still there; trusting a broken file could hide them.
            print(
                f"jada health --alert: {path} is not a watchdog state file; starting afresh (current problems "
                "are posted again).",
                file=sys.stderr,
            )
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(temporary, path)  # atomic: a crash leaves the old state or the new one, never half of one


@dataclass(frozen=True)
class Post:
    kind: str  # "problem" | "reminder" | "recovered"
    section: str
    summary: str
    since: float
    key: str = ""  # the problem's key in the state file; the section's name when it is the whole section

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.section)


def problem_key(section: str, problem: dict) -> str:
    """A listed problem's identity across runs: its variable when it names one (its text may change with the
    figures it quotes), else its text."""
    return f"{section}: {problem.get('variable') or problem['text']}"


def error_problems(audit: dict) -> dict[str, tuple[str, str]]:
    """``{key: (section, summary)}`` of every problem at ERROR in the audit (the rule is in the docstring)."""
    found = {}
    for name, section in audit["sections"].items():
        if section["severity"] != "ERROR":
            continue
        listed = [
            p for p in section.get("problems") or [] if isinstance(p, dict) and p.get("severity") == "ERROR"
        ]
        if not listed:
            found[name] = (name, section["summary"])
        for problem in listed:
            key = problem_key(name, problem)
            key = key if key not in found else f"{name}: {problem['text']}"  # two problems on one variable
            found[key] = (name, problem["text"])
    return found


def plan(audit: dict, state: WatchdogState, *, now: float, remind_after: float) -> list[Post]:
    """What this run must post: new problems, reminders that are due, and recoveries."""
    errors = error_problems(audit)
    posts = []
    for key, (section, summary) in errors.items():
        known = state.problems.get(key)
        if known is None:
            posts.append(Post("problem", section, summary, now, key))
        elif now - known["alerted_at"] >= remind_after:
            posts.append(Post("reminder", section, summary, known["since"], key))
    for key, known in state.problems.items():
        if key not in errors:
            posts.append(Post("recovered", known.get("section", key), known["summary"], known["since"], key))
    return posts


def run(audit: dict, *, slack, path: Path, now: float) -> tuple[list[str], bool]:
    """Post what ``plan`` says through ``slack``; returns lines saying what happened, and whether all went out."""
    state = WatchdogState.load(path)
    if state.not_before is not None and now < state.not_before:
        return [f"Slack asked for quiet until {_iso(state.not_before)}; nothing posted this run."], True
    state.not_before = None
    remind_after = settings.get(REMIND_HOURS_VARIABLE) * 3600
    posts = plan(audit, state, now=now, remind_after=remind_after)
    lines = []
    for post in posts:
        try:
            slack.post(_message(post))
        except SlackDeliveryError as error:
            if error.retry_after is not None:
                state.not_before = now + error.retry_after
                state.save(path)
                lines.append(
                    f"Slack asked for quiet until {_iso(state.not_before)}; the rest waits until then."
                )
                return lines, True
            state.save(path)
            lines.append(f"Could not post the {post.kind} for {post.key}: {error}")
            return lines, False
        if post.kind == "recovered":
            state.problems.pop(post.key, None)
        else:
            state.problems[post.key] = {
                "since": post.since,
                "alerted_at": now,
                "summary": post.summary,
                "section": post.section,
            }
        state.save(path)
        lines.append(f"Posted the {post.kind} for {post.key}.")
    state.save(path)
    if not posts:
        known = ", ".join(sorted(state.problems)) or "none"
        lines.append(f"Nothing new to post. Known problems: {known}.")
    return lines, True


def _message(post: Post):
    return messages.watchdog(
        kind=post.kind,
        section=post.key,  # the section, or "section: problem" for one of the problems it lists
        summary=post.summary,
        since=_iso(post.since),
        host=socket.gethostname(),
        dedup_key=f"watchdog:{post.kind}:{post.key}:{int(post.since)}",
        webserver_url=settings.webserver_url(),
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def failed_audit(error: Exception, *, now: float) -> dict:
    """The audit when the Dagster instance itself cannot be opened: one ERROR section that says why."""
    return {
        "generated_at": _iso(now),
        "overall": "ERROR",
        "sections": {
            "instance": {
                "severity": "ERROR",
                "summary": f"The Dagster instance could not be opened ({error.__class__.__name__}): check "
                "DAGSTER_HOME, its dagster.yaml and the storage it names (Postgres on a server).",
            }
        },
    }


def current_time() -> float:
    return time.time()
