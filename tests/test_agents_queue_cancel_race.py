"""A claim and a conditional cancel racing on the same task end in exactly one of the two outcomes, on both
queue backends: many processes claim and start sessions while others cancel the same tasks (1,000 on SQLite,
200 on DynamoDB: see DYNAMODB_TASKS), and every task ends either with its session started or cancelled, never
both and never neither.

DynamoDB runs on a moto server that serves one request at a time: real DynamoDB applies each conditional write
and each transaction atomically, and moto's threaded server does not (two racers can both pass one condition),
so serialising it makes it behave as the reference says DynamoDB does, and the race tests our code, not moto.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading

import pytest

from jada_pipelines.agents.queue import open_queue

TASKS = 1_000
# moto serves one request at a time (below): on a loaded 2-core machine a DynamoDB race of 1,000 tasks did not
# finish within pytest's 5-minute limit (200 take about 20 s), so DynamoDB races 200, still every task contended.
DYNAMODB_TASKS = 200
CLAIMERS, CANCELLERS = 4, 4


def _claim_and_start(url: str, worker: str, results) -> None:
    queue = open_queue(url)
    started = []
    while (lease := queue.claim(worker=worker, lease_seconds=600, max_live=10_000)) is not None:
        if queue.mark_running(lease, run_id=f"run-{lease.task_id}"):
            started.append(lease.task_id)
    results.put(("started", started))


def _cancel(url: str, task_ids: list[str], results) -> None:
    queue = open_queue(url)
    results.put(("cancelled", [task_id for task_id in task_ids if queue.cancel_unstarted(task_id)]))


def race(url: str, tasks: int = TASKS) -> None:
    queue = open_queue(url)
    ids = [f"t{i:04}" for i in range(tasks)]
    for task_id in ids:
        queue.enqueue(task_id, "x")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    # Claims take the oldest first; each canceller walks its share from the newest, so they meet mid-way.
    processes = [ctx.Process(target=_claim_and_start, args=(url, f"w{n}", results)) for n in range(CLAIMERS)]
    processes += [
        ctx.Process(target=_cancel, args=(url, ids[n::CANCELLERS][::-1], results)) for n in range(CANCELLERS)
    ]
    for process in processes:
        process.start()
    outcomes: dict[str, list[str]] = {task_id: [] for task_id in ids}
    for _ in processes:
        kind, task_ids = results.get(timeout=600)
        for task_id in task_ids:
            outcomes[task_id].append(kind)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    double = {task_id: kinds for task_id, kinds in outcomes.items() if len(kinds) > 1}
    missing = [task_id for task_id, kinds in outcomes.items() if not kinds]
    assert (double, missing) == ({}, [])
    started = [task_id for task_id, kinds in outcomes.items() if kinds == ["started"]]
    cancelled = [task_id for task_id, kinds in outcomes.items() if kinds == ["cancelled"]]
    assert started and cancelled, "no race took place: one side took every task"
    statuses = {task.id: task.status for task in queue.list(limit=tasks * 2)}
    assert {statuses[task_id] for task_id in started} == {"running"}
    assert {statuses[task_id] for task_id in cancelled} == {"cancelled"}


def test_claims_and_conditional_cancels_racing_on_sqlite_end_each_task_in_exactly_one_outcome(tmp_path):
    race(f"sqlite:///{tmp_path / 'tasks.db'}")


@pytest.fixture
def serialized_moto(monkeypatch):
    """A moto server of its own that handles one request at a time (see the module docstring)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    lock = threading.Lock()

    class SerializedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)

            def one_at_a_time(environ, start_response):
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(self._ip_address, self._port, one_at_a_time, True)
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    yield
    server.stop()


def test_claims_and_conditional_cancels_racing_on_dynamodb_end_each_task_in_exactly_one_outcome(
    serialized_moto,
):
    open_queue("dynamodb://jada-tasks").init()
    race("dynamodb://jada-tasks", DYNAMODB_TASKS)
