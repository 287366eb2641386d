"""The port-sheet domain: the pull, its checks, the sync job and its schedule, and the sheet settings.

The push half adds its assets and checks to the lists below.
"""

import dagster as dg

from jada_pipelines.port_sheet.assets import port_sheet_rows
from jada_pipelines.port_sheet.jobs import port_sheet_sync_job
from jada_pipelines.port_sheet.push import port_sheet_status
from jada_pipelines.port_sheet.resources import PortSheetSettings
from jada_pipelines.port_sheet.schedules import port_sheet_sync_schedule
from jada_pipelines.port_sheet.store import PortSheetStore
from jada_pipelines.port_sheet.tasks import port_sheet_tasks

ASSETS = [port_sheet_rows, port_sheet_tasks, port_sheet_status]
# port_sheet_rows_valid is declared on port_sheet_rows itself (see port_sheet/checks.py for why).
ASSET_CHECKS: list = []

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[port_sheet_sync_job],
    schedules=[port_sheet_sync_schedule],
    resources={"port_sheet": PortSheetSettings(), "port_sheet_store": PortSheetStore()},
)
