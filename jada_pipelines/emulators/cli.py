"""`jada demo ...`: look at the local emulators `make demo` runs. Imports stay inside the handlers."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from jada_pipelines.google_api.errors import CredentialsError
from jada_pipelines.settings import ConfigError

# A cell wider than this is cut, so a 20-row sheet fits a terminal.
CELL_CHARS = 28


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `jada demo sheet` and `jada demo slack` to the `jada` parser."""
    demo = subparsers.add_parser("demo", help="Look at the local emulators that `make demo` runs.")
    commands = demo.add_subparsers(dest="demo_command", required=True, metavar="DEMO_COMMAND")
    sheet = commands.add_parser(
        "sheet",
        help="Print the emulated port sheet, read over HTTP from the running demo's Google emulator.",
    )
    sheet.add_argument(
        "--state-dir",
        default=None,
        help="The demo's state directory (default: demo_state/ in the repository).",
    )
    sheet.set_defaults(func=print_sheet)
    slack = commands.add_parser(
        "slack",
        help="Print the posts the running demo's Slack emulator received, oldest first, with their local time.",
    )
    slack.add_argument(
        "--state-dir",
        default=None,
        help="The demo's state directory (default: demo_state/ in the repository).",
    )
    slack.set_defaults(func=print_slack)


def print_sheet(args: argparse.Namespace) -> int:
    # Imported here: the demo package loads the emulators, and Dagster comes with the resources; neither
    # belongs in the start of every `jada` command.
    from jada_pipelines.emulators.demo import STATE_DIR, load_demo_env
    from jada_pipelines.google_api.resources import GoogleCredentialsResource
    from jada_pipelines.port_sheet.resources import PortSheetSettings

    demo_env = load_demo_env(Path(args.state_dir) if args.state_dir else STATE_DIR)
    if not demo_env:
        raise ConfigError("no demo is running: start one with `make demo`, then run `jada demo sheet` again.")
    # Every setting comes from the demo, never the shell's environment, so this cannot read a real sheet.
    settings = PortSheetSettings(
        sheet_id=demo_env["JADA_PORT_SHEET_ID"], sheet_tab=demo_env["JADA_PORT_SHEET_TAB"]
    )
    google = GoogleCredentialsResource(
        token_file=demo_env["JADA_GOOGLE_TOKEN_FILE"],
        token_uri=demo_env["JADA_GOOGLE_TOKEN_URI"],
        sheets_api_url=demo_env["JADA_SHEETS_API_URL"],
    )
    try:
        session = google.sheets()
        try:
            from jada_pipelines.port_sheet.a1 import quote_tab

            # quote_tab doubles an apostrophe in the tab's name ("Ana's ports"), as A1 notation requires.
            response = session.values_batch_get(
                settings.spreadsheet_id, [quote_tab(settings.tab)], value_render_option="FORMATTED_VALUE"
            )
        finally:
            session.close()
    except CredentialsError as exc:
        raise ConfigError(
            f"could not read the demo sheet from {demo_env['JADA_SHEETS_API_URL']} ({exc.kind}): "
            "is `make demo` still running?"
        ) from None
    rows = response["valueRanges"][0].get("values", [])
    print(
        f"LOCAL EMULATOR of Google Sheets at {demo_env['JADA_SHEETS_API_URL']} (not Google): "
        f"spreadsheet {settings.spreadsheet_id!r}, tab {settings.tab!r}, {max(len(rows) - 1, 0)} rows"
    )
    print(format_table(rows))
    return 0


def print_slack(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    from jada_pipelines.emulators.demo import STATE_DIR, load_demo_env
    from jada_pipelines.emulators.slack import POSTS_PATH

    demo_env = load_demo_env(Path(args.state_dir) if args.state_dir else STATE_DIR)
    if not demo_env.get("SLACK_WEBHOOK_URL"):
        raise ConfigError("no demo is running: start one with `make demo`, then run `jada demo slack` again.")
    # The webhook URL's origin is the emulator's; its read-back path is the emulator's own, not Slack's.
    base = demo_env["SLACK_WEBHOOK_URL"].split("/services/", 1)[0]
    try:
        with urllib.request.urlopen(base + POSTS_PATH, timeout=10) as response:
            posts = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(
            f"could not read the demo's Slack posts from {base} ({exc}): is `make demo` still running?"
        ) from None
    print(f"LOCAL EMULATOR of a Slack incoming webhook at {base} (not Slack): {_count(len(posts), 'post')}")
    for post in posts:
        at = datetime.fromtimestamp(post["received_at"]).astimezone().isoformat(timespec="seconds")
        print(f"{at}  {post['text']}")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_table(rows: list[list[Any]]) -> str:
    """Rows as aligned text columns, each cell cut to ``CELL_CHARS``."""
    width = max((len(row) for row in rows), default=0)
    texts = [[_cut(str(row[i])) if i < len(row) else "" for i in range(width)] for row in rows]
    widths = [max(len(row[i]) for row in texts) for i in range(width)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in texts
    )


def _cut(text: str) -> str:
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
