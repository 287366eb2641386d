"""`jada health`: the audit report. Keep imports inside the handler: every `jada` command loads this."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `jada health` to the `jada` parser."""
    parser = subparsers.add_parser(
        "health",
        help="print the health audit (daemon, runs, failures, queue, sessions, cost, Google token, disk)",
        description="Print the health audit. Exits 1 when any section is at ERROR, else 0.",
    )
    parser.add_argument("--json", action="store_true", help="print the audit as JSON instead of text")
    parser.set_defaults(func=run_health)


def run_health(args: argparse.Namespace) -> int:
    import json
    import time

    import dagster as dg

    from jada_pipelines.health.audit import build_audit, render_text
    from jada_pipelines.settings import dagster_home

    dagster_home()  # a clear ConfigError before Dagster's own message about DAGSTER_HOME
    with dg.DagsterInstance.get() as instance:
        audit = build_audit(instance, now=time.time())
    print(json.dumps(audit, indent=2, default=str) if args.json else render_text(audit))
    return 1 if audit["overall"] == "ERROR" else 0
