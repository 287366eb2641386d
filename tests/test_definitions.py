"""The code location loads with no environment and no network, and stays light to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg


def test_definitions_load_with_no_environment():
    from jada_pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)


def test_loading_definitions_needs_no_environment_no_network_and_no_heavy_client():
    code = (
        # Any connection or name lookup while loading fails the load.
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used while loading the definitions')\n"
        "socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = refuse\n"
        "import sys, jada_pipelines.definitions as d; d.defs.get_repository_def();"
        "heavy=[m for m in ('anthropic','pandas','gspread','google.auth','boto3','slack_sdk','claude_agent_sdk','mcp') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": ""}
    )
    assert out.stdout.strip() == "", f"heavy modules imported at load time: {out.stdout.strip()}"


def test_jada_command_prints_help():
    out = subprocess.run(
        [sys.executable, "-m", "jada_pipelines.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "usage: jada" in out.stdout


def test_every_schedule_sensor_and_job_is_named_and_says_what_it_does_and_when():
    import yaml

    from jada_pipelines.definitions import defs

    repo = defs.get_repository_def()
    jobs = [job for job in repo.get_all_jobs() if job.name != "__ASSET_JOB"]  # Dagster's own, implicit
    assert not [job.name for job in jobs if job.name.startswith("__anonymous")]
    described = [*repo.schedule_defs, *repo.sensor_defs, *jobs]
    assert {d.name: d.description for d in described if not (d.description or "").strip()} == {}
    assert repo.get_schedule_def("agent_task_queue_schedule").job_name == "agent_task_queue_job"
    workspace = yaml.safe_load((Path(__file__).parents[1] / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["location_name"] == "jada_pipelines"
