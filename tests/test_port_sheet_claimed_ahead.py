"""A person empties a task cell (or changes its prompt) while the row's task is claimed ahead: claimed by
the sensor, its run waiting QUEUED in Dagster's run queue for a slot. The task is withdrawn without costing an
attempt and its queued run is cancelled; a session that already started finishes. Through real port-sheet
sync runs against the Google emulator, the real sensor and a Dagster instance with a queued run coordinator."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.utils import make_new_run_id

from jada_pipelines.agents.jobs import TASK_ID_TAG, agent_session_job
from jada_pipelines.agents.queue import DEFAULT_MAX_ATTEMPTS, open_queue
from jada_pipelines.agents.queue.sqlite import SQLiteTaskQueue
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import agent_task_sensor
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.tasks import sync_tasks, task_id_for
from tests.fixtures.google import PORT_SHEET_ID, PORT_SHEET_TAB
from tests.fixtures.port_sheet import run_port_sheet_sync

RESOURCES = {"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()}
QUEUED_RUNS = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
}
HEADER = ["id", "port", "task", *DEFAULT_OWNED_COLUMNS]
KEYS = ["a", "b", "c", "d", "e", "f", "g"]  # 5 sessions and the 2 claims ahead (JADA_AGENT_CLAIM_AHEAD=2)


@pytest.fixture
def instance(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-a-key")  # the sensor claims nothing without a key
    with dg.instance_for_test(overrides=QUEUED_RUNS) as instance:
        yield instance


@pytest.fixture
def sheet(google_emulator, google_token_file):
    google_emulator.set_sheet(
        PORT_SHEET_ID, PORT_SHEET_TAB, [HEADER, *[[key, "Sines", f"do {key}"] for key in KEYS]]
    )
    return google_emulator


def sync(instance) -> dict:
    result = run_port_sheet_sync(instance=instance)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def tick(instance):
    return agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))


def submit(instance, request: dg.RunRequest, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """The sensor's run as the daemon submits it: QUEUED in Dagster's run queue (STARTED once dequeued)."""
    return instance.add_run(
        dg.DagsterRun(
            job_name=agent_session_job.name,
            run_id=make_new_run_id(),
            run_config=request.run_config,
            tags={**agent_session_job.tags, **request.tags},
            status=status,
            remote_job_origin=RemoteJobOrigin(
                RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("jada"), "__repository__"),
                agent_session_job.name,
            ),
        )
    )


def start_session(queue, task_id: str, run_id: str) -> None:
    """What the session op does first when its run starts: take the claim's lease and mark the task running."""
    task = queue.get(task_id)
    lease = queue.lease_for(task_id, task.attempt)
    assert lease is not None and queue.mark_running(lease, run_id=run_id)


def claim_every_row(instance) -> tuple[dict[str, dg.DagsterRun], dict[str, dg.DagsterRun]]:
    """One sensor tick over the 7 rows: 5 runs dequeued into the 5 slots (their sessions started), and 2
    claims ahead whose runs wait QUEUED. Returns ({key: run} of the sessions, {key: run} of the claims ahead)."""
    queue = open_queue()
    requests = tick(instance).run_requests
    assert len(requests) == 7
    key_of = {request.tags[TASK_ID_TAG]: queue.get(request.tags[TASK_ID_TAG]).source for request in requests}
    sessions, ahead = {}, {}
    for request in requests[:5]:
        run = submit(instance, request, dg.DagsterRunStatus.STARTED)
        start_session(queue, request.tags[TASK_ID_TAG], run.run_id)
        sessions[key_of[request.tags[TASK_ID_TAG]].removeprefix("port_sheet:")] = run
    for request in requests[5:]:
        ahead[key_of[request.tags[TASK_ID_TAG]].removeprefix("port_sheet:")] = submit(
            instance, request, dg.DagsterRunStatus.QUEUED
        )
    return sessions, ahead


def cell(emulator, key: str, name: str) -> str:
    values = emulator.sheet_values(PORT_SHEET_ID, PORT_SHEET_TAB)
    header = values[0]
    (row,) = [row for row in values[1:] if row[0] == key]
    row = row + [""] * (len(header) - len(row))
    return row[header.index(name)]


def a1(key: str, column: str = "task") -> str:
    return f"{'ABCDEFGHIJ'[HEADER.index(column)]}{KEYS.index(key) + 2}"


@pytest.mark.parametrize(
    ("edit", "withdrawn_as", "metadata_name"),
    [("", "cancelled", "cancelled"), ("do it differently", "superseded", "superseded")],
    ids=["cell emptied", "prompt changed"],
)
def test_a_task_cell_edited_while_its_claim_waits_in_dagsters_run_queue_withdraws_it_and_cancels_the_run(
    instance, sheet, edit, withdrawn_as, metadata_name
):
    sync(instance)
    queue = open_queue()
    sessions, ahead = claim_every_row(instance)
    waiting, other = list(ahead)
    started = next(iter(sessions))
    waiting_task, started_task = task_id_for(waiting, f"do {waiting}"), task_id_for(started, f"do {started}")
    assert queue.get(waiting_task).status == "dispatched" and queue.get(waiting_task).attempt == 1

    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, a1(waiting), edit or None)
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, a1(started), edit or None)
    tasks = sync(instance)["port_sheet_tasks"]
    assert tasks[metadata_name].value == 1
    assert tasks["left_running"].value == 1, "the session that started finishes"

    withdrawn = queue.get(waiting_task)
    assert withdrawn.status == withdrawn_as
    assert withdrawn.max_attempts - withdrawn.attempt == DEFAULT_MAX_ATTEMPTS, "the claim cost no attempt"
    tick(instance)
    status = {key: instance.get_run_by_id(run.run_id).status for key, run in {**sessions, **ahead}.items()}
    assert status[waiting] == dg.DagsterRunStatus.CANCELED
    assert status[other] == dg.DagsterRunStatus.QUEUED and queue.get(
        task_id_for(other, f"do {other}")
    ).status == ("dispatched")
    assert all(status[key] == dg.DagsterRunStatus.STARTED for key in sessions)
    assert queue.get(started_task).status == "running"
    if edit:
        assert queue.get(task_id_for(waiting, edit)).status == "queued", "the new prompt waits its turn"
    else:
        assert cell(sheet, waiting, "agent_status") == "cancelled"
        assert "cancelled before it started" in cell(sheet, waiting, "agent_summary")
        assert "this session finishes" in cell(sheet, started, "agent_summary")


