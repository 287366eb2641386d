"""Every session records enqueue→claim, claim→run start and run start→first model call; `jada health` and the
agent_task_queue asset show their median and p95 over the last 24 h."""

from __future__ import annotations

import time

import dagster as dg

from jada_pipelines.agents.latency import dispatch_latencies, percentile
from jada_pipelines.agents.queue import AttemptRecord, open_queue
from jada_pipelines.health.assets import agent_task_queue
from jada_pipelines.health.audit import build_audit
from jada_pipelines.health.cli import code_location_automation


def record(queued, claimed, started, first_call) -> AttemptRecord:
    return AttemptRecord("t", 1, None, "done", 1, 0.0, None, claimed, None, queued, started, first_call)


def test_the_three_spans_get_a_median_and_a_nearest_rank_p95():
    attempts = [record(0, i, i + 2, i + 2.5) for i in range(1, 21)]
    attempts.append(record(0, 1, None, None))  # claimed, run not started yet: counted in the first span only
    latencies = dispatch_latencies(attempts)
    assert latencies["enqueue_to_claim"] == {"count": 21, "median_s": 10, "p95_s": 19}
    assert latencies["claim_to_run_start"] == {"count": 20, "median_s": 2, "p95_s": 2}
    assert latencies["run_start_to_first_call"]["median_s"] == 0.5
    assert percentile([3.0], 0.95) == 3.0


def test_health_and_the_queue_asset_show_the_latencies_of_real_attempts():
    queue = open_queue()
    queue.enqueue("t1", "x")
    lease = queue.claim(worker="w", lease_seconds=60)
    queue.mark_running(lease, run_id="r1")
    queue.record_first_call("t1", 1, at=time.time() + 1.5)
    with dg.instance_for_test() as instance:
        section = build_audit(instance, now=time.time(), expected_running=code_location_automation)[
            "sections"
        ]["dispatch_24h"]
        result = dg.materialize([agent_task_queue], instance=instance)
    assert section["latencies"]["run_start_to_first_call"]["count"] == 1
    assert "run start to first call median 1.5" in section["summary"]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert 1.4 < metadata["run_start_to_first_call_median_s"].value < 1.6
    assert "claim_to_run_start_p95_s" in metadata and "enqueue_to_claim_median_s" in metadata


def session(queued, first_call, ended) -> AttemptRecord:
    return AttemptRecord("t", 1, None, "done", 1, 0.0, None, queued, ended, queued, first_call, first_call)


def test_a_hand_over_runs_from_a_freed_slot_to_the_next_first_call_only_while_tasks_wait():
    attempts = [
        session(0, 1, 10),  # two sessions start in empty slots: no hand-over
        session(0, 1, 20),
        session(0, 13, 30),  # takes the slot freed at 10, its task waiting since 0: 3 s
        session(25, 40, 45),  # the slot freed at 20, but its task came at 25: idle, not slow
        session(0, 50, 55),  # takes the slot freed at 30: 20 s
        session(0, 60, None),  # still running, in the slot freed at 45: 15 s
    ]
    assert dispatch_latencies(attempts)["handover"] == {"count": 3, "median_s": 15, "p95_s": 20}


def test_health_and_the_queue_asset_show_the_hand_over_between_two_real_sessions():
    queue = open_queue()
    queue.enqueue("t1", "x")
    queue.enqueue("t2", "x")  # waits while t1 holds the only slot
    first = queue.claim(worker="w", lease_seconds=60, max_live=1)
    queue.mark_running(first, run_id="r1")
    queue.record_first_call("t1", 1, at=time.time())
    queue.complete(first, outcome="done", turns=1, cost_usd=0.0, summary="ok")
    second = queue.claim(worker="w", lease_seconds=60, max_live=1)
    queue.mark_running(second, run_id="r2")
    queue.record_first_call("t2", 1, at=time.time() + 2.5)
    with dg.instance_for_test() as instance:
        section = build_audit(instance, now=time.time(), expected_running=code_location_automation)[
            "sections"
        ]["dispatch_24h"]
        result = dg.materialize([agent_task_queue], instance=instance)
    assert section["latencies"]["handover"]["count"] == 1
    assert "handover median 2.5" in section["summary"]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert 2.4 < metadata["handover_median_s"].value < 2.6 and "handover_p95_s" in metadata


def test_the_sensor_says_a_task_after_its_turn_cap_waits_out_the_continuation_delay_not_a_back_off():
    from jada_pipelines.agents.queue import STATUSES, QueueStats
    from jada_pipelines.agents.sensors import idle_reason

    def stats(**depth) -> QueueStats:
        return QueueStats({s: depth.get(s, 0) for s in STATUSES}, 10.0, 0, 0)

    assert idle_reason(stats(incomplete=1), []) == (
        "No task is due yet: 1 task is waiting out the continuation delay after reaching the turn cap "
        "(JADA_AGENT_CONTINUE_DELAY_SECONDS)."
    )
    assert idle_reason(stats(queued=2), []) == (
        "No task is due yet: 2 tasks are backing off after an attempt that failed or was lost."
    )
