"""Reading finished runs and their check and step events out of the Dagster instance, for the alert sensors.

The default SQLite event storage is sharded by run and rejects plain integer cursors over all events, so
the sensors walk run status changes (which live in the shared index shard and do take a storage id), then
read each run's own events.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from jada_pipelines.alerts.messages import FailedCheck

# Per status and per tick: bounds one tick's posts (and the repeats a failed tick can cause).
RUNS_PER_TICK = 25


@dataclass(frozen=True)
class FinishedRun:
    storage_id: int
    run_id: str
    job: str
    failed: bool
    finished_at: float
    message: str


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    severity: str
    description: str
    blocking: bool

    @property
    def key(self) -> str:
        return f"{self.asset}:{self.check}"

    def as_failure(self) -> FailedCheck:
        return FailedCheck(self.asset, self.check, self.severity, self.description, self.blocking)


def finished_runs(
    instance: dg.DagsterInstance,
    statuses: tuple[dg.DagsterEventType, ...],
    *,
    after_storage_id: int | None,
    after_timestamp: float | None = None,
) -> list[FinishedRun]:
    """Runs that reached one of ``statuses`` after the cursor (a storage id, else a time), oldest first.

    When one status has more records than fit in a tick, the walk stops before its first unread record, so
    a later tick cannot skip it because a record of another status had a higher storage id.
    """
    records, stop_at = [], None
    for status in statuses:
        page = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=status, after_storage_id=after_storage_id, after_timestamp=after_timestamp
            ),
            limit=RUNS_PER_TICK,
            ascending=True,
        )
        records += page.records
        if page.has_more and page.records:
            last = page.records[-1].storage_id
            stop_at = last if stop_at is None else min(stop_at, last)
    records = sorted(
        (r for r in records if stop_at is None or r.storage_id <= stop_at), key=lambda r: r.storage_id
    )
    return [
        FinishedRun(
            storage_id=r.storage_id,
            run_id=r.event_log_entry.run_id,
            job=r.event_log_entry.job_name or "",
            failed=r.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE,
            finished_at=r.event_log_entry.timestamp,
            message=r.event_log_entry.dagster_event.message or "",
        )
        for r in records
    ]


def check_outcomes(instance: dg.DagsterInstance, run_id: str) -> list[CheckOutcome]:
    """Every asset-check evaluation recorded in the run, in the order they happened."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    outcomes = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        outcomes.append(
            CheckOutcome(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                description=evaluation.description or "",
                blocking=bool(evaluation.blocking),
            )
        )
    return outcomes


def step_failures(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, reason) for each failed step; the reason is the ``dg.Failure`` description when there is one."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    failures = []
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data
        user = data.user_failure_data
        reason = user.description if user is not None and user.description else _error_text(data.error)
        failures.append((event.step_key or "?", reason))
    return failures


def _error_text(error) -> str:
    if error is None:
        return "the step failed without an error message"
    # A wrapped user-code error carries the useful text in its cause.
    while error.cause is not None and error.message.startswith("dagster._core.errors."):
        error = error.cause
    return error.message.strip()
