"""The DynamoDB queue table's layout, and the pieces every request to it is built from.

One table holds everything, keyed on ``id``: a task under its id, its attempt records under
``attempt:<id>:<n>``, and the live-session counter under ``counter:live_sessions`` (a task id may not contain
``:``). Two indexes: ``by_status`` (status, available_at) suggests claim candidates; ``by_kind`` (kind,
started_at) is sparse, only attempt records carry ``kind``. No queue rule lives here (see ``transitions.py``),
and nothing here talks to AWS but ``create_or_repair_table``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from jada_pipelines.agents.queue.protocol import AttemptRecord, QueueError
from jada_pipelines.aws_clients import error_code

STATUS_INDEX = "by_status"
ATTEMPT_INDEX = "by_kind"
ATTEMPT_KIND = "attempt"
COUNTER_KEY = "counter:live_sessions"
INIT_TIMEOUT_S = 900.0
# index name -> (hash key, range key); the attempt index is sparse: only attempt records carry ``kind``.
_INDEXES = {STATUS_INDEX: ("status", "available_at"), ATTEMPT_INDEX: ("kind", "started_at")}
_KEY_TYPES = {"id": "S", "status": "S", "available_at": "N", "kind": "S", "started_at": "N"}
_INT_FIELDS = frozenset(
    {"attempt", "max_attempts", "attempt_budget", "max_turns", "priority", "turns", "version"}
)
_ATTEMPT_FIELDS = tuple(AttemptRecord.__dataclass_fields__)


def attempt_key(task_id: str, attempt: int) -> str:
    return f"attempt:{task_id}:{attempt}"


def to_dynamo(value: Any) -> Any:
    # boto3's serializer refuses floats (they are not exact); DynamoDB numbers are decimals.
    return Decimal(repr(value)) if isinstance(value, float) else value


def from_dynamo(name: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if name in _INT_FIELDS else float(value)
    return value


def new_attempt_item(task_id: str, attempt: int, now: float, queued_at: float | None = None) -> dict:
    """An attempt record as the claim writes it: in flight (outcome "") until the attempt ends."""
    record = dict.fromkeys(_ATTEMPT_FIELDS) | {"task_id": task_id, "attempt": attempt, "outcome": ""}
    record |= {"turns": 0, "cost_usd": 0.0, "started_at": now, "queued_at": queued_at}
    return {"id": attempt_key(task_id, attempt), "kind": ATTEMPT_KIND, **record}


def _attribute_definitions(types: dict[str, str]) -> list[dict]:
    return [{"AttributeName": name, "AttributeType": kind} for name, kind in types.items()]


def _index_spec(name: str) -> dict:
    hash_key, range_key = _INDEXES[name]
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


class Expression:
    """Placeholders for one request: every attribute goes through a ``#name`` (``status`` is a reserved
    word) and every value through a ``:value``, registering only what the expression actually uses."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def n(self, field: str) -> str:
        self.names[f"#{field}"] = field
        return f"#{field}"

    def v(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def assign(self, **fields: Any) -> str:
        return ", ".join(f"{self.n(field)} = {self.v(value)}" for field, value in fields.items())

    def one_of(self, field: str, options: Iterable[str]) -> str:
        return f"{self.n(field)} IN ({', '.join(self.v(option) for option in options)})"

    def request(self, serialize: Callable[[Any], dict], **parts: str) -> dict:
        request: dict[str, Any] = {key: value for key, value in parts.items() if value}
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = {k: serialize(v) for k, v in self.values.items()}
        return request


def create_or_repair_table(dynamodb: Any, table: str) -> None:
    """Create the table and its two indexes, or add whichever index is missing; safe to run again."""
    from botocore.exceptions import ClientError

    try:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=_attribute_definitions(_KEY_TYPES),
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[_index_spec(name) for name in _INDEXES],
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    present = _wait_until_active(dynamodb, table)
    for name, keys in _INDEXES.items():
        if name not in present:
            dynamodb.update_table(
                TableName=table,
                AttributeDefinitions=_attribute_definitions({key: _KEY_TYPES[key] for key in keys}),
                GlobalSecondaryIndexUpdates=[{"Create": _index_spec(name)}],
            )
            # DynamoDB builds one new index at a time per table, and queries fail until it is ACTIVE.
            _wait_until_active(dynamodb, table)


def _wait_until_active(dynamodb: Any, table: str) -> set[str]:
    """Wait until the table and every index are ACTIVE; returns the index names."""
    deadline = time.monotonic() + INIT_TIMEOUT_S
    while True:
        description = dynamodb.describe_table(TableName=table)["Table"]
        indexes = description.get("GlobalSecondaryIndexes", [])
        if description["TableStatus"] == "ACTIVE" and all(i["IndexStatus"] == "ACTIVE" for i in indexes):
            return {index["IndexName"] for index in indexes}
        if time.monotonic() > deadline:
            raise QueueError(
                f"DynamoDB table {table!r} is not ACTIVE after {INIT_TIMEOUT_S:.0f} s (building an index "
                "on a large table takes a while): run `jada queue init` again later."
            )
        time.sleep(2)
