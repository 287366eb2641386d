"""Sensors that post failed asset checks and failed runs to Slack, each failure once.

Both walk finished runs by storage id. A cursor only moves past a run once every post for it succeeded.
When a post fails, the tick keeps what it already delivered (so a retry does not post it twice) and the
failing run stays due; a tick that delivered nothing fails, so a broken webhook shows on the sensor's page.
A Retry-After longer than a tick may sleep is stored in the cursor as "not before" and honoured by later
ticks. A tick stops posting after ``TICK_BUDGET_SECONDS`` and commits, well before the daemon's timeout
would throw the whole tick (and the record of its posts) away.

Who posts what, so a failure reaches Slack once and not twice:
- ``run_failure_alert_sensor``: every failed run, with each failed step's reason and the run's failed checks
  (a failing blocking check fails its run, so it is announced here).
- ``asset_check_alert_sensor``: failed checks in runs that did not fail (non-blocking checks, any
  severity), and a recovery message when a failing check passes again, whatever the run's outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.alerts import history, messages
from jada_pipelines.alerts.errors import SlackDeliveryError
from jada_pipelines.alerts.resources import WEBHOOK_VARIABLE, SlackWebhookResource

# On its first tick a sensor looks back this far, instead of replaying the instance's whole history.
FIRST_TICK_LOOKBACK_SECONDS = 24 * 3600
# A check that keeps failing at the same severity is re-posted after this many hours, not on every run.
REMIND_HOURS_VARIABLE = "JADA_ALERT_REMIND_HOURS"
# Paced at one post a second, this keeps a tick well inside the daemon's 60 s sensor timeout; what is
# left goes out on the next tick.
MAX_POSTS_PER_TICK = 15
# The daemon gives a sensor tick 60 s; a tick that has posted for this long commits and leaves the rest.
TICK_BUDGET_SECONDS = 30
DEFAULT_REMIND_HOURS = settings.default(REMIND_HOURS_VARIABLE)

_NO_WEBHOOK = (
    f"{WEBHOOK_VARIABLE} is not set, so no alert can be posted: set it to a Slack incoming-webhook URL "
    "(in .env for `dagster dev`) and this sensor will post failures from the last 24 hours."
)


@dataclass
class AlertCursor:
    after: int | None = None  # storage id of the last run whose alerts were all delivered
    failing: dict[str, dict] = field(default_factory=dict)  # check key -> {"severity", "alerted_at"}
    not_before: float | None = None  # Slack's Retry-After: no post before this time

    @classmethod
    def load(cls, raw: str | None) -> AlertCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _walk(context: dg.SensorEvaluationContext, cursor: AlertCursor, statuses) -> list[history.FinishedRun]:
    lookback = None if cursor.after is not None else time.time() - FIRST_TICK_LOOKBACK_SECONDS
    return history.finished_runs(
        context.instance, statuses, after_storage_id=cursor.after, after_timestamp=lookback
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def waiting_for_slack(not_before: float | None) -> dg.SkipReason | None:
    """A skip while Slack's Retry-After lasts, else None."""
    if not_before is None or time.time() >= not_before:
        return None
    return dg.SkipReason(
        f"Slack asked for quiet (Retry-After) until {_iso(not_before)}; alerts wait until then and none is lost."
    )


@dataclass
class Delivery:
    """What one tick delivered, and why it stopped early (``error``) if it did."""

    posted: int = 0
    error: SlackDeliveryError | None = None


def deliver(
    items: Iterable,
    messages_for: Callable[[object], list[messages.SlackMessage]],
    commit: Callable[[object], None],
    slack: SlackWebhookResource,
) -> Delivery:
    """Post each item's messages, calling ``commit(item)`` once they are all out; stop at the first failure.

    An item whose messages did not all go out is not committed, so it is due again on the next tick.
    """
    delivery, started = Delivery(), time.monotonic()
    for item in items:
        spent = time.monotonic() - started
        if delivery.posted >= MAX_POSTS_PER_TICK or (delivery.posted and spent > TICK_BUDGET_SECONDS):
            break
        try:
            for message in messages_for(item):
                slack.post(message)
                delivery.posted += 1
        except SlackDeliveryError as error:
            delivery.error = error
            break
        commit(item)
    return delivery


