"""What only the DynamoDB queue backend has to get right: its table, its session counter and stale index hits.

The shared queue suite (tests/test_agents_queue.py) already runs on this backend; the multi-process claim race
stays SQLite-only because moto's conditional writes are not atomic under concurrent requests (real DynamoDB's are).
"""

from __future__ import annotations

import socket

import boto3
import pytest

from jada_pipelines import aws_clients
from jada_pipelines.agents.queue import open_queue
from jada_pipelines.agents.queue.dynamodb import ATTEMPT_INDEX, COUNTER_KEY, STATUS_INDEX, DynamoDBTaskQueue
from jada_pipelines.settings import ConfigError

TABLE = "jada-tasks"
LEASE = 600


@pytest.fixture
def queue(aws, queue_clock):
    queue = DynamoDBTaskQueue(TABLE, clock=queue_clock)
    queue.init()
    return queue


def _live_counter() -> int:
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"id": {"S": COUNTER_KEY}}, ConsistentRead=True
    )
    return int(item.get("Item", {}).get("live", {"N": "0"})["N"])


def _indexes() -> set[str]:
    table = boto3.client("dynamodb").describe_table(TableName=TABLE)["Table"]
    return {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}


def test_init_creates_the_table_with_both_indexes_and_is_idempotent(queue):
    queue.enqueue("t1", "x")
    queue.init()

    assert _indexes() == {STATUS_INDEX, ATTEMPT_INDEX}
    assert queue.get("t1") is not None


def test_init_adds_an_index_missing_from_an_older_table(aws):
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )

    DynamoDBTaskQueue(TABLE).init()

    assert _indexes() == {STATUS_INDEX, ATTEMPT_INDEX}


def test_a_missing_table_says_to_run_jada_queue_init(aws):
    queue = open_queue(f"dynamodb://{TABLE}")

    assert isinstance(queue, DynamoDBTaskQueue)
    with pytest.raises(ConfigError, match="jada queue init"):
        queue.enqueue("t1", "x")


def test_missing_aws_credentials_say_what_to_set(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(ConfigError, match="IAM role, or set AWS_PROFILE"):
        DynamoDBTaskQueue(TABLE).get("t1")


def test_an_unreachable_endpoint_names_it_and_what_to_check(monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(aws_clients, "_MAX_ATTEMPTS", 1)  # no retry back-off in a test

    with pytest.raises(
        ConfigError, match=f"Cannot reach DynamoDB at http://127.0.0.1:{port}.*AWS_ENDPOINT_URL"
    ):
        DynamoDBTaskQueue(TABLE).enqueue("t1", "x")


def test_every_way_out_of_a_lease_gives_its_session_slot_back(queue, queue_clock):
    for name in ("done", "failed", "cancelled", "expired"):
        queue.enqueue(name, "x")
    leases = {
        lease.task_id: lease for lease in (queue.claim(worker="w", lease_seconds=LEASE) for _ in range(4))
    }
    assert _live_counter() == 4

    queue.complete(leases["done"], outcome="done", turns=1, cost_usd=0.1, summary="ok")
    queue.fail(leases["failed"], error="401", retryable=False)
    queue.cancel("cancelled")
    assert _live_counter() == 1

    queue_clock.advance(LEASE + 1)  # "expired" is reaped by the next claim
    queue.claim(worker="w", lease_seconds=LEASE)
    assert queue.get("expired").status == "dispatched"  # re-claimed: it was the only claimable task
    assert _live_counter() == 1


def test_the_counter_item_caps_claims_whatever_the_status_index_says(queue):
    for i in range(3):
        queue.enqueue(f"t{i}", "x")
    queue.claim(worker="w", lease_seconds=LEASE, max_live=5)
    # Another deployment already holds the remaining slots: the store refuses, though tasks are queued.
    boto3.client("dynamodb").put_item(TableName=TABLE, Item={"id": {"S": COUNTER_KEY}, "live": {"N": "5"}})

    assert queue.claim(worker="w", lease_seconds=LEASE, max_live=5) is None
    assert queue.stats().depth_by_status["queued"] == 2


def test_a_stale_index_hit_fails_its_condition_and_changes_nothing(queue):
    queue.enqueue("t1", "x")
    stale = next(iter(queue._with_status("queued")))
    winner = queue.claim(worker="a", lease_seconds=LEASE)

    assert (
        queue._try_claim(stale, worker="b", lease_seconds=LEASE, max_live=5, now=stale["created_at"]) is None
    )
    task = queue.get("t1")
    assert (task.attempt, task.status) == (1, "dispatched")
    assert queue.heartbeat(winner, lease_seconds=LEASE)
    assert _live_counter() == 1


def test_jada_queue_init_creates_the_table_named_in_the_queue_url_and_can_run_twice(aws, monkeypatch, capsys):
    from jada_pipelines.cli import main

    monkeypatch.setenv("JADA_TASK_QUEUE_URL", f"dynamodb://{TABLE}")

    assert main(["queue", "init"]) == 0
    assert main(["queue", "init"]) == 0
    assert main(["task", "add", "--id", "from-old-daemon", "Finish the port list"]) == 0
    assert _indexes() == {STATUS_INDEX, ATTEMPT_INDEX}
    assert open_queue().get("from-old-daemon").prompt == "Finish the port list"
