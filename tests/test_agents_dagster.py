"""agent_task_sensor claims only free session slots and re-queues tasks whose runs died; agent_session_job runs
one session per claimed task, records its figures as run metadata, and fails the run only when the task did."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.utils import make_new_run_id

from jada_pipelines.agents.jobs import ATTEMPT_TAG, TASK_ID_TAG, agent_session_job
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import NONCE_TAG, agent_task_sensor, run_request_for
from jada_pipelines.emulators.anthropic import api_error, end_turn, refusal, tool_use

RESOURCES = {"task_queue": TaskQueueResource(), "claude": ClaudeSessionResource()}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    """The sensor claims nothing without a key (every session would fail); tests with the emulator replace it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-a-key")


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def tick(instance):
    return agent_task_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))


def launch(instance, request: dg.RunRequest, **kwargs):
    return agent_session_job.execute_in_process(
        run_config=request.run_config,
        tags={**agent_session_job.tags, **request.tags},
        instance=instance,
        resources=RESOURCES,
        raise_on_error=False,
        **kwargs,
    )


def test_the_sensor_claims_five_tasks_and_two_ahead_and_then_says_every_slot_is_busy(instance):
    queue = open_queue()
    for i in range(9):
        queue.enqueue(f"t{i}", "x")
    result = tick(instance)
    requests = result.run_requests
    assert len(requests) == 5 + 2  # JADA_AGENT_CLAIM_AHEAD defaults to 2
    nonce = queue.get("t0").nonce
    assert requests[0].run_key == f"task:t0:{nonce}:attempt:1"
    assert requests[0].tags == {
        TASK_ID_TAG: "t0",
        ATTEMPT_TAG: "1",
        NONCE_TAG: nonce,
        "dagster/max_runtime": "7800",
    }
    assert requests[0].run_config["ops"]["agent_session"]["config"] == {"task_id": "t0", "attempt": 1}
    busy = tick(instance)
    assert isinstance(busy, dg.SkipReason)
    assert busy.skip_message == (
        "All 5 session slots are busy; 2 tasks wait for a free slot. 2 more are claimed ahead "
        "(JADA_AGENT_CLAIM_AHEAD=2): Dagster's run queue starts them as slots free."
    )


def test_with_claim_ahead_off_the_sensor_claims_only_the_five_slots(instance, monkeypatch):
    monkeypatch.setenv("JADA_AGENT_CLAIM_AHEAD", "0")
    queue = open_queue()
    for i in range(7):
        queue.enqueue(f"t{i}", "x")
    assert len(tick(instance).run_requests) == 5
    assert tick(instance).skip_message == "All 5 session slots are busy; 2 tasks wait for a free slot."


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_claim_ahead_setting_claims_nothing_and_names_the_fix(instance, monkeypatch, value):
    monkeypatch.setenv("JADA_AGENT_CLAIM_AHEAD", value)
    open_queue().enqueue("t1", "x")
    skip = tick(instance)
    assert isinstance(skip, dg.SkipReason) and "JADA_AGENT_CLAIM_AHEAD=" in skip.skip_message
    assert open_queue().get("t1").attempt == 0


def started(instance, run) -> None:
    """What the run worker logs when its run starts (the run record gets its start time)."""
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run.run_id
    )


def test_an_empty_queue_is_a_readable_skip(instance):
    assert tick(instance).skip_message == "No agent task is waiting; 0 sessions are running."


def test_agent_session_job_is_tagged_for_the_concurrency_limit_and_never_retried_by_dagster():
    assert agent_session_job.tags == {
        "jada/agent-session": "1",
        "dagster/max_retries": "0",
        "dagster/max_runtime": "7800",  # the session's 2 h wall-clock limit plus 10 min
    }


def test_the_sensor_runs_by_default_every_5_seconds():
    assert agent_task_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert agent_task_sensor.minimum_interval_seconds == 5


