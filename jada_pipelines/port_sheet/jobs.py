"""The port sheet's two jobs: the pull (``port_sheet_sync_job``, every 30 minutes) and the push
(``port_sheet_push_job``, started by ``port_sheet_push_sensor`` after each pull that materializes).

Why two runs, not one: a run plans every check of every asset it selects, and Dagster 1.13 shows a planned
check with no result in a failed run as "Execution failed" (``AssetCheckExecutionRecord.resolve_status``),
and a planned asset that was never materialized as failed. In one run, a pull that fails on its credentials
showed the push's two checks red and all three assets failed: one cause, five reds. A push that is only
planned once the pull has materialized leaves the credentials check, the failed run and port_sheet_rows as
the only reds.
"""

import dagster as dg

port_sheet_sync_job = dg.define_asset_job(
    "port_sheet_sync_job",
    selection=dg.AssetSelection.assets("port_sheet_rows"),
    description="Pull the port sheet and check it (google_credentials_fresh, port_sheet_rows_valid); run by "
    "port_sheet_sync_schedule every 30 minutes (and by `make demo` every minute). When the pull materializes, "
    "port_sheet_push_sensor starts port_sheet_push_job.",
)

port_sheet_push_job = dg.define_asset_job(
    "port_sheet_push_job",
    selection=dg.AssetSelection.assets("port_sheet_tasks", "port_sheet_status"),
    description="Queue the work the last pull asks for, then push each row's status back into the sheet; "
    "started by port_sheet_push_sensor once per materialized pull.",
)
