"""How a task's status moves, said once in ``agents/queue/transitions.py`` and applied by both stores: these
tests call the rules directly, with no store (the queue contract suite checks the stores apply them)."""

from __future__ import annotations

import ast
import inspect

import pytest

from jada_pipelines.agents.queue import QueueError, dynamodb, sqlite, transitions
from jada_pipelines.agents.queue.transitions import (
    CANCELLABLE_UNSTARTED,
    CLAIM_NEVER_STARTED,
    LEASE_LOST,
    LEASED,
    STATUSES,
    SUPERSEDABLE,
    TURN_CAP_EXHAUSTED,
    WITHDRAWABLE,
)

NOW = 1_800_000_000.0


def _fail(**overrides):
    arguments = dict(
        attempt=1,
        max_attempts=3,
        outcome="transient",
        error="overloaded",
        retryable=True,
        charge_attempt=True,
        turns=4,
        cost_usd=0.25,
        handoff=None,
        now=NOW,
        backoff_base_s=60.0,
    )
    return transitions.fail(**(arguments | overrides))


def _complete(**overrides):
    arguments = dict(
        attempt=1,
        max_attempts=3,
        outcome="incomplete",
        turns=30,
        cost_usd=1.5,
        summary="half way",
        handoff={"next": "finish it"},
        stop_reason="turn_cap",
        now=NOW,
        continue_delay_s=5.0,
    )
    return transitions.complete(**(arguments | overrides))


def test_a_new_task_is_queued_due_now_with_its_whole_budget_and_no_attempt_made():
    task = transitions.new_task(now=NOW, max_attempts=4, id="t1", prompt="x")
    assert (task["status"], task["attempt"], task["available_at"]) == ("queued", 0, NOW)
    assert task["max_attempts"] == task["attempt_budget"] == 4
    assert (task["id"], task["prompt"]) == ("t1", "x")


def test_a_claim_leases_the_task_and_counts_the_attempt_at_once():
    move = transitions.claim(attempt=2, token="tok", worker="sensor", now=NOW, lease_seconds=600)
    assert move.changes["status"] == "dispatched"
    assert move.changes["attempt"] == 3
    assert move.changes["lease_token"] == "tok"
    assert move.changes["lease_expires_at"] == NOW + 600
    assert move.changes["run_id"] is None


def test_claims_take_the_highest_priority_first_then_the_longest_due_then_the_oldest():
    tasks = [
        {"id": "low", "priority": 0, "available_at": 1.0, "created_at": 1.0},
        {"id": "late", "priority": 5, "available_at": 9.0, "created_at": 0.0},
        {"id": "young", "priority": 5, "available_at": 2.0, "created_at": 8.0},
        {"id": "old", "priority": 5, "available_at": 2.0, "created_at": 3.0},
    ]
    assert [task["id"] for task in sorted(tasks, key=transitions.claim_order)] == [
        "old",
        "young",
        "late",
        "low",
    ]


def test_only_the_holder_of_an_unexpired_lease_may_write_and_only_a_dispatched_task_may_start():
    held = {"status": "dispatched", "lease_token": "tok", "lease_expires_at": NOW}
    assert transitions.lease_holds(held, token="tok", now=NOW)
    assert not transitions.lease_holds(held, token="other", now=NOW)
    assert not transitions.lease_holds(held, token="tok", now=NOW + 0.001)
    assert not transitions.lease_holds({**held, "status": "queued"}, token="tok", now=NOW)
    running = {**held, "status": "running"}
    assert transitions.lease_holds(running, token="tok", now=NOW)
    assert not transitions.lease_holds(running, token="tok", now=NOW, statuses=transitions.STARTABLE)


def test_a_heartbeat_moves_the_expiry_on_and_leaves_the_status_alone():
    move = transitions.heartbeat(now=NOW, lease_seconds=600)
    assert move.changes == {"lease_expires_at": NOW + 600, "updated_at": NOW}
    assert move.status is None