def test_an_api_still_rate_limited_after_the_sdk_retries_fails_the_run_and_requeues_with_a_back_off(
    instance, anthropic_emulator
):
    open_queue().enqueue("t1", "x")
    anthropic_emulator.script(*[api_error(429, retry_after_ms=1) for _ in range(3)])
    (request,) = tick(instance).run_requests
    result = launch(instance, request)
    assert not result.success
    failure = result.failure_data_for_node("agent_session").user_failure_data
    assert "stayed unavailable" in failure.description and failure.metadata["api_retries"].value == 2
    task = open_queue().get("t1")
    assert (task.status, task.attempt) == ("queued", 1) and task.available_at > time.time() + 30
    assert "backing off" in tick(instance).skip_message


def test_a_finished_session_records_turns_tokens_and_cost_on_the_run(instance, anthropic_emulator):
    open_queue().enqueue("t1", "Say hi")
    anthropic_emulator.script(tool_use(), end_turn("Said hi."))
    (request,) = tick(instance).run_requests
    result = launch(instance, request)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["outcome"].value == "done" and metadata["turns"].value == 2
    assert (metadata["input_tokens"].value, metadata["output_tokens"].value) == (200, 40)
    assert metadata["cost_usd"].value == pytest.approx((200 * 2 + 40 * 10) / 1e6)
    assert len(metadata["request_ids"].value) == 2
    assert metadata["stop_reason"].value == "end_turn" and metadata["api_retries"].value == 0
    assert (metadata["cache_write_tokens"].value, metadata["cache_read_tokens"].value) == (0, 0)
    assert metadata["duration_s"].value > 0
    assert Path(metadata["transcript"].value).read_text().count("\n") == 7
    task = open_queue().get("t1")
    assert (task.status, task.turns, task.summary, task.run_id) == ("done", 2, "Said hi.", result.run_id)


def test_a_session_that_hits_its_turn_cap_is_a_successful_run_and_an_incomplete_task(
    instance, anthropic_emulator
):
    open_queue().enqueue("t1", "Big job", max_turns=2)
    anthropic_emulator.script(tool_use(), tool_use(), end_turn('{"done": ["half"], "next_steps": ["rest"]}'))
    (request,) = tick(instance).run_requests
    result = launch(instance, request)
    assert result.success
    task = open_queue().get("t1")
    assert (task.status, task.turns, task.handoff["next_steps"]) == ("incomplete", 2, ["rest"])
    (again,) = tick(instance).run_requests
    assert again.run_key.endswith(":attempt:2")


def test_a_bad_api_key_fails_the_run_and_the_task_with_the_fix_in_the_message(instance, anthropic_emulator):
    open_queue().enqueue("t1", "x")
    anthropic_emulator.script(api_error(401, "invalid x-api-key"))
    (request,) = tick(instance).run_requests
    result = launch(instance, request)
    assert not result.success
    failure = result.failure_data_for_node("agent_session").user_failure_data
    assert "check ANTHROPIC_API_KEY" in failure.description and "invalid x-api-key" in failure.description
    assert failure.metadata["outcome"].value == "failed"
    assert open_queue().get("t1").status == "failed"
    assert len(anthropic_emulator.requests) == 1


def test_a_refusal_fails_the_run_and_leaves_a_dead_letter(instance, anthropic_emulator):
    open_queue().enqueue("t1", "x")
    anthropic_emulator.script(refusal())
    (request,) = tick(instance).run_requests
    assert not launch(instance, request).success
    assert open_queue().get("t1").status == "dead"


def test_a_run_whose_lease_was_taken_sends_nothing_to_the_model(instance, anthropic_emulator):
    open_queue().enqueue("t1", "x")
    (request,) = tick(instance).run_requests
    open_queue().cancel("t1")
    result = launch(instance, request)
    assert not result.success
    assert (
        "not this run's to start"
        in result.failure_data_for_node("agent_session").user_failure_data.description
    )
    assert anthropic_emulator.requests == []


