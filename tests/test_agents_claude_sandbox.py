"""The bundled Claude Code CLI runs inside the bubblewrap sandbox against the Anthropic emulator, reaching it only
through the key proxy: the CLI holds a placeholder key, its Bash commands cannot read the real one (not even
from bwrap's own process in /proc), cannot reach the host's loopback and cannot use the proxy for anything but
the Messages API."""

from __future__ import annotations

import json
import subprocess

import pytest

from jada_pipelines.agents.claude_sandbox import PLACEHOLDER_KEY, bundled_cli, sandboxed_cli
from jada_pipelines.agents.tools import scrubbed_environment
from jada_pipelines.emulators.anthropic import end_turn, tool_use
from tests.fixtures.anthropic import EMULATOR_API_KEY

pytestmark = pytest.mark.claude_code

CLI_ARGS = ["--output-format", "stream-json", "--verbose", "--max-turns", "5", "--permission-mode", "dontAsk"]


def run_cli(tmp_path, prompt: str = "go", allowed: str = "Bash") -> tuple[list[dict], object]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    with sandboxed_cli(
        bundled_cli(), workdir=workdir, config_dir=tmp_path / "config", env=scrubbed_environment(workdir)
    ) as cli:
        done = subprocess.run(
            [str(cli.executable), "-p", prompt, *CLI_ARGS, "--allowedTools", allowed],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=workdir,
        )
        proxy = cli.proxy
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], proxy


def tool_output(emulator) -> str:
    """The tool result the CLI sent back to the model in its last request."""
    last = emulator.message_requests[-1].body["messages"][-1]["content"]
    return "\n".join(
        block["content"] if isinstance(block["content"], str) else json.dumps(block["content"])
        for block in last
        if block.get("type") == "tool_result"
    )


def test_the_sandboxed_cli_finishes_a_task_with_only_the_placeholder_key(anthropic_emulator, tmp_path):
    anthropic_emulator.script(
        tool_use(
            "Bash", {"command": "echo made-in-sandbox > out.txt && cat out.txt", "description": "write"}
        ),
        end_turn("All done."),
    )
    messages, proxy = run_cli(tmp_path)
    result = messages[-1]
    assert (result["type"], result["subtype"], result["num_turns"]) == ("result", "success", 2)
    assert result["result"] == "All done."
    assert (tmp_path / "work" / "out.txt").read_text() == "made-in-sandbox\n"
    assert "made-in-sandbox" in tool_output(anthropic_emulator)
    # Every request reached the API streamed, through the proxy, which put the worker's key on it.
    assert [r.path for r in anthropic_emulator.requests] == ["/v1/messages"] * 2
    assert all(r.body["stream"] is True for r in anthropic_emulator.requests)
    assert {r.headers["x-api-key"] for r in anthropic_emulator.requests} == {EMULATOR_API_KEY}
    assert "authorization" not in anthropic_emulator.requests[0].headers
    assert (proxy.forwarded, proxy.refused) == (2, 0)


def test_the_models_bash_cannot_read_the_key_reach_host_loopback_or_misuse_the_proxy(
    anthropic_emulator, tmp_path
):
    host_url = anthropic_emulator.base_url
    hostile = "; ".join(
        [
            # every process the sandbox can see, bwrap's own first process included
            "cat /proc/[0-9]*/environ | tr '\\0' '\\n' | grep -a ANTHROPIC_API_KEY | sort -u",
            "env | grep -a ANTHROPIC",
            f"curl -s -m 5 {host_url}/v1/messages -o /dev/null -w 'host loopback: %{{http_code}}\\n' "
            "|| echo 'host loopback: unreachable'",
            # the proxy answers only the Messages API; the bridge's address is in the CLI's environment
            "curl -s -m 5 -X GET \"$ANTHROPIC_BASE_URL/v1/models\" -w ' models: %{http_code}\\n'",
            "curl -s -m 5 -X POST \"$ANTHROPIC_BASE_URL/v1/files\" -w ' files: %{http_code}\\n'",
            "ls / ; ls /jada-proxy; id -u",
        ]
    )
    anthropic_emulator.script(tool_use("Bash", {"command": hostile, "description": "probe"}), end_turn("ok"))
    _, proxy = run_cli(tmp_path)
    output = tool_output(anthropic_emulator)
    assert EMULATOR_API_KEY not in output
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER_KEY}" in output
    assert "host loopback: unreachable" in output or "host loopback: 000" in output
    assert "models: 403" in output and "files: 403" in output and "permission_error" in output
    assert proxy.refused == 2
    assert "1000" in output.split()
    for name in ("root", "home", "work"):
        assert name not in output.split()  # the host's folders are not there
    assert len(anthropic_emulator.message_requests) == 2  # nothing else reached the emulator


def test_a_missing_sdk_is_a_config_error_naming_the_extra(monkeypatch):
    import importlib.util

    from jada_pipelines import settings

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(settings.ConfigError, match=r"\.\[claude-code\]"):
        bundled_cli()


def test_the_proxy_streams_events_as_they_arrive(anthropic_emulator, tmp_path):
    """A streamed reply passes through the proxy intact: the real SDK, pointed at the bridge-less socket via
    an HTTP transport over the unix socket, rebuilds the scripted message."""
    import anthropic
    import httpx2 as httpx  # the anthropic SDK's HTTP library

    from jada_pipelines.agents.claude_sandbox import KeyProxy

    anthropic_emulator.script(tool_use("Bash", {"command": "echo streamed through the proxy"}, text="Hi"))
    proxy = KeyProxy(tmp_path / "api.sock")
    proxy.start()
    try:
        transport = anthropic.DefaultHttpxClient(
            transport=httpx.HTTPTransport(uds=str(tmp_path / "api.sock"))
        )
        client = anthropic.Anthropic(api_key="placeholder", base_url="http://sandbox", http_client=transport)
        with client.messages.stream(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            message = s.get_final_message()
        client.close()
    finally:
        proxy.stop()
    assert message.content[1].input == {"command": "echo streamed through the proxy"}
    assert anthropic_emulator.requests[0].headers["x-api-key"] == EMULATOR_API_KEY
    assert not (tmp_path / "api.sock").exists()
