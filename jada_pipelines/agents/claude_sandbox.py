"""The Claude Code CLI inside the bubblewrap sandbox, with the API key kept outside it. Plain Python, no Dagster.

The CLI runs the model's Bash commands itself, in its own process tree, so the whole CLI goes into the sandbox
of ``sandbox.py`` (no network, only the working directory writable, an environment built from an allow-list).
It still needs the Messages API, and it must never hold the real key, since any command it runs could read it
(``cat /proc/$PPID/environ``). So:

- ``KeyProxy``, in the run worker, listens on a unix socket in a private folder. It forwards ``POST
  /v1/messages`` (and ``/v1/messages/count_tokens``) to ``ANTHROPIC_BASE_URL`` (else the real API), replacing
  whatever credential arrives with the worker's ``ANTHROPIC_API_KEY`` (or ``ANTHROPIC_AUTH_TOKEN``), and streams
  the answer back as it arrives. Any other method or path is refused with a 403: the socket is no general
  way out.
- That folder is bound into the sandbox at ``/jada-proxy``. The sandbox has its own network namespace, so its
  ``127.0.0.1`` is not the host's: ``BRIDGE`` (system ``python3``, started as the sandbox's first program)
  listens on the sandbox's own loopback, relays each connection to the socket, and runs the CLI with
  ``ANTHROPIC_BASE_URL`` pointing at itself and a placeholder key.
- The CLI's binary is bound read-only; the task's Claude Code config folder (``CLAUDE_CONFIG_DIR`` and
  ``HOME``: sessions, so a later attempt can ``resume``) is bound read-write at ``/jada-claude``.

What this does not stop: a command the model runs can reach the proxy too, and so can make Messages API calls
billed to the worker's key (it can never read the key). The turn cap, the wall-clock limit and the per-task
cost ceiling bound the session that does so.

``sandboxed_cli(...)`` writes a small executable that runs ``bwrap ... bridge CLI "$@"``; the agent SDK is
given it as ``cli_path``, so the SDK's own arguments and stdin/stdout (stream-json) pass straight through.
"""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import signal
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from jada_pipelines import settings
from jada_pipelines.agents.sandbox import Rlimits, SandboxPolicy, bwrap_argv

DEFAULT_API_URL = "https://api.anthropic.com"
# The only requests the proxy forwards.
FORWARDED_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
# What the CLI holds instead of the key: it is replaced by the proxy, and worthless anywhere else.
PLACEHOLDER_KEY = "sk-ant-placeholder"
# Paths inside the sandbox.
PROXY_DIR = "/jada-proxy"
CLI_PATH = "/jada-cli/claude"
CONFIG_DIR = "/jada-claude"
# Headers that belong to one hop, and the credentials the proxy replaces.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_CREDENTIAL_HEADERS = {"x-api-key", "authorization"}
# Variables the CLI gets inside the sandbox (besides the safe ones of tools.SAFE_ENV): no telemetry, no
# update checks, no error reports: nothing but the Messages API, which the emulator and the proxy answer.
CLI_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_ENTRYPOINT": "sdk-py",
    "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
    "CLAUDE_CONFIG_DIR": CONFIG_DIR,
    "HOME": CONFIG_DIR,
    "SHELL": "/bin/bash",
    "TMPDIR": "/tmp",
}
# The CLI is a JavaScript runtime that reserves far more address space than it uses; its limit is set apart
# from the model's commands' (JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB); memory in use is bounded by the
# service's cgroup (deploy/).
DEFAULT_CLI_ADDRESS_SPACE_MB = 65536

BRIDGE = r"""
import os, socket, subprocess, sys, threading
sock_path, cli = sys.argv[1], sys.argv[2]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
def pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
def serve():
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(sock_path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
env = dict(os.environ, ANTHROPIC_BASE_URL="http://127.0.0.1:%d" % listener.getsockname()[1])
sys.exit(subprocess.call([cli, *sys.argv[3:]], env=env))
"""


def upstream_credentials() -> tuple[str, str]:
    """The header the proxy sends upstream: ``x-api-key`` (ANTHROPIC_API_KEY) or a bearer token."""
    if key := settings.env("ANTHROPIC_API_KEY"):
        return "x-api-key", key
    if token := settings.env("ANTHROPIC_AUTH_TOKEN"):
        return "authorization", f"Bearer {token}"
    raise settings.ConfigError(
        "ANTHROPIC_API_KEY is not set: put your Claude API key in it (in .env for `make dev`) before agent "
        "sessions can run."
    )


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class KeyProxy:
    """Forwards the sandboxed CLI's Messages API calls with the real credential, from a unix socket."""

    def __init__(self, socket_path: Path, *, upstream: str | None = None, timeout_s: float = 600.0) -> None:
        self.socket_path = socket_path
        self.upstream = (upstream or settings.env("ANTHROPIC_BASE_URL") or DEFAULT_API_URL).rstrip("/")
        self.credential = upstream_credentials()
        self.timeout_s = timeout_s
        self.forwarded = 0
        self.refused = 0
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = _UnixHTTPServer(str(self.socket_path), self._handler_class())
        os.chmod(self.socket_path, 0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="key-proxy", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.socket_path.unlink(missing_ok=True)

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.upstream)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout_s)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                path = self.path.split("?", 1)[0]
                if path not in FORWARDED_PATHS:
                    return self._refuse()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_HEADERS | _CREDENTIAL_HEADERS
                }
                name, value = proxy.credential
                headers[name] = value
                prefix = urlsplit(proxy.upstream).path
                connection = proxy._connection()
                try:
                    connection.request("POST", prefix + self.path, body=body, headers=headers)
                    response = connection.getresponse()
                except OSError as exc:
                    return self._error(502, "api_error", f"the key proxy could not reach the API: {exc}")
                proxy.forwarded += 1
                try:
                    self.send_response(response.status, response.reason)
                    for header, header_value in response.getheaders():
                        if header.lower() not in _HOP_HEADERS:
                            self.send_header(header, header_value)
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    # Server-sent events go on as they arrive (read1 returns what is there, chunked or not).
                    while chunk := response.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    connection.close()

            def do_GET(self):
                self._refuse()

            do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

            def _refuse(self):
                proxy.refused += 1
                self._error(
                    403,
                    "permission_error",
                    f"the sandbox's key proxy forwards only POST {' and '.join(FORWARDED_PATHS)}",
                )

            def _error(self, status: int, kind: str, message: str) -> None:
                import json

                data = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                self.wfile.write(data)

            def log_message(self, format, *args):
                return

        return Handler


