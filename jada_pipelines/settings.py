"""The configuration contract: environment variables, read when they are needed, never at import.

Dagster's ``EnvVar`` has no optional form: an unset ``EnvVar`` fails resource initialisation with a
config stack trace before our code can say which variable to set. The contract lets most variables be
unset (no Google credentials, no Slack webhook), and each part must then fail or skip with a sentence
that names the variable. So resources read these variables at execution time through this module; the
values never enter run config, tags or the UI.

Every variable is declared once in ``REGISTRY`` (name, kind, default, meaning) and read with ``get(name)``;
no other module reads ``os.environ`` for a setting, and reading an undeclared name raises
(tests/test_settings_registry.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_CONCURRENT_SESSIONS = 5
# The run tag that dagster.yaml limits to MAX_CONCURRENT_SESSIONS concurrent runs.
AGENT_SESSION_TAG = "jada/agent-session"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and how to set it."""


# How a setting's text becomes its value (see Setting.read).
TEXT = "text"  # the stripped text, or the default when unset or blank
INT = "int"  # a whole number
COUNT = "count"  # a whole number, 1 or more
SECONDS = "seconds"  # a positive number of seconds
DOLLARS = "dollars"  # a positive number of dollars


@dataclass(frozen=True)
class Setting:
    """One environment variable the product reads: its name, how it is parsed, its default (None: unset means
    off, or a default computed from another setting, which ``meaning`` says) and what it is for. The table in
    docs/configuration.md and .env.example list the same names (tests/test_settings_registry.py)."""

    name: str
    kind: str
    default: Any
    meaning: str

    def read(self) -> Any:
        """The value from the environment, else the default; a malformed value is a ConfigError naming the
        variable and what to set it to."""
        raw = os.environ.get(self.name, "").strip() or None
        if raw is None or self.kind == TEXT:
            return raw if raw is not None else self.default
        if self.kind in (INT, COUNT):
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(
                    f"{self.name}={raw!r} is not a whole number; set it to an integer such as {self.default}."
                ) from None
            if self.kind == COUNT and value < 1:
                raise ConfigError(f"{self.name}={value} must be 1 or more; unset means {self.default}.")
            return value
        try:
            number = float(raw)
        except ValueError:
            number = -1.0
        if number > 0:
            return number
        if self.kind == DOLLARS:
            raise ConfigError(
                f"{self.name}={raw!r} is not a positive number of dollars: set it to the most one task may cost "
                "over all its attempts, such as 5, or unset it for no ceiling."
            )
        raise ConfigError(
            f"{self.name}={raw!r} is not a positive number of seconds; set it to a number such as "
            f"{self.default:g}."
        )


def _settings(*declared: Setting) -> dict[str, Setting]:
    return {setting.name: setting for setting in declared}


_HEALTH = (
    # name after JADA_HEALTH_, default, meaning; one per field of health.grading.Thresholds.
    ("BACKLOG_WARN_DEPTH", 20, "tasks due and waiting at which the backlog check warns"),
    ("BACKLOG_ERROR_DEPTH", 100, "tasks due and waiting at which the backlog check errors"),
    ("QUEUED_AGE_WARN_MINUTES", 30, "minutes the oldest due task may wait before a warning"),
    ("QUEUED_AGE_ERROR_MINUTES", 120, "minutes the oldest due task may wait before an error"),
    ("TURN_CAP_WARN_PERCENT", 30, "percent of recent sessions reaching their turn cap that warns"),
    ("TURN_CAP_ERROR_PERCENT", 60, "percent of recent sessions reaching their turn cap that errors"),
    ("DAEMON_STALE_SECONDS", 300, "seconds without a daemon heartbeat before the daemon check errors"),
    ("DISPATCH_WAIT_SECONDS", 300, "seconds a due task may wait while a session slot is free"),
    ("DISPATCH_START_SECONDS", 180, "seconds a claim's run may take to begin its session"),
)