def test_a_failed_attempt_under_the_attempt_limit_backs_off_and_at_the_limit_goes_to_dead_letter():
    under = _fail(attempt=2, max_attempts=3)
    assert under.status == "queued"
    assert under.changes["available_at"] == NOW + 120.0  # base, 2·base, 4·base…
    assert _fail(attempt=3, max_attempts=3).status == "dead"


def test_the_back_off_doubles_per_attempt_and_stops_at_an_hour():
    assert [transitions.retry_backoff(attempt, 60.0) for attempt in (1, 2, 3)] == [60.0, 120.0, 240.0]
    assert transitions.retry_backoff(20, 60.0) == transitions.MAX_RETRY_BACKOFF_S


def test_only_a_transient_failure_waits_and_a_lost_attempt_is_due_again_at_once():
    assert _fail(outcome="lost").changes["available_at"] == NOW
    assert _fail(outcome="transient").changes["available_at"] > NOW


def test_a_permanent_error_fails_the_task_but_a_refusal_or_a_cost_ceiling_is_a_dead_letter():
    assert _fail(retryable=False, outcome="failed").status == "failed"
    assert _fail(retryable=False, outcome="refused").status == "dead"
    assert _fail(retryable=False, outcome="over_budget").status == "dead"


def test_a_run_that_never_started_gives_its_attempt_back_even_at_the_limit():
    move = _fail(attempt=3, max_attempts=3, charge_attempt=False, outcome="lost")
    assert move.status == "queued"
    assert move.changes["max_attempts"] == 4


def test_a_failure_clears_the_lease_adds_its_cost_and_closes_the_attempt_with_its_outcome():
    move = _fail(outcome="transient", turns=4, cost_usd=0.25)
    assert {move.changes[name] for name in ("lease_token", "lease_owner", "lease_expires_at")} == {None}
    assert move.cost_added == 0.25
    assert move.attempt == {
        "outcome": "transient",
        "turns": 4,
        "cost_usd": 0.25,
        "stop_reason": None,
        "ended_at": NOW,
    }


def test_a_failure_replaces_the_handoff_only_when_it_leaves_one():
    assert "handoff" not in _fail(handoff=None).changes
    assert _fail(handoff={"next": "x"}).changes["handoff"] == '{"next": "x"}'


def test_a_turn_cap_hands_off_and_waits_out_the_continue_delay_until_the_last_attempt_makes_it_a_dead_letter():
    continuing = _complete(attempt=1, max_attempts=3)
    assert continuing.status == "incomplete"
    assert continuing.changes["available_at"] == NOW + 5.0
    assert continuing.changes["last_error"] is None
    last = _complete(attempt=3, max_attempts=3)
    assert last.status == "dead"
    assert last.changes["last_error"] == TURN_CAP_EXHAUSTED
    assert last.changes["handoff"] == '{"next": "finish it"}'  # kept for the person who reads the dead letter


def test_a_done_task_is_done_even_on_its_last_attempt():
    move = _complete(outcome="done", attempt=3, max_attempts=3)
    assert move.status == "done"
    assert move.changes["last_error"] is None
    assert move.changes["available_at"] == NOW


def test_an_outcome_that_does_not_belong_to_the_call_is_refused():
    with pytest.raises(QueueError, match="outcome 'lost' is not one of done, incomplete"):
        _complete(outcome="lost")
    with pytest.raises(QueueError, match="outcome 'done' is not one of failed"):
        _fail(outcome="done")


def test_an_expired_session_is_charged_its_attempt_but_an_expired_claim_is_not():
    session = transitions.expire(status="running", attempt=3, max_attempts=3, now=NOW)
    assert (session.status, session.changes["max_attempts"], session.changes["last_error"]) == (
        "dead",
        3,
        LEASE_LOST,
    )
    claim = transitions.expire(status="dispatched", attempt=3, max_attempts=3, now=NOW)
    assert (claim.status, claim.changes["max_attempts"], claim.changes["last_error"]) == (
        "queued",
        4,
        CLAIM_NEVER_STARTED,
    )
    assert session.attempt["outcome"] == claim.attempt["outcome"] == "lost"