@pytest.mark.parametrize("ending", ["FAILURE", "CANCELED"])
def test_a_task_whose_run_died_or_was_cancelled_goes_back_with_the_next_attempt(instance, ending):
    queue = open_queue()
    queue.enqueue("t1", "x", max_attempts=2)
    (request,) = tick(instance).run_requests
    run = instance.create_run_for_job(
        agent_session_job, run_config=request.run_config, tags={**agent_session_job.tags, **request.tags}
    )
    # The run worker crashed, or someone cancelled the run, before the session recorded anything.
    if ending == "FAILURE":
        instance.report_run_failed(run)
    else:
        instance.report_run_canceled(run)
    second = tick(instance)
    assert [r.run_key.rsplit(":", 2)[1:] for r in second.run_requests] == [["attempt", "2"]]
    assert f"ended {ending}" in queue.get("t1").last_error
    (record, _) = queue.attempts(since=0)
    assert record.outcome == "lost"


def test_a_task_whose_last_attempt_died_becomes_a_dead_letter(instance):
    queue = open_queue()
    queue.enqueue("t1", "x", max_attempts=1)
    (request,) = tick(instance).run_requests
    run = instance.create_run_for_job(
        agent_session_job, run_config=request.run_config, tags={**agent_session_job.tags, **request.tags}
    )
    started(instance, run)
    instance.report_run_failed(run)
    assert "Tasks whose run ended without an outcome: t1 attempt 1 → dead." in tick(instance).skip_message
    assert queue.get("t1").status == "dead"


def test_a_worker_killed_mid_session_leaves_the_next_attempt_a_handoff_from_its_transcript(
    instance, anthropic_emulator
):
    from jada_pipelines.agents.session import Transcript, transcript_path

    queue = open_queue()
    queue.enqueue("t1", "Fix the parser", max_attempts=3)
    (request,) = tick(instance).run_requests
    run = _create_run(instance, request)
    started(instance, run)
    # What the worker wrote before kill -9: a reply with an edit, its result, and a line cut off mid-write.
    transcript = Transcript(transcript_path("t1", 1))
    edit = {"command": "str_replace", "path": "parser.py", "old_str": "a", "new_str": "b"}
    transcript.write(
        "reply",
        stop_reason="tool_use",
        content=[
            {"type": "text", "text": "The tokenizer drops the last byte; fixing it."},
            {"type": "tool_use", "id": "toolu_1", "name": "str_replace_based_edit_tool", "input": edit},
        ],
    )
    transcript.write("tool_result", tool_use_id="toolu_1", name="edit", is_error=False, content="Edited.")
    transcript._file.write('{"ts": 1, "kind": "reply", "cont')
    transcript.close()
    instance.report_run_failed(run)

    (again,) = tick(instance).run_requests
    handoff = queue.get("t1").handoff
    assert handoff["files_touched"] == ["parser.py"]
    assert handoff["last_text"] == "The tokenizer drops the last byte; fixing it."
    assert handoff["last_tool_calls"][-1]["result"] == "Edited."
    assert f"run {run.run_id} ended FAILURE" in handoff["notes"]
    anthropic_emulator.script(end_turn("Fixed."))
    assert launch(instance, again).success
    first = anthropic_emulator.message_requests[0].body["messages"][0]["content"]
    assert "This is attempt 2" in first and "The tokenizer drops the last byte" in first


def test_run_requests_name_the_task_and_attempt_in_the_run_key(instance):
    queue = open_queue()
    queue.enqueue("fix-login", "x")
    lease = queue.claim(worker="w", lease_seconds=60)
    assert run_request_for(lease).run_key == f"task:fix-login:{lease.task.nonce}:attempt:1"


