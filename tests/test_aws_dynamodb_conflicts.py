"""On DynamoDB only ConditionalCheckFailed on the task item means a lost lease: a transaction cancelled for a
conflict on the live-session counter is retried (bounded), so a finished session is recorded as done, never
as lost.

The faults come from a pass-through proxy in front of moto that answers chosen TransactWriteItems calls with
the error the API reference documents for them (TransactionCanceledException with one CancellationReasons
entry per item: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
moto itself never produces a TransactionConflict.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from jada_pipelines.agents.queue import dynamodb as dynamodb_queue
from jada_pipelines.agents.queue.dynamodb import DynamoDBTaskQueue, QueueBusyError
from jada_pipelines.emulators._server import LocalServer

TRANSACT = "DynamoDB_20120810.TransactWriteItems"


class FaultyProxy(LocalServer):
    """Forwards every request to moto, except that the next ``conflicts`` TransactWriteItems calls are
    cancelled with TransactionConflict on their second item (the live-session counter)."""

    thread_name = "dynamodb-fault-proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.conflicts = 0
        self.injected = 0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Amz-Target") == TRANSACT and proxy.conflicts > 0:
                    proxy.conflicts -= 1
                    proxy.injected += 1
                    items = len(json.loads(body)["TransactItems"])
                    reasons = [{"Code": "None"} for _ in range(items)]
                    reasons[1] = {
                        "Code": "TransactionConflict",
                        "Message": "Transaction is ongoing for the item",
                    }
                    payload = {
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                        f"[{', '.join(r['Code'] for r in reasons)}]",
                        "CancellationReasons": reasons,
                    }
                    return self._send(400, json.dumps(payload).encode())
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        self._send(response.status, response.read())
                except urllib.error.HTTPError as exc:
                    self._send(exc.code, exc.read())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                return

        return Handler


@pytest.fixture
def proxy(aws, monkeypatch):
    server = FaultyProxy(aws)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.start())
    monkeypatch.setattr(dynamodb_queue, "FENCED_WRITE_PAUSE_S", 0.001)
    yield server
    server.stop()


@pytest.fixture
def running(proxy, queue_clock):
    queue = DynamoDBTaskQueue("jada-tasks", clock=queue_clock)
    queue.init()
    queue.enqueue("t1", "x")
    lease = queue.claim(worker="w", lease_seconds=600)
    assert queue.mark_running(lease, run_id="r1")
    return queue, lease


def test_a_conflict_on_the_session_counter_does_not_lose_a_finished_session(running, proxy):
    queue, lease = running
    proxy.conflicts = 2
    assert queue.complete(lease, outcome="done", turns=3, cost_usd=0.1, summary="ok")
    assert proxy.injected == 2
    task = queue.get("t1")
    assert (task.status, task.summary) == ("done", "ok")


def test_a_conflict_while_marking_running_is_retried_too(proxy, queue_clock):
    queue = DynamoDBTaskQueue("jada-tasks", clock=queue_clock)
    queue.init()
    queue.enqueue("t1", "x")
    lease = queue.claim(worker="w", lease_seconds=600)
    proxy.conflicts = 1
    assert queue.mark_running(lease, run_id="r1")
    assert queue.get("t1").status == "running"


def test_conflicts_that_never_end_raise_after_bounded_tries_instead_of_reporting_a_lost_lease(running, proxy):
    queue, lease = running
    proxy.conflicts = 1000
    with pytest.raises(QueueBusyError, match="kept cancelling"):
        queue.fail(lease, error="x", retryable=True)
    assert proxy.injected == dynamodb_queue.FENCED_WRITE_TRIES
    assert queue.get("t1").status == "running"