def test_a_lease_is_expired_only_once_its_expiry_has_passed():
    task = {"status": "running", "lease_expires_at": NOW}
    assert not transitions.lease_expired(task, now=NOW)
    assert transitions.lease_expired(task, now=NOW + 1)
    assert not transitions.lease_expired({**task, "status": "done"}, now=NOW + 1)


def test_a_requeue_gives_one_more_attempt_or_the_whole_budget_and_leaves_a_leased_task_alone():
    state = dict(status="dead", attempt=3, max_attempts=3, attempt_budget=3, now=NOW)
    assert transitions.requeue(**state, reset_attempts=False).changes["max_attempts"] == 4
    assert transitions.requeue(**state, reset_attempts=True).changes["max_attempts"] == 6
    assert transitions.requeue(**state, reset_attempts=False).status == "queued"
    for leased in LEASED:
        assert transitions.requeue(**(state | {"status": leased}), reset_attempts=False) is None


def test_cancel_takes_any_task_not_yet_ended_and_fences_out_a_running_session():
    assert set(WITHDRAWABLE) == set(STATUSES) - {"done", "cancelled", "superseded"}
    move = transitions.cancel(max_attempts=3, status="running", now=NOW)
    assert move.status == "cancelled"
    assert move.changes["lease_token"] is None
    assert move.attempt["outcome"] == "lost"
    assert transitions.cancel(max_attempts=3, status="done", now=NOW) is None


def test_a_conditional_cancel_takes_a_task_only_before_its_session_starts():
    assert CANCELLABLE_UNSTARTED == ("queued", "incomplete", "dispatched")
    assert transitions.cancel_unstarted(max_attempts=3, status="dispatched", now=NOW).status == "cancelled"
    assert transitions.cancel_unstarted(max_attempts=3, status="running", now=NOW) is None
    assert (
        transitions.cancel_unstarted(max_attempts=3, status="queued", now=NOW).attempt == {}
    )  # no attempt in flight


def test_a_claim_withdrawn_before_its_run_started_gives_its_attempt_back_and_a_running_one_does_not():
    for withdraw in (transitions.cancel, transitions.cancel_unstarted):
        assert withdraw(max_attempts=3, status="dispatched", now=NOW).changes["max_attempts"] == 4
        assert "max_attempts" not in withdraw(max_attempts=3, status="queued", now=NOW).changes
    assert (
        transitions.supersede(max_attempts=3, status="dispatched", by="t2", now=NOW).changes["max_attempts"]
        == 4
    )
    assert "max_attempts" not in transitions.cancel(max_attempts=3, status="running", now=NOW).changes


def test_a_superseded_task_says_what_replaced_it_and_a_started_session_is_left_to_finish():
    assert "running" not in SUPERSEDABLE
    move = transitions.supersede(max_attempts=3, status="queued", by="t2", now=NOW)
    assert (move.status, move.changes["last_error"]) == ("superseded", "superseded by task t2")
    assert transitions.supersede(max_attempts=3, status="running", by="t2", now=NOW) is None


@pytest.mark.parametrize("store", [sqlite, dynamodb], ids=["sqlite", "dynamodb"])
def test_no_store_decides_a_status_of_its_own(store):
    """A store writes the statuses a transition returns: it assigns no status itself and has no SQL CASE
    deciding one."""
    source = inspect.getsource(store)
    assigned = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            assigned |= {
                v.value
                for k, v in pairs
                if isinstance(k, ast.Constant) and k.value == "status" and isinstance(v, ast.Constant)
            }
        elif isinstance(node, ast.keyword) and node.arg == "status" and isinstance(node.value, ast.Constant):
            assigned.add(node.value.value)
    assert not assigned & set(STATUSES), assigned
    assert "CASE WHEN" not in source