def test_without_an_api_key_the_run_fails_naming_the_variable_and_the_task_waits_for_a_person(
    instance, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    queue = open_queue()
    queue.enqueue("t1", "x")
    # The sensor sees it first: it claims nothing, so no attempt is spent while the key is missing.
    skip = tick(instance)
    assert isinstance(skip, dg.SkipReason) and "ANTHROPIC_API_KEY is not set" in skip.skip_message
    assert (queue.get("t1").status, queue.get("t1").attempt) == ("queued", 0)
    # A run that starts anyway (the key removed between the claim and the run) parks the task for a person.
    request = run_request_for(queue.claim(worker="test", lease_seconds=60))
    result = launch(instance, request)
    assert not result.success
    assert (
        "ANTHROPIC_API_KEY is not set"
        in result.failure_data_for_node("agent_session").user_failure_data.description
    )
    task = open_queue().get("t1")
    assert task.status == "failed" and "ANTHROPIC_API_KEY" in task.last_error


@pytest.mark.parametrize("value", ["thirty", "0"])
def test_a_bad_turn_cap_setting_fails_the_run_naming_the_variable_and_sends_nothing(
    instance, anthropic_emulator, monkeypatch, value
):
    monkeypatch.setenv("JADA_AGENT_MAX_TURNS", value)
    open_queue().enqueue("t1", "x")
    (request,) = tick(instance).run_requests
    result = launch(instance, request)
    assert not result.success
    description = result.failure_data_for_node("agent_session").user_failure_data.description
    assert description.startswith("JADA_AGENT_MAX_TURNS=")
    task = open_queue().get("t1")
    assert task.status == "failed" and "JADA_AGENT_MAX_TURNS" in task.last_error
    assert anthropic_emulator.requests == []


def test_model_and_turn_cap_come_from_the_task_then_the_resource_then_the_environment(monkeypatch):
    queue = open_queue()
    own = queue.enqueue("own", "x", max_turns=7).task
    default = queue.enqueue("default", "x").task
    assert ClaudeSessionResource().spec_for(default).max_turns == 30
    assert ClaudeSessionResource().spec_for(default).model == "claude-sonnet-5-5"
    monkeypatch.setenv("JADA_AGENT_MAX_TURNS", "12")
    monkeypatch.setenv("JADA_AGENT_MODEL", "claude-opus-5-5")
    spec = ClaudeSessionResource().spec_for(default)
    assert (spec.max_turns, spec.model) == (12, "claude-opus-5-5")
    assert ClaudeSessionResource(max_turns=20).spec_for(default).max_turns == 20
    assert ClaudeSessionResource(max_turns=20).spec_for(own).max_turns == 7
    assert spec.workdir.parts[-2:] == ("workdirs", "default")


def _create_run(instance, request):
    return instance.create_run_for_job(
        agent_session_job, run_config=request.run_config, tags={**agent_session_job.tags, **request.tags}
    )


def test_a_run_that_ended_before_it_ever_started_is_not_charged_an_attempt(instance):
    queue = open_queue()
    queue.enqueue("t1", "x", max_attempts=1)
    (request,) = tick(instance).run_requests
    run = _create_run(instance, request)
    instance.report_run_canceled(run)  # cancelled while it waited in Dagster's run queue
    (again,) = tick(instance).run_requests
    assert again.run_key.endswith(":attempt:2")
    assert "not charged" in queue.get("t1").last_error


def test_cancelling_a_task_cancels_its_run_still_waiting_in_dagsters_queue():
    queued_runs = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    }
    with dg.instance_for_test(overrides=queued_runs) as instance:
        queue = open_queue()
        for task_id in ("keep", "cancel-me", "emptied-cell"):
            queue.enqueue(task_id, "x")
        # Submitted and waiting in Dagster's run queue for a slot, as the daemon's run queue holds them.
        runs = {
            request.tags[TASK_ID_TAG]: instance.add_run(
                dg.DagsterRun(
                    job_name=agent_session_job.name,
                    run_id=make_new_run_id(),
                    run_config=request.run_config,
                    tags={**agent_session_job.tags, **request.tags},
                    status=dg.DagsterRunStatus.QUEUED,
                    remote_job_origin=RemoteJobOrigin(
                        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("jada"), "__repository__"),
                        agent_session_job.name,
                    ),
                )
            )
            for request in tick(instance).run_requests
        }
        queue.cancel("cancel-me")
        queue.supersede("emptied-cell", by="a newer row")
        tick(instance)
        status = {task_id: instance.get_run_by_id(run.run_id).status for task_id, run in runs.items()}
        assert status == {
            "keep": dg.DagsterRunStatus.QUEUED,
            "cancel-me": dg.DagsterRunStatus.CANCELED,
            "emptied-cell": dg.DagsterRunStatus.CANCELED,
        }
        assert queue.get("keep").status == "dispatched" and queue.get("cancel-me").status == "cancelled"