def settle(delivery: Delivery, not_before: Callable[[float], None]) -> str | None:
    """After a delivery: store a long Retry-After, raise a failure that delivered nothing, else say what happened.

    Returns a skip reason to report with the cursor (None when every due post went out).
    """
    error = delivery.error
    if error is None:
        return None
    if error.retry_after is not None:
        until = time.time() + error.retry_after
        not_before(until)
        return (
            f"Delivered {delivery.posted} alert(s), then Slack asked for quiet until {_iso(until)}: {error}"
        )
    if delivery.posted == 0:
        raise error
    return f"Delivered {delivery.posted} alert(s); the next failed and is retried on the next tick: {error}"


def _result(cursor: AlertCursor, posted: int, runs: int, note: str | None = None) -> dg.SensorResult:
    if note is not None:
        return dg.SensorResult(skip_reason=dg.SkipReason(note), cursor=cursor.dump())
    if posted:
        return dg.SensorResult(cursor=cursor.dump())
    reason = (
        f"Nothing to post: {runs} {'run' if runs == 1 else 'runs'} finished since the last tick, with no new "
        "failure or recovery."
        if runs
        else "Nothing to post: no run finished since the last tick."
    )
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: posts to Slack each failed asset check (WARN or ERROR) in a run that did not fail, and each "
    "recovery. A failed run, blocking checks included, is posted once by run_failure_alert_sensor.",
)
def asset_check_alert_sensor(context: dg.SensorEvaluationContext, slack: SlackWebhookResource):
    if not slack.configured():
        return dg.SkipReason(_NO_WEBHOOK)
    cursor = AlertCursor.load(context.cursor)
    if (wait := waiting_for_slack(cursor.not_before)) is not None:
        return wait
    remind_after = settings.get(REMIND_HOURS_VARIABLE) * 3600
    statuses = (
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.RUN_FAILURE,
        dg.DagsterEventType.RUN_CANCELED,
    )
    runs = _walk(context, cursor, statuses)
    # _check_messages updates the failing-check map as it plans; only a run whose posts all went out may
    # keep those updates, so each commit snapshots the cursor and a failure returns the last snapshot.
    committed = [cursor.dump()]

    def commit(run: history.FinishedRun) -> None:
        cursor.after = run.storage_id
        committed.append(cursor.dump())

    delivery = deliver(
        runs, lambda run: _check_messages(context.instance, run, cursor, remind_after), commit, slack
    )
    kept = AlertCursor.load(committed[-1])
    kept.not_before = None
    note = settle(delivery, lambda until: setattr(kept, "not_before", until))
    return _result(kept, delivery.posted, len(runs), note)


def _check_messages(
    instance: dg.DagsterInstance, run: history.FinishedRun, cursor: AlertCursor, remind_after: float
) -> list[messages.SlackMessage]:
    """The posts one run calls for, updating ``cursor.failing`` (committed only if they all go out)."""
    link = {"job": run.job, "run_id": run.run_id, "webserver_url": settings.webserver_url()}
    out = []
    for outcome in history.check_outcomes(instance, run.run_id):
        previous = cursor.failing.get(outcome.key)
        if outcome.passed:
            if previous is not None:
                del cursor.failing[outcome.key]
                out.append(messages.check_recovered(outcome.asset, outcome.check, **link))
            continue
        still_known = (
            previous is not None
            and previous["severity"] == outcome.severity
            and run.finished_at - previous["alerted_at"] < remind_after
        )
        if still_known:
            continue
        cursor.failing[outcome.key] = {"severity": outcome.severity, "alerted_at": run.finished_at}
        if not run.failed:  # a failed run's checks go out in run_failure_alert_sensor's message
            out.append(messages.check_failed(outcome.as_failure(), **link))
    return out


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: posts each failed run to Slack with every failed step's reason (for credentials, "
    "the fix) and the run's link.",
)
def run_failure_alert_sensor(context: dg.SensorEvaluationContext, slack: SlackWebhookResource):
    # A plain sensor rather than @run_failure_sensor: that one starts from "now" on its first tick and
    # owns its cursor, while this one shares the check sensor's walk and its only-after-delivery cursor.
    if not slack.configured():
        return dg.SkipReason(_NO_WEBHOOK)
    cursor = AlertCursor.load(context.cursor)
    if (wait := waiting_for_slack(cursor.not_before)) is not None:
        return wait
    cursor.not_before = None
    runs = _walk(context, cursor, (dg.DagsterEventType.RUN_FAILURE,))

    def commit(run: history.FinishedRun) -> None:
        cursor.after = run.storage_id

    delivery = deliver(runs, lambda run: [_run_failed_message(context.instance, run)], commit, slack)
    note = settle(delivery, lambda until: setattr(cursor, "not_before", until))
    return _result(cursor, delivery.posted, len(runs), note)


