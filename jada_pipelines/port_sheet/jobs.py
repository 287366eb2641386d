"""``port_sheet_sync_job``: pull the port sheet, queue the work it asks for, and push the status back."""

import dagster as dg

port_sheet_sync_job = dg.define_asset_job(
    "port_sheet_sync_job",
    selection=dg.AssetSelection.groups("port_sheet"),
    description="One sync of the port sheet: pull it, queue the work it asks for, push the status back; run by "
    "port_sheet_sync_schedule every 30 minutes (and by `make demo` every minute).",
)
