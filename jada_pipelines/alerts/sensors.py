"""Sensors that post failed asset checks and failed runs to Slack, each failure once.

Both walk finished runs by storage id. A cursor only moves past a run once every post for it succeeded:
a failed post fails the tick and leaves the cursor where it was, so a crash can repeat an alert (the dedup
key in each message shows it) but never lose one.

Who posts what, so a failure reaches Slack once and not twice:
- ``run_failure_alert_sensor``: every failed run, with each failed step's reason and the run's failed checks
  (a failing blocking check fails its run, so it is announced here).
- ``asset_check_alert_sensor``: failed checks in runs that did not fail (non-blocking checks, any
  severity), and a recovery message when a failing check passes again, whatever the run's outcome.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import dagster as dg

from jada_pipelines import settings
from jada_pipelines.alerts import history, messages
from jada_pipelines.alerts.resources import WEBHOOK_VARIABLE, SlackWebhookResource

# On its first tick a sensor looks back this far, instead of replaying the instance's whole history.
FIRST_TICK_LOOKBACK_SECONDS = 24 * 3600
# A check that keeps failing at the same severity is re-posted after this many hours, not on every run.
REMIND_HOURS_VARIABLE = "JADA_ALERT_REMIND_HOURS"
# Paced at one post a second, this keeps a tick well inside the daemon's 60 s sensor timeout; what is
# left goes out on the next tick.
MAX_POSTS_PER_TICK = 15
DEFAULT_REMIND_HOURS = 6

_NO_WEBHOOK = (
    f"{WEBHOOK_VARIABLE} is not set, so no alert can be posted: set it to a Slack incoming-webhook URL "
    "(in .env for `dagster dev`) and this sensor will post failures from the last 24 hours."
)


@dataclass
class AlertCursor:
    after: int | None = None  # storage id of the last run whose alerts were all delivered
    failing: dict[str, dict] = field(default_factory=dict)  # check key -> {"severity", "alerted_at"}

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


def _result(cursor: AlertCursor, posted: int, runs: int) -> dg.SensorResult:
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
    remind_after = settings.env_int(REMIND_HOURS_VARIABLE, DEFAULT_REMIND_HOURS) * 3600
    statuses = (
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.RUN_FAILURE,
        dg.DagsterEventType.RUN_CANCELED,
    )
    runs = _walk(context, cursor, statuses)
    posted = 0
    for run in runs:
        if posted >= MAX_POSTS_PER_TICK:
            break
        for message in _check_messages(context.instance, run, cursor, remind_after):
            slack.post(message)
            posted += 1
        cursor.after = run.storage_id
    return _result(cursor, posted, len(runs))


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
    runs = _walk(context, cursor, (dg.DagsterEventType.RUN_FAILURE,))[:MAX_POSTS_PER_TICK]
    for run in runs:
        slack.post(
            messages.run_failed(
                job=run.job,
                run_id=run.run_id,
                step_failures=history.step_failures(context.instance, run.run_id),
                failed_checks=[
                    o.as_failure()
                    for o in history.check_outcomes(context.instance, run.run_id)
                    if not o.passed
                ],
                run_message=run.message,
                webserver_url=settings.webserver_url(),
            )
        )
        cursor.after = run.storage_id
    return _result(cursor, len(runs), len(runs))
