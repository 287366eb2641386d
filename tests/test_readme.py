"""The README's "First steps" work as written, in order, typed into a shell as a person would, against the
local emulators: the `sh` blocks run in one bash session, the `dotenv` blocks are the lines a person adds to
.env (a `…` is where their own value goes: here the emulators'), and the browser that `jada auth google`
opens is a stand-in that follows the consent URL, as a person clicking Allow would.

The one line not run is `make dev` (it starts Dagster in a second terminal; tests/test_make_dev.py runs it).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLACEHOLDER = "…"
# What `make install` needs to find in the copy, so it runs as typed (and finds the virtualenv up to date).
LINKED = ("Makefile", "pyproject.toml", "requirements.lock", ".venv")
NOT_RUN = "make dev"
CONSENT_PORT = 8085  # `jada auth google`'s default

# A browser for webbrowser.open (the BROWSER variable): it returns at once, as a real browser does, and then
# opens the URL and follows the redirects to the command's local server.
BROWSER = """
import os, sys, urllib.request
if os.fork():
    sys.exit(0)
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    response.read()
"""


def first_steps(readme: str) -> list[tuple[str, str]]:
    """The fenced blocks of "First steps for real use", in order, as (language, text)."""
    match = re.search(r"^## First steps for real use\n(.*?)(?=^## )", readme, re.S | re.M)
    assert match, 'README.md has no "## First steps for real use" section'
    blocks = re.findall(r"^ *```(\w*)\n(.*?)^ *```", match.group(1), re.S | re.M)
    return [(language, "\n".join(line.strip() for line in text.splitlines())) for language, text in blocks]


def _script(blocks: list[tuple[str, str]], values: dict[str, str]) -> tuple[str, list[str]]:
    """One bash script doing what the steps say: each command is announced, run, and its exit code printed."""
    lines, commands = [], []
    for language, text in blocks:
        if language == "dotenv":
            for entry in text.splitlines():
                name, _, value = entry.partition("=")
                if PLACEHOLDER in value:
                    assert name in values, f"README asks for {name}; the test has no emulator value for it"
                    value = values[name]
                lines.append(f"printf '%s\\n' {_quote(f'{name}={value}')} >> .env")
        elif language == "sh":
            for command in text.splitlines():
                commands.append(command)
                if command == NOT_RUN:
                    continue
                lines += [f"echo {_quote(f'::run {command}')}", command, "echo ::exit $?"]
        else:
            raise AssertionError(f"a First steps block without sh or dotenv: {language!r}")
    return "\n".join(lines) + "\n", commands


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _outputs(transcript: str) -> dict[str, tuple[int, str]]:
    """Each command's exit code and output, from the announced transcript."""
    found = {}
    for part in transcript.split("::run ")[1:]:
        command, _, rest = part.partition("\n")
        output, _, code = rest.rpartition("::exit ")
        found[command] = (int(code.split()[0]), output)
    return found


def _wait_until_bindable(port: int, timeout: float = 120.0) -> None:
    """The consent's local server binds without SO_REUSEADDR, so a consent (this test's, run a moment ago)
    holds its port in TIME_WAIT for up to a minute."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(1)


def test_the_first_steps_of_the_readme_run_as_written_against_the_emulators(
    google_emulator, slack_webhook, tmp_path
):
    blocks = first_steps((REPO / "README.md").read_text())
    checkout = tmp_path / "jada-pipelines"
    checkout.mkdir()
    (checkout / ".env.example").write_text((REPO / ".env.example").read_text())
    for name in LINKED:
        (checkout / name).symlink_to(REPO / name)
    # What the person downloaded from the Google Cloud console: here the emulator's OAuth client.
    (checkout / "client_secret.json").write_text(json.dumps(google_emulator.client_config()))
    google_emulator.set_sheet("the-port-sheet", "Ports", [["id", "name"], ["LIS", "Lisbon"]])
    browser = tmp_path / "browser.py"
    browser.write_text(BROWSER)
    home = tmp_path / "home"
    home.mkdir()
    script, commands = _script(
        blocks,
        {
            "JADA_PORT_SHEET_ID": "the-port-sheet",
            "ANTHROPIC_API_KEY": "test-key-for-the-readme",
            "SLACK_WEBHOOK_URL": slack_webhook.webhook_url,
        },
    )
    # A new user's shell: none of the product's settings (the fixtures put some in this process's).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JADA_", "ANTHROPIC_", "SLACK_", "DAGSTER_", "VIRTUAL_ENV"))
    }
    # Where the emulators live: the one thing a real machine does not need to be told.
    env |= {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "BROWSER": f"{sys.executable} {browser} %s",
        "JADA_GOOGLE_TOKEN_URI": google_emulator.token_uri,
        "JADA_SHEETS_API_URL": google_emulator.base_url,
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
    }

    _wait_until_bindable(CONSENT_PORT)
    done = subprocess.run(
        ["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )

    transcript = done.stdout + done.stderr
    for needed in ("jada auth google ", "jada auth check", "jada task add ", "jada health", NOT_RUN):
        assert any(c.startswith(needed) for c in commands), f"First steps lost `{needed}`:\n{commands}"
    outputs = _outputs(done.stdout)
    assert [c for c in commands if c != NOT_RUN] == list(outputs), transcript
    for command, (code, output) in outputs.items():
        if command != "jada health":
            assert code == 0, f"`{command}` exited {code}:\n{output}\n{done.stderr}"
    token = home / ".config" / "jada" / "google-token.json"
    assert json.loads(token.read_text())["publishing_status"] == "testing"
    _, check = outputs["jada auth check"]
    assert check.startswith(("OK", "WARN")), check
    task_command = next(c for c in commands if c.startswith("jada task add "))
    assert outputs[task_command][1] == "t1\n"  # queued, and nothing to say: sessions can start
    # Nothing here started Dagster, so the daemons are at ERROR; everything the steps configured is not.
    code, health = outputs["jada health"]
    graded = {name: severity for severity, name in re.findall(r"^\[(\w+)\s*\] (\w+)", health, re.M)}
    assert graded.get("configuration") == "OK", health
    assert {name for name, severity in graded.items() if severity == "ERROR"} <= {"daemons"}, health


@pytest.fixture
def readme_blocks():
    return first_steps((REPO / "README.md").read_text())


def test_first_steps_set_the_token_file_before_the_consent_that_writes_it(readme_blocks):
    order = [
        "token_file" if "JADA_GOOGLE_TOKEN_FILE=" in text else "consent"
        for _, text in readme_blocks
        if "JADA_GOOGLE_TOKEN_FILE=" in text or "jada auth google" in text
    ]
    assert order == ["token_file", "consent"]