def test_a_run_dequeued_after_its_cell_was_emptied_sends_nothing_to_the_model_and_costs_no_attempt(
    instance, sheet, anthropic_emulator
):
    """The window between the sheet's cancel and the sensor's next tick: the run queue hands the run a slot."""
    sync(instance)
    queue = open_queue()
    _, ahead = claim_every_row(instance)
    waiting = next(iter(ahead))
    task_id = task_id_for(waiting, f"do {waiting}")
    request_tags = instance.get_run_by_id(ahead[waiting].run_id).tags
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, a1(waiting), None)
    sync(instance)

    # The run worker starts the dequeued run before any tick cancelled it.
    result = agent_session_job.execute_in_process(
        run_config=instance.get_run_by_id(ahead[waiting].run_id).run_config,
        tags=dict(request_tags),
        instance=instance,
        resources=RESOURCES,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert (
        "not this run's to start: the task is now cancelled"
        in failure.step_failure_data.user_failure_data.description
    )
    assert anthropic_emulator.message_requests == []
    tick(instance)
    task = queue.get(task_id)
    assert task.status == "cancelled" and task.max_attempts - task.attempt == DEFAULT_MAX_ATTEMPTS
    assert instance.get_run_by_id(ahead[waiting].run_id).status == dg.DagsterRunStatus.CANCELED


def test_a_run_that_starts_between_the_syncs_read_and_its_cancel_finishes_its_session(
    instance, sheet, monkeypatch
):
    """The other side of the race: the session starts after the sync listed the row's task as claimed."""
    sync(instance)
    queue = open_queue()
    _, ahead = claim_every_row(instance)
    waiting = next(iter(ahead))
    task_id = task_id_for(waiting, f"do {waiting}")
    cancel_unstarted = SQLiteTaskQueue.cancel_unstarted

    def run_starts_first(self, withdrawn_id):
        if withdrawn_id == task_id and self.get(task_id).status == "dispatched":
            start_session(self, task_id, ahead[waiting].run_id)
        return cancel_unstarted(self, withdrawn_id)

    monkeypatch.setattr(SQLiteTaskQueue, "cancel_unstarted", run_starts_first)
    sheet.set_cell(PORT_SHEET_ID, PORT_SHEET_TAB, a1(waiting), None)
    tasks = sync(instance)["port_sheet_tasks"]
    assert (tasks["cancelled"].value, tasks["left_running"].value) == (0, 1)
    assert queue.get(task_id).status == "running"
    assert queue.lease_for(task_id, 1) is not None, "the session keeps its lease"
    assert "this session finishes, no new one starts" in cell(sheet, waiting, "agent_summary")


@pytest.mark.parametrize("withdraw", ["cancel", "cancel_unstarted", "supersede"])
def test_a_claim_withdrawn_before_its_run_started_is_not_charged_on_either_queue_backend(
    task_queue_backend, withdraw
):
    queue = task_queue_backend
    queue.enqueue("waiting", "x", max_attempts=2)
    queue.enqueue("started", "y", max_attempts=2)
    claims = {lease.task.id: lease for lease in (queue.claim(worker="s", lease_seconds=60) for _ in range(2))}
    assert queue.mark_running(claims["started"], run_id="run-1")
    act = getattr(queue, withdraw)
    assert act("waiting", by="newer") if withdraw == "supersede" else act("waiting")
    waiting = queue.get("waiting")
    assert (waiting.attempt, waiting.max_attempts) == (1, 3), "the claim's attempt is given back"
    if withdraw == "cancel":  # only an operator's cancel takes a session that started: that attempt counts
        assert queue.cancel("started")
        assert queue.get("started").max_attempts == 2


def test_sync_tasks_withdraws_a_claim_whose_run_has_not_started_and_leaves_a_started_one_on_either_backend(
    task_queue_backend,
):
    queue = task_queue_backend
    first = {key: (task_id_for(key, f"do {key}"), f"do {key}") for key in ("waiting", "started", "edited")}
    sync_tasks(queue, first)
    leases = {lease.task.id: lease for lease in (queue.claim(worker="s", lease_seconds=60) for _ in range(3))}
    assert queue.mark_running(leases[first["started"][0]], run_id="run-1")
    edited = task_id_for("edited", "do it again")
    outcome = sync_tasks(
        queue,
        {"edited": (edited, "do it again")},
        present=["waiting", "started", "edited"],  # the other two rows' cells were emptied
    )
    assert outcome.cancelled == [first["waiting"][0]] and outcome.superseded == [first["edited"][0]]
    assert outcome.left_running == [first["started"][0]]
    assert queue.get(first["waiting"][0]).status == "cancelled"
    assert queue.get(first["edited"][0]).status == "superseded" and queue.get(edited).status == "queued"
    assert queue.get(first["started"][0]).status == "running"
    assert queue.lease_for(first["waiting"][0], 1) is None, "the queued run finds no lease and never starts"