def test_a_claim_whose_run_waits_in_dagsters_queue_keeps_its_lease(instance):
    from jada_pipelines.agents.sensors import DISPATCH_LEASE_SECONDS, reconcile

    queue = open_queue()
    queue.enqueue("t1", "x")
    (request,) = tick(instance).run_requests
    _create_run(instance, request)  # created and never launched: it waits in Dagster's run queue
    later = time.time() + DISPATCH_LEASE_SECONDS - 10  # the claim would expire in 10 s
    reconcile(queue, instance, now=later)
    assert queue.get("t1").lease_expires_at >= time.time() + DISPATCH_LEASE_SECONDS - 5
    assert queue.get("t1").status == "dispatched" and queue.get("t1").attempt == 1


def test_the_sensor_claims_nothing_while_dagsters_tag_limit_is_full(instance):
    queue = open_queue()
    queue.enqueue("t1", "x")
    # Five session runs cancelled while their commands hang: the queue let go, Dagster still counts them.
    for _ in range(5):
        run = instance.create_run_for_job(
            agent_session_job,
            run_config={"ops": {"agent_session": {"config": {"task_id": "old", "attempt": 1}}}},
            tags=agent_session_job.tags,
        )
        instance.report_run_canceling(run)
    result = tick(instance)
    assert (
        isinstance(result, dg.SkipReason)
        and "limit of 5 jada/agent-session runs is full" in result.skip_message
    )
    assert queue.get("t1").status == "queued" and queue.get("t1").attempt == 0


def test_the_run_config_shows_no_lease_token(instance):
    queue = open_queue()
    queue.enqueue("t1", "x")
    (request,) = tick(instance).run_requests
    token = queue.lease_for("t1", 1).token
    assert token not in repr(request.run_config) and token not in repr(request.tags)


def test_a_second_run_of_the_same_attempt_is_refused_and_touches_nothing(instance, anthropic_emulator):
    queue = open_queue()
    queue.enqueue("t1", "Say hi")
    anthropic_emulator.script(end_turn("Said hi."))
    (request,) = tick(instance).run_requests
    first = launch(instance, request)
    assert first.success
    transcript = Path(os.environ["JADA_DATA_DIR"]) / "transcripts" / "t1" / "attempt-1.jsonl"
    before = transcript.read_text()
    workdir = Path(os.environ["JADA_DATA_DIR"]) / "workdirs" / "t1"
    listing = sorted(workdir.rglob("*")) if workdir.exists() else None
    again = launch(instance, request)  # a re-execution from the UI, with the same config
    assert not again.success
    description = again.failure_data_for_node("agent_session").user_failure_data.description
    assert "not this run's to start" in description and "done" in description
    assert transcript.read_text() == before
    assert (sorted(workdir.rglob("*")) if workdir.exists() else None) == listing
    assert len(anthropic_emulator.message_requests) == 1
    assert queue.get("t1").status == "done"


def test_a_copy_launched_while_the_first_run_holds_the_session_is_refused(instance, anthropic_emulator):
    queue = open_queue()
    queue.enqueue("t1", "x")
    (request,) = tick(instance).run_requests
    lease = queue.lease_for("t1", 1)
    assert queue.mark_running(lease, run_id="the-first-run")
    copy = launch(instance, request)
    assert not copy.success
    assert "run the-first-run already runs it" in (
        copy.failure_data_for_node("agent_session").user_failure_data.description
    )
    assert anthropic_emulator.requests == []
    assert queue.get("t1").status == "running"
