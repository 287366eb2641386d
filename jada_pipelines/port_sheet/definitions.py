"""The port-sheet domain: the pull, the tasks and the push, their checks, the pull's job and schedule, the
push's job and the sensor that starts it after each pull, and the sheet's resources."""

import dagster as dg

from jada_pipelines.port_sheet.assets import port_sheet_rows, port_sheet_status, port_sheet_tasks
from jada_pipelines.port_sheet.jobs import port_sheet_push_job, port_sheet_sync_job
from jada_pipelines.port_sheet.resources import PortSheetSettings, PortSheetStore
from jada_pipelines.port_sheet.schedules import port_sheet_sync_schedule
from jada_pipelines.port_sheet.sensors import port_sheet_push_sensor

# Every check is declared on its asset (see port_sheet/checks.py for why), so there is no asset_checks list.
ASSETS = [port_sheet_rows, port_sheet_tasks, port_sheet_status]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[port_sheet_sync_job, port_sheet_push_job],
    schedules=[port_sheet_sync_schedule],
    sensors=[port_sheet_push_sensor],
    resources={"port_sheet": PortSheetSettings(), "port_sheet_store": PortSheetStore()},
)
