"""``port_sheet_push_sensor``: one push after each pull that materialized (see ``jobs.py`` for why the push
is its own run). A failed pull materializes nothing, so no push is planned and nothing of it turns red."""

import dagster as dg

from jada_pipelines.port_sheet.jobs import port_sheet_push_job

# The pull this push follows, on the push's run (the run's page links it back to the sync).
PULL_RUN_TAG = "jada/pull-run"


# job_name rather than job=: binding the job object makes Dagster 1.13 copy it with owners=[] when it attaches
# the Definitions' resources, which logs a BetaWarning on every load of the code location.
@dg.asset_sensor(
    asset_key=dg.AssetKey("port_sheet_rows"),
    job_name=port_sheet_push_job.name,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each pull that materialized port_sheet_rows, starts port_sheet_push_job once: the tasks "
    "the sheet asks for, then the status written back.",
)
def port_sheet_push_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    # A pull run materializes port_sheet_rows once: its run id as the run key gives each pull exactly one push.
    return dg.RunRequest(
        run_key=f"after-pull:{asset_event.run_id}",
        tags={PULL_RUN_TAG: asset_event.run_id},
    )