# Every variable the product reads, declared once. Reading goes through get(); docs/configuration.md's table
# and .env.example name each one, and tests/conftest.py scrubs each one from a developer's shell.
REGISTRY: dict[str, Setting] = _settings(
    # -- the Dagster instance and local state
    Setting("DAGSTER_HOME", TEXT, None, "instance storage (runs, events, schedules); required"),
    Setting(
        "JADA_DATA_DIR",
        TEXT,
        None,
        "local state: task queue, transcripts, working directories; unset means $DAGSTER_HOME/jada",
    ),
    Setting(
        "JADA_TASK_QUEUE_URL",
        TEXT,
        None,
        "sqlite:///path or dynamodb://TABLE; unset means sqlite:///$JADA_DATA_DIR/tasks.db",
    ),
    # -- Google (port sheet)
    Setting("JADA_GOOGLE_TOKEN_FILE", TEXT, None, "authorized-user token JSON written by `jada auth google`"),
    Setting(
        "JADA_GOOGLE_SERVICE_ACCOUNT_FILE", TEXT, None, "service-account key JSON (wins over the token file)"
    ),
    Setting("JADA_GOOGLE_TOKEN_SECRET_ID", TEXT, None, "AWS Secrets Manager secret holding the token"),
    Setting("JADA_GOOGLE_TOKEN_URI", TEXT, "https://oauth2.googleapis.com/token", "OAuth token endpoint"),
    Setting("JADA_SHEETS_API_URL", TEXT, "https://sheets.googleapis.com", "Sheets API base URL"),
    Setting(
        "GOOGLE_APPLICATION_CREDENTIALS",
        TEXT,
        None,
        "Google's key-file variable: never used to sign in, only hidden from the model's commands",
    ),
    Setting("JADA_PORT_SHEET_ID", TEXT, None, "the port sheet's spreadsheet id"),
    Setting("JADA_PORT_SHEET_TAB", TEXT, "Ports", "the port sheet's tab"),
    Setting("JADA_PORT_SHEET_KEY", TEXT, "id", "the port sheet's key column"),
    # -- Claude agent sessions
    Setting("ANTHROPIC_API_KEY", TEXT, None, "Claude API key (the SDK reads it too)"),
    Setting("ANTHROPIC_AUTH_TOKEN", TEXT, None, "a bearer token instead of ANTHROPIC_API_KEY"),
    Setting("ANTHROPIC_BASE_URL", TEXT, "https://api.anthropic.com", "Claude API base URL"),
    Setting(
        "JADA_AGENT_BACKEND",
        TEXT,
        "messages",
        "session backend of tasks that name none: messages or claude-code",
    ),
    Setting("JADA_AGENT_MODEL", TEXT, "claude-sonnet-5-5", "model of sessions"),
    Setting("JADA_AGENT_MAX_TURNS", INT, 30, "turn cap of tasks that set none"),
    Setting(
        "JADA_AGENT_MAX_COST_USD",
        DOLLARS,
        None,
        "what one task may cost over all its attempts; unset means no ceiling",
    ),
    Setting(
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS",
        INT,
        5,
        "how often agent_task_sensor ticks (read when the definitions load)",
    ),
    Setting(
        "JADA_AGENT_CONTINUE_DELAY_SECONDS",
        INT,
        0,
        "seconds an incomplete task waits before its next attempt",
    ),
    Setting(
        "JADA_AGENT_CLAIM_AHEAD",
        INT,
        2,
        "claims kept waiting in Dagster's run queue beyond the session slots",
    ),
    Setting("JADA_AGENT_SANDBOX", TEXT, "bwrap", "how the model's commands are confined: bwrap, uid or off"),
    Setting("JADA_AGENT_NETWORK", TEXT, "none", "whether bubblewrap shares the host's network: none or host"),
    Setting(
        "JADA_AGENT_UID_RANGE",
        TEXT,
        "61000-61015",
        "FIRST-LAST user ids JADA_AGENT_SANDBOX=uid runs commands as",
    ),
    Setting(
        "JADA_AGENT_WORKDIR_ROOTS",
        TEXT,
        None,
        ":-separated directories a task's working directory must lie under; unset means $JADA_DATA_DIR/workdirs",
    ),
    Setting("JADA_AGENT_COMMAND_TIMEOUT_SECONDS", SECONDS, 120.0, "timeout of one command"),
    Setting("JADA_AGENT_SESSION_MAX_SECONDS", SECONDS, 7200.0, "wall-clock limit of one session"),
    Setting("JADA_AGENT_MAX_OUTPUT_MB", COUNT, 8, "output of one command before it is stopped"),
    Setting("JADA_AGENT_EDITOR_MAX_KB", COUNT, 1024, "largest file the editor tool reads or writes"),
    Setting(
        "JADA_AGENT_WORKDIR_MAX_MB", COUNT, 2048, "size of the working directory before the session fails"
    ),
    Setting(
        "JADA_AGENT_WORKDIR_MAX_FILES",
        COUNT,
        100_000,
        "entries in the working directory before the session fails",
    ),
    Setting("JADA_AGENT_MAX_FILE_MB", COUNT, 1024, "largest file one command may write (RLIMIT_FSIZE)"),
    Setting("JADA_AGENT_MAX_PROCESSES", COUNT, 256, "processes of the sandbox's user (RLIMIT_NPROC)"),
    Setting("JADA_AGENT_MAX_MEMORY_MB", COUNT, 8192, "virtual memory of each command's process (RLIMIT_AS)"),
    Setting(
        "JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB",
        COUNT,
        65536,
        "virtual memory of the Claude Code CLI's processes (RLIMIT_AS)",
    ),
    Setting("JADA_AGENT_TMP_MB", COUNT, 256, "size of the sandbox's /tmp"),
    Setting("JADA_AGENT_PROXY_MODELS", TEXT, None, "models the key proxy forwards besides JADA_AGENT_MODEL"),
    Setting("JADA_AGENT_PROXY_MAX_TOKENS", COUNT, 32_000, "the key proxy's max_tokens cap"),
    Setting(
        "JADA_AGENT_PROXY_BETAS",
        TEXT,
        None,
        "anthropic-beta values the key proxy forwards besides the CLI's own",
    ),
    Setting("JADA_AGENT_SERVER_TOOLS", TEXT, None, "server tools the key proxy forwards"),
    # -- alerts and health
    Setting("SLACK_WEBHOOK_URL", TEXT, None, "Slack incoming webhook alerts are posted to"),
    Setting("JADA_WEBSERVER_URL", TEXT, "http://localhost:3000", "the Dagster UI the alerts link to"),
    Setting(
        "JADA_WATCHDOG_STATE_FILE",
        TEXT,
        None,
        "where `jada health --alert` remembers what it posted; unset means $JADA_DATA_DIR/watchdog-state.json",
    ),
    Setting("JADA_ALERT_REMIND_HOURS", INT, 6, "hours before a check that keeps failing is posted again"),
    *(Setting(f"JADA_HEALTH_{name}", INT, default, meaning) for name, default, meaning in _HEALTH),
    # -- AWS (production)
    Setting("JADA_CLOUDWATCH_NAMESPACE", TEXT, None, "CloudWatch namespace of the metrics; unset means off"),
    Setting("JADA_ENV", TEXT, "dev", "the metrics' Env dimension"),
    Setting("JADA_POSTGRES_URL", TEXT, None, "production instance storage, read by deploy/dagster.yaml"),
    Setting(
        "JADA_ECS_RUN_TASK_DEFINITION",
        TEXT,
        None,
        "ECS task definition of runs, read by deploy/ecs/dagster.yaml",
    ),
    Setting(
        "JADA_ANTHROPIC_API_KEY_SECRET_ID", TEXT, None, "secret the ECS run task reads into ANTHROPIC_API_KEY"
    ),
    Setting(
        "JADA_POSTGRES_URL_SECRET_ID", TEXT, None, "secret the ECS run task reads into JADA_POSTGRES_URL"
    ),
)


