"""The Claude Code CLI inside the bubblewrap sandbox, with the API key kept outside it. Plain Python, no Dagster.

The whole CLI goes into the sandbox of ``bwrap_sandbox.py`` (no network, only the working directory writable, an
environment built from an allow-list). The model's commands do not run in it: the CLI's Bash is off, and the
session's bash tool runs each command in a sandbox of its own (``claude_code_backend.py``). The CLI still needs the
Messages API, and it must never hold the real key. So:

- ``KeyProxy``, in the run worker, listens on a unix socket in a private folder. It forwards ``POST
  /v1/messages`` (and ``/v1/messages/count_tokens``) to ``ANTHROPIC_BASE_URL`` (else the real API), replacing
  whatever credential arrives with the worker's ``ANTHROPIC_API_KEY`` (or ``ANTHROPIC_AUTH_TOKEN``), and streams
  the answer back as it arrives. Any other method or path is refused with a 403: the socket is no general
  way out. Its ``ApiGate`` (``api_gate.py``) refuses what the session may not ask for (another model, a large
  ``max_tokens``, an unknown beta, a server tool, a request whose worst case passes the cost ceiling) and
  prices every answer: that is the attempt's cost. The proxy is bounded (body size, connections served at
  once, read timeouts), so a client inside cannot starve the worker.
- That folder is bound into the sandbox at ``/jada-proxy``. The sandbox has its own network namespace, so its
  ``127.0.0.1`` is not the host's: ``BRIDGE`` (system ``python3``, started as the sandbox's first program)
  listens on the sandbox's own loopback, relays each connection to the socket, and runs the CLI with
  ``ANTHROPIC_BASE_URL`` pointing at itself and a placeholder key.
- The CLI's binary is bound read-only; the task's Claude Code config folder (``CLAUDE_CONFIG_DIR`` and
  ``HOME``: sessions, so a later attempt can ``resume``) is bound read-write at ``/jada-claude``.

Only the CLI can reach the proxy; if anything else inside its sandbox ever did, the gate would still count
and bound every call it made.

``sandboxed_cli(...)`` writes a small executable that runs ``bwrap ... bridge CLI "$@"``; the agent SDK is
given it as ``cli_path``, so the SDK's own arguments and stdin/stdout (stream-json) pass straight through.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socketserver
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from jada_pipelines import settings
from jada_pipelines.agents.api_gate import AnswerMeter, ApiGate, GateRules, Refusal
from jada_pipelines.agents.bwrap_sandbox import Rlimits, SandboxPolicy, bwrap_argv
from jada_pipelines.agents.session import MISSING_KEY

DEFAULT_API_URL = settings.default("ANTHROPIC_BASE_URL")
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
# (JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB) and applies to the CLI alone: the model's commands run in their own
# sandboxes with JADA_AGENT_MAX_MEMORY_MB. Memory in use is bounded by the service's cgroup (deploy/).
DEFAULT_CLI_ADDRESS_SPACE_MB = settings.default("JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB")

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
    if key := settings.get("ANTHROPIC_API_KEY"):
        return "x-api-key", key
    if token := settings.get("ANTHROPIC_AUTH_TOKEN"):
        return "authorization", f"Bearer {token}"
    raise settings.ConfigError(MISSING_KEY)


# Bounds that keep the worker flat whatever a client inside the sandbox sends: the largest request body, the
# connections served at once (more are closed at once, without a thread), and how long a request's headers
# and body may take to arrive.
MAX_BODY_BYTES = 20 * 1024 * 1024
MAX_CONNECTIONS = 16
REQUEST_READ_TIMEOUT_S = 30.0


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, handler, *, max_connections: int, on_refused) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._on_refused = on_refused
        super().__init__(path, handler)

    def process_request(self, request, client_address) -> None:
        # A connection past the cap is closed here, in the accepting thread: no thread, no buffer.
        if not self._slots.acquire(blocking=False):
            self._on_refused("connections")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class KeyProxy:
    """Forwards the sandboxed CLI's Messages API calls with the real credential, from a unix socket; the
    ``gate`` (api_gate.py) decides what may go and meters what comes back."""

    def __init__(
        self,
        socket_path: Path,
        *,
        gate: ApiGate,
        upstream: str | None = None,
        timeout_s: float = 600.0,
        max_connections: int = MAX_CONNECTIONS,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout_s: float = REQUEST_READ_TIMEOUT_S,
    ) -> None:
        self.socket_path = socket_path
        self.upstream = (upstream or settings.get("ANTHROPIC_BASE_URL")).rstrip("/")
        self.credential = upstream_credentials()
        self.gate = gate
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s
        self.forwarded = 0
        self._in_flight = 0
        self._idle = threading.Condition()
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def refused(self) -> int:
        """Requests (and connections) the proxy did not forward, for any reason."""
        return sum(self.gate.refusals.values())

    def start(self) -> None:
        self._server = _UnixHTTPServer(
            str(self.socket_path),
            self._handler_class(),
            max_connections=self.max_connections,
            on_refused=self.gate.refuse,
        )
        os.chmod(self.socket_path, 0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="key-proxy", daemon=True
        )
        self._thread.start()

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until no request is being relayed (each answer is priced once it has been relayed in full, a
        moment after the client saw its last byte): the account is then complete. False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

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
            # The socket timeout for the request line and headers (and each write back); the body has its own
            # deadline below.
            timeout = proxy.read_timeout_s

            def do_POST(self):
                with proxy._idle:
                    proxy._in_flight += 1
                try:
                    self._post()
                finally:
                    with proxy._idle:
                        proxy._in_flight -= 1
                        proxy._idle.notify_all()

            def _post(self):
                path = self.path.split("?", 1)[0]
                if path not in FORWARDED_PATHS:
                    return self._refuse("path", 403, "permission_error", _ONLY_MESSAGES)
                if self.headers.get("Transfer-Encoding"):
                    return self._refuse(
                        "body", 411, "invalid_request_error", "the key proxy needs a Content-Length body"
                    )
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= proxy.max_body_bytes:
                    return self._refuse(
                        "body",
                        413,
                        "request_too_large",
                        f"the request body must be 0 to {proxy.max_body_bytes} bytes (the key proxy's cap)",
                    )
                body = self._read_body(length)
                if body is None:
                    return self._refuse(
                        "timeout", 408, "timeout_error", "the request body did not arrive in time"
                    )
                request: dict = {}
                if path == "/v1/messages":
                    try:
                        request = proxy.gate.check(self.headers, body)
                    except Refusal as refusal:
                        return self._error(refusal.status, refusal.kind, str(refusal))
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
                    connection.close()
                    return self._error(502, "api_error", f"the key proxy could not reach the API: {exc}")
                proxy.forwarded += 1
                streamed = (response.getheader("content-type") or "").startswith("text/event-stream")
                meter = AnswerMeter(streamed=streamed)
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
                        meter.feed(chunk)
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    # The client went away: the rest of the answer is still read, so its usage is counted.
                    with contextlib.suppress(OSError):
                        while chunk := response.read1(65536):
                            meter.feed(chunk)
                finally:
                    connection.close()
                    if path == "/v1/messages" and response.status == 200:
                        meter.finish()
                        proxy.gate.record(str(request.get("model")), meter)

            def _read_body(self, length: int) -> bytes | None:
                deadline = time.monotonic() + proxy.read_timeout_s
                parts, left = [], length
                try:
                    while left > 0:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return None
                        self.connection.settimeout(remaining)
                        chunk = self.rfile.read1(min(left, 65536))
                        if not chunk:
                            return None
                        parts.append(chunk)
                        left -= len(chunk)
                except OSError:
                    return None
                finally:
                    self.connection.settimeout(proxy.read_timeout_s)
                return b"".join(parts)

            def do_GET(self):
                self._refuse("path", 403, "permission_error", _ONLY_MESSAGES)

            do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

            def _refuse(self, reason: str, status: int, kind: str, message: str) -> None:
                proxy.gate.refuse(reason)
                self._error(status, kind, message)

            def _error(self, status: int, kind: str, message: str) -> None:
                import json

                data = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    # An Anthropic-shaped refusal the CLI must not retry.
                    self.send_header("x-should-retry", "false")
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, format, *args):
                return

        return Handler


_ONLY_MESSAGES = f"the sandbox's key proxy forwards only POST {' and '.join(FORWARDED_PATHS)}"


def cli_rlimits() -> Rlimits:
    base = Rlimits.from_env()
    return Rlimits(
        file_size_mb=base.file_size_mb,
        processes=base.processes,
        address_space_mb=settings.get("JADA_AGENT_CLAUDE_CODE_MAX_MEMORY_MB"),
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


def gate_env(rules: GateRules) -> dict[str, str]:
    """What the CLI is told so that its own requests pass the proxy's gate: no more output than the cap, and
    the session's model for the small tasks it would otherwise send to another."""
    return {
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(rules.max_tokens),
        "ANTHROPIC_SMALL_FAST_MODEL": rules.model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": rules.model,
    }


def sandboxed_cli(
    cli: Path,
    *,
    workdir: Path,
    config_dir: Path,
    env: dict[str, str],
    gate: ApiGate,
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
    proxy = KeyProxy(proxy_dir / "api.sock", gate=gate, upstream=upstream)
    proxy.start()
    policy = SandboxPolicy(
        workdir=workdir,
        env={**env, **CLI_ENV, **gate_env(gate.rules), **(cli_env or {})},
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
