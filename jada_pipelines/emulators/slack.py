"""A LOCAL STAND-IN for a Slack incoming webhook, on 127.0.0.1. It is not Slack.

It answers the way Slack documents incoming webhooks: HTTP 200 with the body ``ok`` on success, and a
plain-string error body otherwise (400 ``invalid_payload``, 404 ``no_service``, 410 ``channel_is_archived``,
429 ``rate_limited`` with a ``Retry-After`` header, 5xx). Tests script faults per request and read back the
JSON payloads that arrived; ``refuse_connections()`` closes the port so a client sees connection refused.

    emulator = SlackWebhookEmulator()
    emulator.start()
    emulator.script(429, "rate_limited", retry_after=1)   # the next POST is rate limited, then 200 ok
    WebhookClient(emulator.webhook_url).send(text="hi")
    emulator.payloads  # [{"text": "hi"}]
    emulator.stop()

Slack has no way to read a webhook's posts back; for the demo, this emulator (not Slack) also answers
``GET /emulator/posts`` with the accepted posts and when each arrived, which the demo's sheet page and
`jada demo slack` show. Reference: https://api.slack.com/messaging/webhooks (requests and answers),
https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks (the error bodies).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from jada_pipelines.emulators._server import LocalServer

# The path shape of a real webhook URL; the emulator accepts POSTs on this path only.
WEBHOOK_PATH = "/services/T0EMULATOR/B0EMULATOR/emulator-webhook-secret"
# Not a Slack endpoint: the emulator's own read-back of what it accepted (see the module docstring).
POSTS_PATH = "/emulator/posts"


@dataclass(frozen=True)
class ScriptedResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


# Slack's documented error bodies, by the fault names tests use.
FAULTS = {
    "invalid_payload": ScriptedResponse(400, "invalid_payload"),
    "no_service": ScriptedResponse(404, "no_service"),
    "channel_is_archived": ScriptedResponse(410, "channel_is_archived"),
    "server_error": ScriptedResponse(503, "service_unavailable"),
}


class SlackWebhookEmulator(LocalServer):
    """A local stand-in for one Slack incoming webhook: records payloads, answers 200 ``ok`` unless scripted."""

    thread_name = "slack-webhook-emulator"

    def __init__(self, port: int = 0):
        super().__init__(port=port)
        self._lock = threading.Lock()
        self._scripted: list[ScriptedResponse] = []
        self.payloads: list[dict] = []  # the JSON bodies answered with 200 ok
        self.received_at: list[float] = []  # when each of ``payloads`` arrived (epoch seconds)
        self.requests = 0  # every POST that reached the emulator, whatever the answer

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def refuse_connections(self) -> None:
        """Close the port: clients get connection refused until ``accept_connections()``."""
        self.stop()

    def accept_connections(self) -> None:
        """Listen again on the same port, so the webhook URL clients hold works again."""
        self.start()

    def script(self, status: int, body: str, *, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next ``times`` POSTs with this status and body, then go back to 200 ``ok``."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._scripted.extend([ScriptedResponse(status, body, headers)] * times)

    def fail_next(self, fault: str, *, times: int = 1) -> None:
        """Script one of Slack's documented errors by name (see ``FAULTS``)."""
        response = FAULTS[fault]
        self.script(response.status, response.body, times=times)

    def _next_response(self, payload: dict | None) -> ScriptedResponse:
        with self._lock:
            self.requests += 1
            if self._scripted:
                return self._scripted.pop(0)
            if payload is None or not (payload.get("text") or payload.get("blocks")):
                # Slack rejects a body that is not JSON or carries neither text nor blocks.
                return ScriptedResponse(400, "invalid_payload")
            self.payloads.append(payload)
            self.received_at.append(time.time())
            return ScriptedResponse(200, "ok")

    def posts(self) -> list[dict]:
        """The accepted posts, oldest first: ``{"received_at": epoch seconds, "text": ..., "payload": ...}``."""
        with self._lock:
            return [
                {"received_at": at, "text": payload.get("text", ""), "payload": payload}
                for at, payload in zip(self.received_at, self.payloads, strict=True)
            ]

    @property
    def posts_url(self) -> str:
        return self.base_url + POSTS_PATH

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != POSTS_PATH:
                    self._answer(ScriptedResponse(404, "no_service"))
                    return
                body = json.dumps(emulator.posts())
                self._answer(ScriptedResponse(200, body, {"Content-Type": "application/json"}))

            def do_POST(self):
                if self.path != WEBHOOK_PATH:
                    self._answer(ScriptedResponse(404, "no_service"))
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                self._answer(emulator._next_response(payload if isinstance(payload, dict) else None))

            def _answer(self, response: ScriptedResponse) -> None:
                body = response.body.encode()
                self.send_response(response.status)
                if "Content-Type" not in response.headers:
                    self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                # Quiet: tests read `payloads`, and the URL path carries the (fake) secret.
                pass

        return Handler
