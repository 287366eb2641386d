"""The code location loads with no environment and no network, and stays light to import."""

from __future__ import annotations

import subprocess
import sys

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
