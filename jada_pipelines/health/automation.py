"""Which of our schedules and sensors someone turned off (plain reads of the Dagster instance).

A schedule or sensor declared ``default_status=RUNNING`` runs until someone stops it in the UI; Dagster
then stores its state as STOPPED. Nothing in Dagster says so anywhere else, and a stopped
``port_sheet_sync_schedule`` looks exactly like a quiet day, so the audit names every stopped one. The names
to watch come from the caller (``running_by_default(defs)``), never from an import of the code location.
"""

from __future__ import annotations

import dagster as dg


def stopped(instance: dg.DagsterInstance, names: set[str]) -> list[str]:
    """The schedules and sensors among ``names`` whose stored state is STOPPED, sorted."""
    from dagster._core.scheduler.instigation import InstigatorStatus

    states = instance.all_instigator_state(instigator_statuses={InstigatorStatus.STOPPED})
    return sorted({state.instigator_name for state in states if state.instigator_name in names})


def running_by_default(defs: dg.Definitions) -> set[str]:
    """Names of the schedules and sensors in ``defs`` that are meant to run unless someone stops them.

    The caller passes the assembled code location (the CLI does), so this module never imports it.
    """
    repo = defs.get_repository_def()
    schedules = {s.name for s in repo.schedule_defs if s.default_status == dg.DefaultScheduleStatus.RUNNING}
    sensors = {s.name for s in repo.sensor_defs if s.default_status == dg.DefaultSensorStatus.RUNNING}
    return schedules | sensors
