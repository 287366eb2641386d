"""jada-pipelines: a Dagster code location for Claude agent tasks and the port-sheet sync."""