def setting(name: str) -> Setting:
    """The registered setting; an unregistered name is a programming error: declare it in REGISTRY."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise LookupError(
            f"{name} is not a registered setting: declare it in jada_pipelines.settings.REGISTRY"
        ) from None


def get(name: str) -> Any:
    """The setting's value, parsed as its kind, else its default."""
    return setting(name).read()


def is_set(name: str) -> bool:
    """Whether the environment gives the setting a (non-blank) value, rather than leaving it to its default."""
    setting(name)
    return os.environ.get(name, "").strip() != ""


def default(name: str) -> Any:
    return setting(name).default


# The defaults other modules name, as aliases of the registry.
DEFAULT_GOOGLE_TOKEN_URI = default("JADA_GOOGLE_TOKEN_URI")
DEFAULT_SHEETS_API_URL = default("JADA_SHEETS_API_URL")
DEFAULT_WEBSERVER_URL = default("JADA_WEBSERVER_URL")
DEFAULT_AGENT_MODEL = default("JADA_AGENT_MODEL")
DEFAULT_AGENT_MAX_TURNS = default("JADA_AGENT_MAX_TURNS")
DEFAULT_AGENT_UID_RANGE = default("JADA_AGENT_UID_RANGE")
DEFAULT_AGENT_SENSOR_INTERVAL_SECONDS = default("JADA_AGENT_SENSOR_INTERVAL_SECONDS")
DEFAULT_AGENT_CLAIM_AHEAD = default("JADA_AGENT_CLAIM_AHEAD")


