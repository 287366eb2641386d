"""The configuration contract: environment variables, read when they are needed, never at import.

Dagster's ``EnvVar`` has no optional form: an unset ``EnvVar`` fails resource initialisation with a
config stack trace before our code can say which variable to set. The contract lets most variables be
unset (no Google credentials, no Slack webhook), and each part must then fail or skip with a sentence
that names the variable. So resources read these variables at execution time through this module; the
values never enter run config, tags or the UI.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_SHEETS_API_URL = "https://sheets.googleapis.com"
DEFAULT_WEBSERVER_URL = "http://localhost:3000"
DEFAULT_AGENT_MODEL = "claude-sonnet-5-5"
DEFAULT_AGENT_MAX_TURNS = 30
MAX_CONCURRENT_SESSIONS = 5
# JADA_AGENT_SANDBOX=uid: the user ids the sessions' commands run as, one per concurrent session.
DEFAULT_AGENT_UID_RANGE = "61000-61015"
# The run tag that dagster.yaml limits to MAX_CONCURRENT_SESSIONS concurrent runs.
AGENT_SESSION_TAG = "jada/agent-session"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and how to set it."""


def env(name: str, default: str | None = None) -> str | None:
    """The variable's value, or ``default`` when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number; set it to an integer such as {default}."
        ) from None


def env_positive_int(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 1:
        raise ConfigError(f"{name}={value} must be 1 or more; unset means {default}.")
    return value


def env_float(name: str, default: float) -> float:
    raw = env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(
            f"{name}={raw!r} is not a positive number of seconds; set it to a number such as {default:g}."
        )
    return value


def dagster_home() -> Path:
    home = env("DAGSTER_HOME")
    if home is None:
        raise ConfigError(
            "DAGSTER_HOME is not set: export DAGSTER_HOME=$PWD/.dagster_home in the repository (the home `make dev`"
            " uses), or the path your dagster-daemon runs with."
        )
    return Path(home)


def data_dir() -> Path:
    """``JADA_DATA_DIR``, else ``$DAGSTER_HOME/jada``; created on first use, readable by its owner only (it
    holds the task queue, transcripts and the sessions' working directories)."""
    raw = env("JADA_DATA_DIR")
    path = Path(raw) if raw else dagster_home() / "jada"
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
    return path


def workdir_roots() -> list[Path]:
    """``JADA_AGENT_WORKDIR_ROOTS`` (``:``-separated), else the data directory's ``workdirs/``: the only places a
    task's working directory may lie."""
    raw = env("JADA_AGENT_WORKDIR_ROOTS")
    if raw is None:
        return [data_dir() / "workdirs"]
    roots = [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]
    relative = [str(root) for root in roots if not root.is_absolute()]
    if relative:
        raise ConfigError(
            f"JADA_AGENT_WORKDIR_ROOTS holds relative paths ({', '.join(relative)}); use absolute paths "
            "separated by ':'."
        )
    return [root.resolve() for root in roots]


def agent_uid_range() -> range:
    """``JADA_AGENT_UID_RANGE`` (``FIRST-LAST``, inclusive; default 61000-61015): the slot uids of
    ``JADA_AGENT_SANDBOX=uid``. Checked: 1000 or more, not the worker's own uid, and one per concurrent session."""
    raw = env("JADA_AGENT_UID_RANGE") or DEFAULT_AGENT_UID_RANGE
    try:
        first, last = (int(part) for part in raw.split("-"))
    except ValueError:
        raise ConfigError(
            f"JADA_AGENT_UID_RANGE={raw!r} is not a range of user ids: write it as FIRST-LAST, such as "
            f"{DEFAULT_AGENT_UID_RANGE}."
        ) from None
    ids = range(first, last + 1)
    if first < 1000 or len(ids) < MAX_CONCURRENT_SESSIONS:
        raise ConfigError(
            f"JADA_AGENT_UID_RANGE={raw!r} must hold at least {MAX_CONCURRENT_SESSIONS} user ids (one per "
            f"concurrent session), all 1000 or more and used by nobody else on this host, such as "
            f"{DEFAULT_AGENT_UID_RANGE}."
        )
    if os.getuid() in ids:
        raise ConfigError(
            f"JADA_AGENT_UID_RANGE={raw!r} holds the run worker's own uid {os.getuid()}: choose ids no one uses."
        )
    return ids


def webserver_url() -> str:
    return (env("JADA_WEBSERVER_URL") or DEFAULT_WEBSERVER_URL).rstrip("/")


DEFAULT_AGENT_SENSOR_INTERVAL_SECONDS = 5


def agent_continue_delay_seconds() -> int:
    """``JADA_AGENT_CONTINUE_DELAY_SECONDS``: how long a task that ended ``incomplete`` (turn cap reached, a
    handoff written) waits before it can be claimed for its next attempt (default 0: at once). The pause
    leaves the task visibly ``incomplete`` for a while, in the queue and in the port sheet's status column,
    which otherwise sees it go straight back to ``dispatched``."""
    seconds = env_int("JADA_AGENT_CONTINUE_DELAY_SECONDS", 0)
    if seconds < 0:
        raise ConfigError(
            f"JADA_AGENT_CONTINUE_DELAY_SECONDS={seconds} must be 0 or more (seconds an incomplete task waits "
            "before its next attempt; unset means 0)."
        )
    return seconds


def agent_sensor_interval_seconds() -> int:
    """``JADA_AGENT_SENSOR_INTERVAL_SECONDS``: how often ``agent_task_sensor`` ticks (default 5).

    The one setting read when the definitions load rather than when it is used: a sensor's interval is part
    of its definition, which the daemon reads from the code location, so a change takes effect when the code
    location is reloaded (restart `dagster-daemon` or reload it in the UI). A bad value stops the load with
    this message instead of a stack trace deep in Dagster.
    """
    seconds = env_int("JADA_AGENT_SENSOR_INTERVAL_SECONDS", DEFAULT_AGENT_SENSOR_INTERVAL_SECONDS)
    if seconds < 1:
        raise ConfigError(
            f"JADA_AGENT_SENSOR_INTERVAL_SECONDS={seconds} must be 1 or more (seconds between ticks of "
            f"agent_task_sensor; unset means {DEFAULT_AGENT_SENSOR_INTERVAL_SECONDS})."
        )
    return seconds


DEFAULT_AGENT_CLAIM_AHEAD = 2


def agent_claim_ahead() -> int:
    """``JADA_AGENT_CLAIM_AHEAD``: claims ``agent_task_sensor`` keeps beyond the 5 session slots, as runs waiting
    in Dagster's run queue, so a freed slot starts its next run without waiting for a sensor tick (default 2;
    0 claims only for free slots). Read on every tick."""
    ahead = env_int("JADA_AGENT_CLAIM_AHEAD", DEFAULT_AGENT_CLAIM_AHEAD)
    if ahead < 0:
        raise ConfigError(
            f"JADA_AGENT_CLAIM_AHEAD={ahead} must be 0 or more (claims kept waiting in Dagster's run queue "
            f"beyond the {MAX_CONCURRENT_SESSIONS} session slots; 0 turns it off, unset means "
            f"{DEFAULT_AGENT_CLAIM_AHEAD})."
        )
    return ahead