def cli_rlimits() -> Rlimits:
    base = Rlimits.from_env()
    return Rlimits(
        file_size_mb=base.file_size_mb,
        processes=base.processes,
        address_space_mb=settings.env_positive_int(
            "JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB", DEFAULT_CLI_ADDRESS_SPACE_MB
        ),
    )


@dataclass
class SandboxedCli:
    """A running key proxy and the executable that starts the CLI in the sandbox (the SDK's ``cli_path``)."""

    executable: Path
    proxy: KeyProxy
    private_dir: Path

    def kill(self) -> bool:
        """End the running sandbox at once (SIGKILL to bwrap; the kernel ends its PID namespace with it).
        The SDK then sees the CLI's output end. False when no sandbox was started (or it is gone)."""
        try:
            pid = int((self.private_dir / "bwrap.pid").read_text())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            return False
        return True

    def close(self) -> None:
        self.kill()
        self.proxy.stop()
        shutil.rmtree(self.private_dir, ignore_errors=True)

    def __enter__(self) -> SandboxedCli:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def sandboxed_cli(
    cli: Path,
    *,
    workdir: Path,
    config_dir: Path,
    env: dict[str, str],
    network: bool = False,
    tmp_size_mb: int = 256,
    upstream: str | None = None,
    bwrap: str = "bwrap",
    cli_env: dict[str, str] | None = None,
) -> SandboxedCli:
    """Start a key proxy and write the executable that runs ``cli`` (with the SDK's arguments) sandboxed.

    ``env`` is the allow-listed environment of the sandbox (tools.scrubbed_environment); CLI_ENV and ``cli_env``
    (settings of the CLI such as CLAUDE_CODE_MAX_RETRIES; never a secret) are added.
    """
    private_dir = Path(tempfile.mkdtemp(prefix="jada-claude-code-"))  # 0700
    proxy_dir = private_dir / "proxy"
    proxy_dir.mkdir(mode=0o700)
    (proxy_dir / "bridge.py").write_text(BRIDGE)
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    proxy = KeyProxy(proxy_dir / "api.sock", upstream=upstream)
    proxy.start()
    policy = SandboxPolicy(
        workdir=workdir,
        env={**env, **CLI_ENV, **(cli_env or {})},
        network=network,
        tmp_size_mb=tmp_size_mb,
        rlimits=cli_rlimits(),
        binds=(
            (str(cli.resolve()), CLI_PATH, False),
            (str(config_dir), CONFIG_DIR, True),
            (str(proxy_dir), PROXY_DIR, True),
        ),
    )
    command = f'exec /usr/bin/python3 -I {PROXY_DIR}/bridge.py {PROXY_DIR}/api.sock {CLI_PATH} "$@"'
    argv = bwrap_argv(policy, command, bwrap=shutil.which(bwrap) or bwrap, arguments=("jada-claude",))
    executable = private_dir / "claude"
    # `env -i`: bwrap's own first process keeps the environment it was started with (--clearenv only clears
    # the sandboxed program's), and the sandbox's /proc shows it, so bwrap must start with none: the SDK
    # hands this script the worker's whole environment, the API key included.
    quoted = " ".join(shlex.quote(arg) for arg in argv)
    # The script's pid is bwrap's (exec keeps it): killing it ends the sandbox and everything in it.
    pid_file = private_dir / "bwrap.pid"
    executable.write_text(
        f'#!/bin/sh\necho $$ > {shlex.quote(str(pid_file))}\nexec /usr/bin/env -i {quoted} "$@"\n'
    )
    executable.chmod(0o700)
    return SandboxedCli(executable=executable, proxy=proxy, private_dir=private_dir)


INSTALL_CLAUDE_CODE = (
    "install the optional extra (`pip install -c requirements.lock -e '.[claude-code]'`, which `make dev` and "
    "`make test` do), or set JADA_AGENT_BACKEND=messages"
)


def bundled_cli() -> Path:
    """The Claude Code CLI that the ``claude-agent-sdk`` wheel ships, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        raise settings.ConfigError(
            f"The Claude Code backend needs the claude-agent-sdk package, which is not installed: {INSTALL_CLAUDE_CODE}."
        )
    cli = Path(next(iter(spec.submodule_search_locations))) / "_bundled" / "claude"
    if not os.access(cli, os.X_OK):
        raise settings.ConfigError(
            f"The claude-agent-sdk package has no runnable Claude Code CLI at {cli} (a wheel for another "
            f"platform, or a broken install): reinstall it; {INSTALL_CLAUDE_CODE}."
        )
    return cli


def cli_version(cli: Path) -> str:
    """The bundled CLI's version, from the ``claude.version`` file the wheel ships beside it."""
    try:
        return cli.with_name("claude.version").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"