def _run_failed_message(instance: dg.DagsterInstance, run: history.FinishedRun) -> messages.SlackMessage:
    return messages.run_failed(
        job=run.job,
        run_id=run.run_id,
        step_failures=history.step_failures(instance, run.run_id),
        failed_checks=[o.as_failure() for o in history.check_outcomes(instance, run.run_id) if not o.passed],
        run_message=run.message,
        webserver_url=settings.webserver_url(),
    )


@dataclass
class FreshnessCursor:
    stale: dict[str, dict] = field(default_factory=dict)  # asset -> {"since", "alerted_at"}
    not_before: float | None = None

    @classmethod
    def load(cls, raw: str | None) -> FreshnessCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class FreshnessChange:
    asset: dg.AssetKey
    kind: str  # "stale" | "reminder" | "recovered"
    state: str
    since: float


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to Slack when an asset fails its freshness policy (its data is older than it should be), "
    "again every JADA_ALERT_REMIND_HOURS while it stays stale, and once when it is fresh again.",
)
def freshness_alert_sensor(context: dg.SensorEvaluationContext, slack: SlackWebhookResource):
    # Dagster's freshness daemon records each asset's state; open-source Dagster alerts on none of them.
    if not slack.configured():
        return dg.SkipReason(_NO_WEBHOOK)
    cursor = FreshnessCursor.load(context.cursor)
    if (wait := waiting_for_slack(cursor.not_before)) is not None:
        return wait
    cursor.not_before = None
    nodes = {
        n.key: n for n in context.repository_def.asset_graph.asset_nodes if n.freshness_policy is not None
    }
    changes = freshness_changes(
        context.instance.get_freshness_state_records(list(nodes)),
        sorted(nodes, key=lambda key: key.to_user_string()),
        cursor,
        now=time.time(),
        remind_after=settings.get(REMIND_HOURS_VARIABLE) * 3600,
    )

    def commit(change: FreshnessChange) -> None:
        name = change.asset.to_user_string()
        if change.kind == "recovered":
            cursor.stale.pop(name, None)
        else:
            cursor.stale[name] = {"since": change.since, "alerted_at": time.time()}

    delivery = deliver(
        changes, lambda change: [_freshness_message(context.instance, nodes, change)], commit, slack
    )
    note = settle(delivery, lambda until: setattr(cursor, "not_before", until))
    if note is None and not delivery.posted:
        stale = ", ".join(sorted(cursor.stale)) or "none"
        note = f"Nothing to post: no asset became stale or fresh again. Stale now: {stale}."
    return _result(cursor, delivery.posted, len(changes), note)


def freshness_changes(records, keys, cursor: FreshnessCursor, *, now: float, remind_after: float):
    """What to post for each asset with a policy: a new FAIL, a FAIL past its reminder, or the end of one."""
    from dagster._core.definitions.freshness import FreshnessState

    changes = []
    for key in keys:
        record = records.get(key)
        known = cursor.stale.get(key.to_user_string())
        state = record.freshness_state.value if record is not None else "UNKNOWN"
        since = record.updated_at.timestamp() if record is not None else now
        if record is not None and record.freshness_state == FreshnessState.FAIL:
            if known is None:
                changes.append(FreshnessChange(key, "stale", state, since))
            elif now - known["alerted_at"] >= remind_after:
                changes.append(FreshnessChange(key, "reminder", state, known["since"]))
        elif known is not None:
            changes.append(FreshnessChange(key, "recovered", state, since))
    return changes


def _freshness_message(instance: dg.DagsterInstance, nodes, change: FreshnessChange) -> messages.SlackMessage:
    name = change.asset.to_user_string()
    if change.kind == "recovered":
        return messages.asset_fresh_again(
            name,
            state=change.state,
            dedup_key=f"asset-fresh:{name}:{int(change.since)}",
            webserver_url=settings.webserver_url(),
        )
    latest = instance.get_latest_materialization_event(change.asset)
    window = nodes[change.asset].freshness_policy.fail_window.to_timedelta().total_seconds() / 60
    return messages.asset_stale(
        name,
        last_materialized_at=_iso(latest.timestamp) if latest is not None else None,
        minutes_late=(time.time() - latest.timestamp) / 60 if latest is not None else None,
        fail_window_minutes=window,
        reminder=change.kind == "reminder",
        dedup_key=f"asset-stale:{name}:{int(change.since)}"
        + (f":{int(time.time())}" if change.kind == "reminder" else ""),
        webserver_url=settings.webserver_url(),
    )
