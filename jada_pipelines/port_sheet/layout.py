"""The columns the pipeline owns in the port sheet, by their default names (plain Python, no import).

Its own module so that the resources, the push engine and the demo can all name them without importing the
push engine (the port_sheet resource may rename them: ``push.column_names``).
"""

# The owned columns, by their default names.
DEFAULT_OWNED_COLUMNS = (
    "agent_status",
    "agent_turns",
    "agent_cost_usd",
    "agent_summary",
    "agent_updated_at",
    "sync_issue",
)
# The owned column that says why the pull quarantined a row.
SYNC_ISSUE = "sync_issue"
