"""Assembles the code location from the domain folders; nothing else lives here."""

import dagster as dg

from jada_pipelines.agents.definitions import defs as agents_defs
from jada_pipelines.alerts.definitions import defs as alerts_defs
from jada_pipelines.google_api.definitions import defs as google_defs
from jada_pipelines.health.definitions import defs as health_defs
from jada_pipelines.health.freshness import with_freshness
from jada_pipelines.port_sheet.definitions import defs as port_sheet_defs

# Freshness is declared for the whole code location in one table (health/freshness.py).
defs = with_freshness(
    dg.Definitions.merge(google_defs, port_sheet_defs, agents_defs, alerts_defs, health_defs)
)
