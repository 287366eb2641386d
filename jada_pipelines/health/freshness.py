"""How fresh each scheduled asset must be: Dagster freshness policies, applied where the code location is built.

Dagster 1.13's own mechanism is ``FreshnessPolicy`` (``FreshnessPolicy.time_window``) on the asset. The
daemon's FRESHNESS_DAEMON (on by default; ``freshness: enabled: false`` in dagster.yaml turns it off)
re-evaluates every asset with a policy about every 30 s and records PASS / WARN / FAIL, and the UI shows
the state and the time of the last materialization on the asset. The older last-update freshness checks
(``build_last_update_freshness_checks`` with ``build_sensor_for_freshness_checks``) still work in 1.13 but
are marked superseded by these policies and need a sensor of their own, so they are not used.

Open-source Dagster sends no alert for a freshness state; ``freshness_alert_sensor`` (alerts/) reads the
states and posts a FAIL once, with a reminder and a recovery, like every other alert.

The policies live here, not on each asset, so one table states every expectation, and a domain's assets
(``port_sheet/``) stay as their owners wrote them.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

# Synced every 30 minutes by port_sheet_sync_schedule. One late or failed sync is a WARN after 35 minutes;
# the data is stale (FAIL, posted to Slack) once it is 45 minutes old: the sync due 15 minutes ago
# has not landed.
PORT_SHEET_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=45), warn_window=timedelta(minutes=35)
)
# Graded every 5 minutes by agent_task_queue_schedule: stale when two grades in a row are missing.
AGENT_TASK_QUEUE_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=12), warn_window=timedelta(minutes=7)
)

POLICIES: dict[str, dg.FreshnessPolicy] = {
    "port_sheet_rows": PORT_SHEET_POLICY,
    "port_sheet_tasks": PORT_SHEET_POLICY,
    "port_sheet_status": PORT_SHEET_POLICY,
    "agent_task_queue": AGENT_TASK_QUEUE_POLICY,
}


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = POLICIES.get(spec.key.to_user_string())
    return spec if policy is None else dg.apply_freshness_policy(spec, policy)


def with_freshness(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with each asset named in ``POLICIES`` carrying its freshness policy.

    ``dg.map_asset_specs`` over the assets, then the same Definitions around them: ``Definitions.map_asset_specs``
    would do both in one call but is a preview API in 1.13 and warns on every load of the code location.
    """
    return dg.Definitions(
        assets=dg.map_asset_specs(_apply, list(defs.assets or [])),
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
    )