def dagster_home() -> Path:
    home = get("DAGSTER_HOME")
    if home is None:
        raise ConfigError(
            "DAGSTER_HOME is not set: export DAGSTER_HOME=$PWD/.dagster_home in the repository (the home `make dev`"
            " uses), or the path your dagster-daemon runs with."
        )
    return Path(home)


def data_dir() -> Path:
    """``JADA_DATA_DIR``, else ``$DAGSTER_HOME/jada``; created on first use, readable by its owner only (it
    holds the task queue, transcripts and the sessions' working directories)."""
    raw = get("JADA_DATA_DIR")
    path = Path(raw) if raw else dagster_home() / "jada"
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
    return path


def workdir_roots() -> list[Path]:
    """``JADA_AGENT_WORKDIR_ROOTS`` (``:``-separated), else the data directory's ``workdirs/``: the only places a
    task's working directory may lie."""
    raw = get("JADA_AGENT_WORKDIR_ROOTS")
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
    raw = get("JADA_AGENT_UID_RANGE")
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
    return get("JADA_WEBSERVER_URL").rstrip("/")


def agent_continue_delay_seconds() -> int:
    """``JADA_AGENT_CONTINUE_DELAY_SECONDS``: how long a task that ended ``incomplete`` (turn cap reached, a
    handoff written) waits before it can be claimed for its next attempt (default 0: at once). The pause
    leaves the task visibly ``incomplete`` for a while, in the queue and in the port sheet's status column,
    which otherwise sees it go straight back to ``dispatched``."""
    seconds = get("JADA_AGENT_CONTINUE_DELAY_SECONDS")
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
    seconds = get("JADA_AGENT_SENSOR_INTERVAL_SECONDS")
    if seconds < 1:
        raise ConfigError(
            f"JADA_AGENT_SENSOR_INTERVAL_SECONDS={seconds} must be 1 or more (seconds between ticks of "
            f"agent_task_sensor; unset means {DEFAULT_AGENT_SENSOR_INTERVAL_SECONDS})."
        )
    return seconds


def agent_claim_ahead() -> int:
    """``JADA_AGENT_CLAIM_AHEAD``: claims ``agent_task_sensor`` keeps beyond the 5 session slots, as runs waiting
    in Dagster's run queue, so a freed slot starts its next run without waiting for a sensor tick (default 2;
    0 claims only for free slots). Read on every tick."""
    ahead = get("JADA_AGENT_CLAIM_AHEAD")
    if ahead < 0:
        raise ConfigError(
            f"JADA_AGENT_CLAIM_AHEAD={ahead} must be 0 or more (claims kept waiting in Dagster's run queue "
            f"beyond the {MAX_CONCURRENT_SESSIONS} session slots; 0 turns it off, unset means "
            f"{DEFAULT_AGENT_CLAIM_AHEAD})."
        )
    return ahead
