"""The systemd units that replace jada-agent.service start the webserver and the daemon from the project's
virtualenv with the environment file; a timer runs the watchdog (`jada health --alert`) every 5 minutes
whatever the daemon's state; every unit passes `systemd-analyze verify` with no warning."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "deploy" / "systemd"
SERVICES = [SYSTEMD / "dagster-daemon.service", SYSTEMD / "dagster-webserver.service"]
WATCHDOG = SYSTEMD / "jada-watchdog.service"
TIMER = SYSTEMD / "jada-watchdog.timer"
UNITS = sorted([*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")])
# The install location the units and docs/production.md use.
INSTALL_PREFIX = "/opt/jada-pipelines"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def _env_example() -> dict[str, str]:
    lines = (SYSTEMD / "jada.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_there_are_units_for_the_webserver_the_daemon_and_the_watchdog_timer():
    assert [unit.name for unit in UNITS] == [
        "dagster-daemon.service",
        "dagster-webserver.service",
        "jada-watchdog.service",
        "jada-watchdog.timer",
    ]


def test_the_watchdog_runs_jada_health_alert_every_five_minutes_independent_of_the_daemon():
    service, timer = _unit(WATCHDOG), _unit(TIMER)

    assert service["Service"]["ExecStart"] == f"{INSTALL_PREFIX}/.venv/bin/jada health --alert"
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["EnvironmentFile"] == "/etc/jada/jada.env"
    assert service["Service"]["User"] == "jada"
    # An audit at ERROR (exit 1) is the watchdog working; only a post Slack refused (exit 3) fails the unit.
    assert service["Service"]["SuccessExitStatus"] == "1"
    for key in ("Requires", "BindsTo", "PartOf", "After", "Requisite"):
        assert "dagster-daemon" not in service["Unit"].get(key, "")
    assert timer["Timer"]["Unit"] == WATCHDOG.name
    assert timer["Timer"]["OnUnitActiveSec"] == "5min" and timer["Timer"]["OnBootSec"] == "2min"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("unit", SERVICES, ids=lambda path: path.name)
def test_each_unit_runs_the_project_venv_with_the_workspace_and_the_environment_file(unit):
    service = _unit(unit)["Service"]
    command = service["ExecStart"].split()

    assert command[0] == f"{INSTALL_PREFIX}/.venv/bin/{unit.stem}"
    assert command[command.index("--workspace") + 1] == f"{INSTALL_PREFIX}/workspace.yaml"
    assert service["EnvironmentFile"] == "/etc/jada/jada.env"
    assert service["User"] == "jada"
    assert service["Restart"] == "on-failure"
    assert _unit(unit)["Install"]["WantedBy"] == "multi-user.target"


def test_restarting_the_daemon_leaves_agent_sessions_in_flight_running():
    assert _unit(SYSTEMD / "dagster-daemon.service")["Service"]["KillMode"] == "process"


def test_the_webserver_listens_on_loopback_only():
    command = _unit(SYSTEMD / "dagster-webserver.service")["Service"]["ExecStart"].split()
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_the_environment_file_example_sets_what_the_instance_needs_and_no_real_secret():
    env = _env_example()

    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", key) for key in env), "systemd wants KEY=value lines"
    assert env["DAGSTER_HOME"] and env["JADA_POSTGRES_URL"].startswith("postgresql+psycopg2://")
    for variable in re.findall(r"env: (\w+)", (REPO / "deploy" / "dagster.yaml").read_text()):
        assert variable in env, f"deploy/dagster.yaml reads {variable}, which jada.env.example does not set"
    assert env["ANTHROPIC_API_KEY"] == env["SLACK_WEBHOOK_URL"] == ""


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_systemd_analyze_verify_accepts_the_unit(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    # Not a skip: CI must not report these units as checked when they were not. Where systemd is missing
    # (macOS, slim containers), install it (Debian/Ubuntu: apt-get install systemd) to run this test.
    assert analyze, (
        "systemd-analyze is not installed, so the systemd units cannot be verified: install systemd."
    )
    program = "jada" if unit.stem == WATCHDOG.stem else unit.stem
    if not (REPO / ".venv" / "bin" / program).exists():
        pytest.fail(f".venv/bin/{program} is missing: run `make test` so the virtualenv is installed.")
    # verify checks that ExecStart exists, so point the install prefix at this checkout, and nothing else.
    # A timer is verified next to the service it starts, which verify also checks.
    copies = []
    for path in [unit] + ([WATCHDOG] if unit == TIMER else []):
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(INSTALL_PREFIX, str(REPO)))
        copies.append(str(copy))

    result = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=60)

    # verify exits 0 on unknown keys and bad values too, printing only a warning: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", [*SERVICES, WATCHDOG], ids=lambda path: path.name)
def test_every_service_bounds_its_memory_and_tasks(unit):
    """RLIMIT_AS is per process: several processes of one command could together pass it. The cgroup's
    MemoryMax is what bounds the total, and TasksMax the processes (even for a root worker)."""
    service = _unit(unit)["Service"]
    assert re.fullmatch(r"\d+[MG]", service["MemoryMax"]) and int(service["TasksMax"]) > 0


def test_an_oom_kill_in_the_daemon_does_not_stop_the_daemon_or_its_other_sessions():
    service = _unit(SYSTEMD / "dagster-daemon.service")["Service"]
    assert service["OOMPolicy"] == "continue" and service["MemorySwapMax"] == "0"
