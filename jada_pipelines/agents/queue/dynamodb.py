"""The AWS queue backend: one DynamoDB table, for workers (ECS tasks) on several hosts.

It applies the same moves as the SQLite store (``transitions.py`` says how a status moves); only the way a
move is made atomic differs. DynamoDB has no lock to hold between a read and a write, so every write is
conditioned on what it was computed from:
- Items are keyed on ``id``: tasks, attempt records and the live-session counter share one table (its layout,
  indexes and request helpers are in ``dynamodb_table.py``).
- The ``by_status`` index (status, available_at) only *suggests* candidates: a GSI is eventually
  consistent and cannot be read consistently. Every claim is a conditional write on the base table that
  names the ``version`` it saw, so a stale index hit fails its condition and the next candidate is tried.
- The cap on live sessions is a counter item written in the same ``TransactWriteItems`` as the claim, under
  ``live < max_live``; every transition out of a leased status decrements it in its own transaction.
- Every write after a claim carries ``lease_token = :token`` and an unexpired lease in its condition (the fence,
  ``transitions.lease_holds`` as an expression); the lease holder's move is computed from the task as claimed,
  since its attempt and budget cannot change while the lease is held. Everyone else's write (a reap, a requeue,
  a cancel) names the ``version`` it read, and reads again when another write came first.

Plain Python and boto3 (dagster-aws has no DynamoDB support). ``AWS_ENDPOINT_URL`` points it at moto in tests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from jada_pipelines.agents.queue import transitions
from jada_pipelines.agents.queue.dynamodb_table import (
    ATTEMPT_INDEX,
    ATTEMPT_KIND,
    COUNTER_KEY,
    STATUS_INDEX,
    Expression,
    attempt_key,
    create_or_repair_table,
    from_dynamo,
    new_attempt_item,
    to_dynamo,
)
from jada_pipelines.agents.queue.protocol import (
    AttemptRecord,
    EnqueueResult,
    Lease,
    QueueStats,
    Task,
    decode_handoff,
)
from jada_pipelines.agents.queue.store import JudgeMove, MakeMove, QueueStore
from jada_pipelines.agents.queue.transitions import (
    CLAIMABLE,
    DEFAULT_RETRY_BACKOFF_S,
    LEASED,
    STATUSES,
    Move,
)
from jada_pipelines.aws_clients import client, error_code
from jada_pipelines.settings import ConfigError

# A fenced write is cancelled for one of three reasons. ConditionalCheckFailed on the task item is the fence:
# the lease is gone. A conflict with another transaction on the same item (most often the live-session
# counter, which every claim and finish writes) and throttling say nothing about the lease: they are retried,
# a bounded number of times with a growing pause, so a finished session is never recorded as lost.
RETRYABLE_CANCELLATIONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
RETRYABLE_ERRORS = frozenset(
    {
        "TransactionConflictException",
        "TransactionInProgressException",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
    }
)
FENCED_WRITE_TRIES = 6
FENCED_WRITE_PAUSE_S = 0.05

_TASK_FIELDS = tuple(Task.__dataclass_fields__)
_ATTEMPT_FIELDS = tuple(AttemptRecord.__dataclass_fields__)


class QueueBusyError(RuntimeError):
    """DynamoDB kept cancelling a fenced write for conflicts or throttling after every bounded retry."""


class _AllSessionsBusy(Exception):
    """The live-session counter is at the cap: no claim can succeed until a session ends."""


class DynamoDBTaskQueue(QueueStore):
    """The task queue in a DynamoDB table. Create the table once with ``init()`` (``jada queue init``).

    Example::

        queue = DynamoDBTaskQueue("jada-tasks")   # or open_queue("dynamodb://jada-tasks")
        queue.init()
        queue.enqueue("fix-login", "Fix the login bug in app/login.py")
        lease = queue.claim(worker="sensor", lease_seconds=600)
    """

    def __init__(
        self,
        table: str,
        *,
        clock: Callable[[], float] = time.time,
        retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
        continue_delay_s: float = 0.0,
    ) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        super().__init__(clock=clock, retry_backoff_s=retry_backoff_s, continue_delay_s=continue_delay_s)
        self.table = table
        self._client = client("dynamodb")
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _serialize(self, value: Any) -> dict:
        return self._serializer.serialize(to_dynamo(value))

    def _key(self, item_id: str) -> dict:
        return {"id": {"S": item_id}}

    def _decode(self, item: dict) -> dict:
        return {
            name: from_dynamo(name, self._deserializer.deserialize(value)) for name, value in item.items()
        }

    def _task(self, values: dict) -> Task:
        task = {name: values.get(name) for name in _TASK_FIELDS}
        task["handoff"] = decode_handoff(task["handoff"])
        return Task(**task)

    def _call(self, operation: str, **kwargs: Any) -> dict:
        """One API call; a missing table, missing credentials or an unreachable endpoint become errors that
        say what to do."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        try:
            return getattr(self._client, operation)(**kwargs)
        except NoCredentialsError:
            raise ConfigError(
                f"No AWS credentials for the DynamoDB task queue {self.table!r} (JADA_TASK_QUEUE_URL): give this "
                "machine or ECS task an IAM role, or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY)."
            ) from None
        except EndpointConnectionError as exc:
            raise ConfigError(
                f"Cannot reach DynamoDB at {exc.kwargs.get('endpoint_url')} for the task queue {self.table!r} "
                "after retries: check AWS_DEFAULT_REGION, AWS_ENDPOINT_URL if it is set, and this machine's "
                "network."
            ) from None
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise ConfigError(
                    f"DynamoDB table {self.table!r} (JADA_TASK_QUEUE_URL) does not exist in this account and "
                    "region: create it with `jada queue init`."
                ) from None
            raise

    def _transact(self, *items: dict) -> list[str] | None:
        """Run the writes as one transaction; on a failed condition, the cancellation code of each item."""
        from botocore.exceptions import ClientError

        try:
            self._call("transact_write_items", TransactItems=list(items))
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            return [reason.get("Code", "None") for reason in reasons]
        return None

    def _update(self, item_id: str, expression: Expression, update: str, condition: str = "") -> dict:
        """The ``Update`` element of a transaction."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(item_id),
                **expression.request(self._serialize, UpdateExpression=update, ConditionExpression=condition),
            }
        }

    def _update_item(self, item_id: str, expression: Expression, update: str, condition: str) -> dict | None:
        """A single conditional update; the new item, or None when the condition failed."""
        from botocore.exceptions import ClientError

        try:
            response = self._call(
                "update_item",
                TableName=self.table,
                Key=self._key(item_id),
                ReturnValues="ALL_NEW",
                **expression.request(self._serialize, UpdateExpression=update, ConditionExpression=condition),
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return self._decode(response["Attributes"])

    def _counter_change(self, delta: int, *, below: int | None = None) -> dict:
        """Move the live-session counter; with ``below``, only while it is under that cap."""
        e = Expression()
        update = f"SET {e.n('live')} = if_not_exists({e.n('live')}, {e.v(0)}) + {e.v(delta)}"
        condition = (
            "" if below is None else f"attribute_not_exists({e.n('live')}) OR {e.n('live')} < {e.v(below)}"
        )
        return self._update(COUNTER_KEY, e, update, condition)

    def _get(self, item_id: str) -> dict | None:
        item = self._call("get_item", TableName=self.table, Key=self._key(item_id), ConsistentRead=True).get(
            "Item"
        )
        return self._decode(item) if item else None

    def _responses(self, operation: str, **kwargs: Any) -> Iterator[dict]:
        """Every page of a query or scan (DynamoDB returns at most 1 MB per call)."""
        while True:
            page = self._call(operation, TableName=self.table, **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict]:
        """Every item of a query or scan, decoded."""
        for page in self._responses(operation, **kwargs):
            yield from (self._decode(item) for item in page.get("Items", []))

    def _status_query(self, status: str, available_by: float | None = None) -> dict:
        e = Expression()
        condition = f"{e.n('status')} = {e.v(status)}"
        if available_by is not None:
            condition += f" AND {e.n('available_at')} <= {e.v(available_by)}"
        return {"IndexName": STATUS_INDEX, **e.request(self._serialize, KeyConditionExpression=condition)}

    def _with_status(self, status: str, *, available_by: float | None = None) -> list[dict]:
        """Tasks in ``status`` according to the (eventually consistent) status index."""
        return list(self._pages("query", **self._status_query(status, available_by)))

    def _count_with_status(self, status: str) -> int:
        """How many tasks are in ``status``, without reading them (``done`` grows without bound)."""
        return sum(
            page["Count"] for page in self._responses("query", Select="COUNT", **self._status_query(status))
        )

    # -- schema ---------------------------------------------------------------------------------------------

    def init(self) -> None:
        """Create the table and its two indexes, or add whichever index is missing; safe to run again."""
        create_or_repair_table(self._client, self.table)

    # -- producer side --------------------------------------------------------------------------------------

    def _insert(self, fields: dict) -> EnqueueResult:
        from botocore.exceptions import ClientError

        # Items written before backend/max_cost_usd existed read back as None for both: nothing to migrate.
        values = {**dict.fromkeys(_TASK_FIELDS), **fields, "lease_token": None, "version": 0}
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item={name: self._serialize(value) for name, value in values.items()},
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return EnqueueResult(task=self._task(self._get(fields["id"])), created=False)
        return EnqueueResult(task=self._task(values), created=True)

    # -- worker side ----------------------------------------------------------------------------------------

    def claim(self, *, worker: str, lease_seconds: float, max_live: int = 5) -> Lease | None:
        """Lease the most urgent claimable task, unless ``max_live`` sessions already hold leases."""
        now = self._clock()
        self._reap_expired(now)
        candidates = [item for status in CLAIMABLE for item in self._with_status(status, available_by=now)]
        candidates.sort(key=transitions.claim_order)
        for candidate in candidates:
            try:
                lease = self._try_claim(
                    candidate, worker=worker, lease_seconds=lease_seconds, max_live=max_live, now=now
                )
            except _AllSessionsBusy:
                return None
            if lease is not None:
                return lease
        return None

    def _try_claim(
        self, seen: dict, *, worker: str, lease_seconds: float, max_live: int, now: float
    ) -> Lease | None:
        """Claim ``seen`` if it is unchanged since the index showed it (None if not); raises
        ``_AllSessionsBusy`` when the counter item says every session slot is taken."""
        token = secrets.token_hex(16)
        move = transitions.claim(
            attempt=seen["attempt"], token=token, worker=worker, now=now, lease_seconds=lease_seconds
        )
        changes = {**move.changes, "version": seen["version"] + 1}
        e = Expression()
        condition = f"{e.n('version')} = {e.v(seen['version'])} AND {e.one_of('status', CLAIMABLE)}"
        attempt = new_attempt_item(seen["id"], changes["attempt"], now, seen["available_at"])
        reasons = self._transact(
            self._update(seen["id"], e, f"SET {e.assign(**changes)}", condition),
            self._counter_change(+1, below=max_live),
            {"Put": {"TableName": self.table, "Item": {k: self._serialize(v) for k, v in attempt.items()}}},
        )
        if reasons is None:
            task = self._task({**seen, **changes})
            return Lease(
                task_id=task.id, token=token, attempt=task.attempt, expires_at=now + lease_seconds, task=task
            )
        if reasons[1:2] == ["ConditionalCheckFailed"]:
            raise _AllSessionsBusy
        return None  # a stale index hit: someone else changed the task first

    def _reap_expired(self, now: float) -> None:
        """Leases that ran out (a crashed or paused worker) go back to the queue, or to dead letters."""
        for status in LEASED:
            for item in self._with_status(status):
                if transitions.lease_expired(item, now=now):
                    move = transitions.expire(
                        status=item["status"],
                        attempt=item["attempt"],
                        max_attempts=item["max_attempts"],
                        now=now,
                    )
                    self._release(item, move)

    def _release(self, item: dict, move: Move) -> bool:
        """Write ``move``, which takes ``item`` out of its leased status: close its attempt and free its slot.

        The ``version`` condition releases it only if nothing was written since it was read: a heartbeat that
        lands first keeps an expired-looking lease alive, as the SQLite store's single transaction would.
        """
        e = Expression()
        changes = {**move.changes, "version": item["version"] + 1}
        condition = f"{e.n('version')} = {e.v(item['version'])} AND {e.one_of('status', LEASED)}"
        return (
            self._transact(
                self._update(item["id"], e, f"SET {e.assign(**changes)}", condition),
                self._counter_change(-1),
                self._attempt_update(item["id"], item["attempt"], move.attempt),
            )
            is None
        )

    def _attempt_update(self, task_id: str, attempt: int, fields: dict) -> dict:
        e = Expression()
        return self._update(attempt_key(task_id, attempt), e, f"SET {e.assign(**fields)}")

    def _fence(self, e: Expression, lease: Lease, statuses: tuple[str, ...] = LEASED) -> str:
        """Only the lease holder, with an unexpired lease, may write (``transitions.lease_holds``)."""
        return (
            f"{e.n('lease_token')} = {e.v(lease.token)} AND {e.one_of('status', statuses)}"
            f" AND {e.n('lease_expires_at')} >= {e.v(self._clock())}"
        )

    def _fenced_transact(self, *items: dict) -> bool:
        """Run a transaction whose first item is the fenced task write: True when written, False when the
        fence failed (the lease is gone). Conflicts and throttling are retried; QueueBusyError when they
        outlast FENCED_WRITE_TRIES."""
        from botocore.exceptions import ClientError

        reasons: list[str] | None = None
        for attempt in range(FENCED_WRITE_TRIES):
            try:
                reasons = self._transact(*items)
            except ClientError as exc:
                if error_code(exc) not in RETRYABLE_ERRORS:
                    raise
                reasons = [error_code(exc) or ""]
            if reasons is None:
                return True
            if reasons[0] == "ConditionalCheckFailed":
                return False
            if not RETRYABLE_CANCELLATIONS.intersection(reasons) and not RETRYABLE_ERRORS.intersection(
                reasons
            ):
                raise QueueBusyError(
                    f"DynamoDB cancelled a write to task item {items[0]['Update']['Key']} for {reasons}; "
                    "this is not a lost lease and was not retried."
                )
            time.sleep(FENCED_WRITE_PAUSE_S * 2**attempt)
        raise QueueBusyError(
            f"DynamoDB table {self.table!r} kept cancelling a write for {reasons} after {FENCED_WRITE_TRIES} "
            "tries: it is throttled or very busy. Raise its capacity (or use on-demand billing)."
        )

    def _apply_leased(
        self, lease: Lease, make_move: MakeMove, statuses: tuple[str, ...] = LEASED
    ) -> Move | None:
        """Write ``make_move(task, now)`` under the fence. The move is computed from the task as claimed: its
        attempt and budget cannot change while the lease is held (requeue skips leased tasks). A move out of the
        leased statuses frees a session slot and adds the attempt's cost, in one transaction with the attempt
        record; a heartbeat is a single conditional update."""
        now = self._clock()
        move = make_move(
            {"status": lease.task.status, "attempt": lease.attempt, "max_attempts": lease.task.max_attempts},
            now,
        )
        e = Expression()
        leaving = move.status is not None and move.status not in LEASED
        update = f"SET {e.assign(**move.changes)}"
        if leaving:
            update += f", {e.n('cost_usd')} = {e.n('cost_usd')} + {e.v(move.cost_added)}"
        update += f" ADD {e.n('version')} {e.v(1)}"
        fence = self._fence(e, lease, statuses)
        items = [self._update(lease.task_id, e, update, fence)]
        if leaving:
            items.append(self._counter_change(-1))
        if move.attempt:
            # One transaction: the attempt history changes only if the fenced write went through.
            items.append(self._attempt_update(lease.task_id, lease.attempt, move.attempt))
        if len(items) == 1:
            written = self._update_item(lease.task_id, e, update, fence) is not None
        else:
            written = self._fenced_transact(*items)
        return move if written else None

    def lease_for(self, task_id: str, attempt: int) -> Lease | None:
        """The live lease of ``attempt`` of the task, looked up by the run worker (the token is never in run
        config); None when that attempt no longer holds the task."""
        item = self._get(task_id)
        if (
            item is None
            or item["attempt"] != attempt
            or item["status"] not in LEASED
            or not item["lease_token"]
        ):
            return None
        task = self._task(item)
        return Lease(task.id, item["lease_token"], task.attempt, task.lease_expires_at or 0.0, task)

    def record_first_call(self, task_id: str, attempt: int, *, at: float) -> None:
        e = Expression()
        self._update_item(
            attempt_key(task_id, attempt),
            e,
            f"SET {e.assign(first_call_at=at)}",
            f"attribute_exists({e.n('id')})",
        )

    # -- operator side --------------------------------------------------------------------------------------

    def _versioned_set(self, item: dict, move: Move) -> bool:
        """Write ``move`` to a task not holding a lease, only if nothing was written since ``item`` was read."""
        e = Expression()
        update = f"SET {e.assign(**move.changes)} ADD {e.n('version')} {e.v(1)}"
        condition = f"{e.n('version')} = {e.v(item['version'])}"
        return self._update_item(item["id"], e, update, condition) is not None

    def _operate(self, task_id: str, make_move: JudgeMove, *, reap: bool = False) -> bool:
        """An operator's move (requeue, cancel, supersede), judged on the task as read. Clearing the lease token
        fences out a session, which then stops or never starts.

        Each write is conditioned on the item's ``version`` as read, so a claim, a run start or a heartbeat
        that lands between the read and the write makes it fail; the task is then read again and judged on
        its new status, until one write decides.
        """
        if reap:
            self._reap_expired(self._clock())
        move = None
        for _ in range(FENCED_WRITE_TRIES):
            item = self._get(task_id)
            move = make_move(item, self._clock()) if item is not None else None
            if move is None:
                return False
            if self._release(item, move) if item["status"] in LEASED else self._versioned_set(item, move):
                return True
        raise QueueBusyError(
            f"Task {task_id} kept changing under a {move.status} write after {FENCED_WRITE_TRIES} tries; run it again."
        )

    # -- reading --------------------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        item = self._get(task_id)
        return self._task(item) if item is not None and "status" in item else None

    def _list(self, status: str | None, source_prefix: str | None, limit: int) -> list[Task]:
        items = self._with_status(status) if status is not None else self._scan_tasks()
        if source_prefix is not None:
            items = [
                item
                for item in items
                if item["source"] is not None and item["source"].startswith(source_prefix)
            ]
        items.sort(key=lambda item: (item["created_at"], item["id"]))
        return [self._task(item) for item in items[:limit]]

    def _scan_tasks(self) -> list[dict]:
        e = Expression()
        return list(
            self._pages(
                "scan", **e.request(self._serialize, FilterExpression=f"attribute_exists({e.n('status')})")
            )
        )

    def stats(self, *, now: float | None = None) -> QueueStats:
        now = self._clock() if now is None else now
        # Only waiting and leased tasks are read (for their age and lease); the metrics sensor calls this
        # every minute, so the other statuses are counted, not fetched.
        by_status = {status: self._with_status(status) for status in (*CLAIMABLE, *LEASED)}
        claimable = [item["created_at"] for status in CLAIMABLE for item in by_status[status]]
        live_by_status = {
            status: sum(
                1
                for item in by_status[status]
                if item["lease_expires_at"] is not None and item["lease_expires_at"] >= now
            )
            for status in LEASED
        }
        live = sum(live_by_status.values())
        depth = {
            status: len(by_status[status]) if status in by_status else self._count_with_status(status)
            for status in STATUSES
        }
        return QueueStats(
            depth_by_status=depth,
            oldest_queued_age_s=max(now - min(claimable), 0.0) if claimable else None,
            dead_letters=depth["dead"],
            live_sessions=live,
            running_sessions=live_by_status["running"],
        )

    def attempts(self, *, since: float) -> list[AttemptRecord]:
        e = Expression()
        condition = f"{e.n('kind')} = {e.v(ATTEMPT_KIND)} AND {e.n('started_at')} >= {e.v(since)}"
        items = self._pages(
            "query", IndexName=ATTEMPT_INDEX, **e.request(self._serialize, KeyConditionExpression=condition)
        )
        records = [AttemptRecord(**{name: item.get(name) for name in _ATTEMPT_FIELDS}) for item in items]
        return sorted(records, key=lambda record: (record.started_at, record.task_id, record.attempt))
