"""The read-only web page of the demo (LOCAL EMULATORS): the sheet, the Slack posts and the script's steps."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler

from jada_pipelines.emulators._server import LocalServer
from jada_pipelines.emulators.demo.ports import DemoPorts
from jada_pipelines.emulators.demo.sheet import SPREADSHEET_ID, TAB
from jada_pipelines.emulators.google import GoogleEmulator
from jada_pipelines.emulators.slack import SlackWebhookEmulator
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS

SHEET_PAGE_REFRESH_S = 5


class SheetPage(LocalServer):
    """A read-only web page (LOCAL EMULATORS, not Google or Slack), reloading every few seconds: the emulated
    port sheet, the posts the Slack emulator received, and the demo script's steps, each with its time, so a
    newcomer can watch them beside the Dagster UI."""

    thread_name = "demo-sheet-page"

    def __init__(
        self,
        google: GoogleEmulator,
        slack: SlackWebhookEmulator | None = None,
        *,
        port: int = DemoPorts.page,
        steps: Callable[[], list[tuple[float, str]]] = list,
    ) -> None:
        super().__init__(port=port)
        self._google = google
        self._slack = slack
        self._steps = steps

    @property
    def url(self) -> str:
        return self.base_url + "/"

    def start(self) -> str:
        super().start()
        return self.url

    def render(self) -> str:
        rows = self._google.sheet_values(SPREADSHEET_ID, TAB, render_option="FORMATTED_VALUE")
        width = max((len(row) for row in rows), default=0)
        owned = {i for i, name in enumerate(rows[0] if rows else []) if name in DEFAULT_OWNED_COLUMNS}
        body = "".join(
            "<tr>"
            + "".join(
                f"<td{' class=owned' if i in owned else ''}>{html.escape(str(row[i]) if i < len(row) else '')}</td>"
                for i in range(width)
            )
            + "</tr>"
            for row in rows
        )
        posts = self._slack.posts() if self._slack is not None else []
        slack_items = "".join(
            f"<li class=post><time>{wall_clock(p['received_at'])}</time> {html.escape(p['text'])}</li>"
            for p in reversed(posts)
        )
        steps = "".join(
            f"<li><time>{wall_clock(at)}</time> {html.escape(text)}</li>"
            for at, text in reversed(self._steps())
        )
        return (
            f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content={SHEET_PAGE_REFRESH_S}>"
            "<title>LOCAL EMULATOR: demo port sheet and Slack posts</title>"
            "<style>body{font-family:sans-serif}td{border:1px solid #ccc;padding:2px 6px;max-width:20em;"
            "overflow:hidden;white-space:nowrap}.owned{background:#eef6ff}tr:first-child td{font-weight:bold}"
            "li{margin:4px 0}time{font-family:monospace;color:#555}</style>"
            f"<h1>LOCAL EMULATORS of Google Sheets and Slack (not Google, not Slack)</h1>"
            f"<p>Read-only, reloads every {SHEET_PAGE_REFRESH_S} s. Newest first.</p>"
            f"<h2>Slack posts ({len(posts)})</h2>"
            f"<ul id=slack>{slack_items or '<li>No post yet.</li>'}</ul>"
            f"<h2>Demo script</h2><ul id=steps>{steps or '<li>Starting.</li>'}</ul>"
            f"<h2>Port sheet</h2><p>Spreadsheet {SPREADSHEET_ID!r}, tab {TAB!r}. Blue columns belong to the "
            f"pipeline.</p><table id=sheet>{body}</table>"
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = page.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):  # the demo's terminal belongs to dagster dev
                pass

        return Handler


def wall_clock(epoch: float) -> str:
    """Local wall-clock time, as the terminal and the Dagster UI show it."""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%H:%M:%S")
