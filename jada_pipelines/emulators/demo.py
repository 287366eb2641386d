"""`make demo`: the whole loop on one machine, against LOCAL EMULATORS of Google and Anthropic (not the real services).

It starts the Google emulator (OAuth + Sheets v4) and the Anthropic emulator (a scripted stand-in, no model)
on 127.0.0.1, seeds a port sheet of 21 rows (one without an id, which the pull quarantines; seven ask for agent work; one of them carries the emulator's
turn-cap marker, so its session hits the 30-turn cap and hands off), writes a demo token file and a demo
DAGSTER_HOME under ``demo_state/`` (linked to the repository's dagster.yaml, so the 5-session limit holds),
and runs ``dagster dev`` wired to the emulators. While it runs, the demo launches ``port_sheet_sync_job``
every minute (the real schedule's 30 minutes would hide the loop). The emulators stop when ``dagster dev``
exits.

``jada demo sheet`` prints the emulated sheet while the demo runs (see ``docs/demo.md``).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING

from jada_pipelines.emulators._server import LocalServer
from jada_pipelines.emulators.anthropic import DEMO_TURN_CAP, AnthropicEmulator
from jada_pipelines.emulators.google import Formula, GoogleEmulator
from jada_pipelines.port_sheet.resources import DEFAULT_OWNED_COLUMNS

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / "demo_state"
# Fixed so the printed URLs stay valid from one demo to the next; change them here if they are taken.
GOOGLE_PORT = 8765
ANTHROPIC_PORT = 8766
SPREADSHEET_ID = "demo-port-sheet"
TAB = "Ports"
ENV_FILE = "demo.env"
# Long enough that sessions visibly overlap in the UI, and the 5-at-once limit shows.
ANTHROPIC_DELAY_S = 1.0
SHEET_PAGE_PORT = 8767
SHEET_PAGE_REFRESH_S = 5
WEBSERVER_PORT = 3000
# The real schedule syncs every 30 minutes; the demo launches the same job this often so the loop shows.
DEMO_SYNC_INTERVAL_S = 60

HEADER = [
    "id",
    "port",
    "country",
    "owner",
    "berths",
    "notes",
    "task",
    *DEFAULT_OWNED_COLUMNS,
]
_PORTS = [
    ("P001", "Lisbon", "PT", "ana", 12),
    ("P002", "Rotterdam", "NL", "bram", 42),
    ("P003", "Hamburg", "DE", "clara", 30),
    ("P004", "Antwerp", "BE", "bram", 35),
    ("P005", "Valencia", "ES", "diego", 18),
    ("P006", "Piraeus", "GR", "eleni", 16),
    ("P007", "Gdansk", "PL", "filip", 9),
    ("P008", "Genoa", "IT", "giulia", 14),
    ("P009", "Marseille", "FR", "hugo", 11),
    ("P010", "Felixstowe", "GB", "isla", 8),
    ("P011", "Algeciras", "ES", "diego", 10),
    ("P012", "Le Havre", "FR", "hugo", 13),
    ("P013", "Bremerhaven", "DE", "clara", 15),
    ("P014", "Gothenburg", "SE", "johan", 7),
    ("P015", "Aarhus", "DK", "johan", 6),
    ("P016", "Koper", "SI", "eleni", 5),
    ("P017", "Constanta", "RO", "filip", 9),
    ("P018", "Sines", "PT", "ana", 4),
    ("P019", "Tallinn", "EE", "johan", 3),
    ("P020", "Riga", "LV", "johan", 4),
    # Someone forgot the id: the pull sets this row aside and its check says so.
    ("", "Bilbao", "ES", "diego", 7),
]
_TASKS = {
    "P002": "Summarise this week's berth schedule changes for Rotterdam.",
    "P003": "Check the Hamburg tide table links in the wiki still work.",
    "P005": "Draft a short note on Valencia's new gate opening hours.",
    "P008": "List Genoa vessel calls with missing ETAs.",
    "P011": "Compare Algeciras crane counts with last quarter.",
    "P013": "Find duplicate contacts for Bremerhaven.",
    "P017": f"{DEMO_TURN_CAP} Reconcile every Constanta invoice since 2019 (a long job: it hits the turn cap).",
}


def seed_rows() -> list[list]:
    """The demo port sheet: a header, 21 ports (one without an id), a formula people own, a few rows asking for work."""
    rows: list[list] = [list(HEADER)]
    for row_number, (key, port, country, owner, berths) in enumerate(_PORTS, start=2):
        notes = Formula(f'=CONCATENATE(B{row_number}, " (", C{row_number}, ")")', f"{port} ({country})")
        rows.append([key, port, country, owner, berths, notes, _TASKS.get(key, "")])
    return rows


class SheetPage(LocalServer):
    """A read-only web page of the emulated port sheet (LOCAL EMULATOR, not Google), reloading every few
    seconds, so a newcomer can watch the status columns fill in beside the Dagster UI."""

    thread_name = "demo-sheet-page"

    def __init__(self, google: GoogleEmulator, *, port: int = SHEET_PAGE_PORT) -> None:
        super().__init__(port=port)
        self._google = google

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
        return (
            f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content={SHEET_PAGE_REFRESH_S}>"
            "<title>LOCAL EMULATOR: demo port sheet</title>"
            "<style>body{font-family:sans-serif}td{border:1px solid #ccc;padding:2px 6px;max-width:20em;"
            "overflow:hidden;white-space:nowrap}.owned{background:#eef6ff}tr:first-child td{font-weight:bold}</style>"
            f"<h1>LOCAL EMULATOR of Google Sheets (not Google)</h1><p>Spreadsheet {SPREADSHEET_ID!r}, tab {TAB!r}, "
            f"read-only, reloads every {SHEET_PAGE_REFRESH_S} s. Blue columns belong to the pipeline.</p>"
            f"<table>{body}</table>"
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


@dataclass
class DemoEmulators:
    """The running stand-ins, the sheet page, and the environment that points the product at them."""

    google: GoogleEmulator
    anthropic: AnthropicEmulator
    page: SheetPage
    env: dict[str, str]
    state_dir: Path

    def stop(self) -> None:
        """Stop everything and remove ``demo.env``, so `jada demo sheet` knows no demo is running."""
        self.page.stop()
        self.anthropic.stop()
        self.google.stop()
        (self.state_dir / ENV_FILE).unlink(missing_ok=True)


def start_emulators(
    state_dir: Path = STATE_DIR,
    *,
    google_port: int = GOOGLE_PORT,
    anthropic_port: int = ANTHROPIC_PORT,
    page_port: int = SHEET_PAGE_PORT,
) -> DemoEmulators:
    """Start both emulators and the sheet page, seed the sheet, write the token file and ``demo.env``; the
    caller stops them (a port already taken stops what had started and raises ``OSError``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as started:
        google = GoogleEmulator(port=google_port)
        google.start()
        started.callback(google.stop)
        anthropic = AnthropicEmulator(delay_s=ANTHROPIC_DELAY_S, port=anthropic_port)
        anthropic.start()
        started.callback(anthropic.stop)
        page = SheetPage(google, port=page_port)
        page.start()
        started.pop_all()  # all three listen: from here on the caller stops them
    google.set_sheet(SPREADSHEET_ID, TAB, seed_rows())
    token_file = state_dir / "google-token.json"
    token_file.write_text(json.dumps(google.authorized_user_info(consented_at=datetime.now(UTC).isoformat())))
    token_file.chmod(0o600)
    env = {
        "JADA_GOOGLE_TOKEN_FILE": str(token_file),
        "JADA_GOOGLE_TOKEN_URI": google.token_uri,
        "JADA_SHEETS_API_URL": google.base_url,
        "JADA_PORT_SHEET_ID": SPREADSHEET_ID,
        "JADA_PORT_SHEET_TAB": TAB,
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        # The emulator accepts any key; this one only marks the demo in its request log.
        "ANTHROPIC_API_KEY": "demo-key-for-the-local-emulator",
    }
    env_file = state_dir / ENV_FILE
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    env_file.chmod(0o600)
    return DemoEmulators(google=google, anthropic=anthropic, page=page, env=env, state_dir=state_dir)


def load_demo_env(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """The environment a running demo wrote; empty when no demo has run."""
    path = state_dir / ENV_FILE
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _fresh_dagster_home(state_dir: Path) -> Path:
    """An empty DAGSTER_HOME linked to the repository's dagster.yaml: each demo starts from a new sheet, so
    an old queue or run history would show work the new sheet never asked for."""
    home = state_dir / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    return home


def launch_syncs(client: DagsterGraphQLClient, stop: threading.Event, *, interval_s: float) -> None:
    """Launch port_sheet_sync_job through the webserver's GraphQL API every ``interval_s`` until ``stop``.

    It stands in for the 30-minute schedule (which also stays on), so a newcomer sees the pull, the tasks
    and the status columns move within minutes. Until the webserver answers, it waits and tries again.
    """
    from dagster_graphql import DagsterGraphQLClientError
    from requests.exceptions import ConnectionError as WebserverDown

    wait_s = 5.0
    while not stop.wait(wait_s):
        try:
            run_id = client.submit_job_execution("port_sheet_sync_job", tags={"jada/demo": "1"})
        except (WebserverDown, DagsterGraphQLClientError) as exc:
            # dagster dev is still loading the code location: normal for the first half minute.
            print(f"demo: port_sheet_sync_job not launched yet ({type(exc).__name__}); retrying.", flush=True)
            wait_s = 5.0
            continue
        print(f"demo: launched port_sheet_sync_job, run {run_id}", flush=True)
        wait_s = interval_s


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    try:
        demo = start_emulators()
    except OSError as exc:
        print(
            f"make demo: could not listen on 127.0.0.1:{GOOGLE_PORT}/{ANTHROPIC_PORT}/{SHEET_PAGE_PORT} "
            f"({exc.strerror}). Stop the other demo, or change GOOGLE_PORT/ANTHROPIC_PORT/SHEET_PAGE_PORT in "
            "jada_pipelines/emulators/demo.py.",
            file=sys.stderr,
        )
        return 1
    home = _fresh_dagster_home(STATE_DIR)
    print(
        "LOCAL EMULATORS (stand-ins, not Google or Anthropic):\n"
        f"  Google OAuth + Sheets v4  {demo.google.base_url}  (spreadsheet {SPREADSHEET_ID!r}, tab {TAB!r})\n"
        f"  Anthropic Messages API    {demo.anthropic.base_url}  (scripted demo agent, no model)\n"
        f"  The emulated sheet, read-only: {demo.page.url}\n"
        f"DAGSTER_HOME={home}\n"
        f"Open http://localhost:{WEBSERVER_PORT}, then see docs/demo.md. The demo launches port_sheet_sync_job every "
        f"{DEMO_SYNC_INTERVAL_S} s. Print the sheet with: .venv/bin/jada demo sheet\n",
        flush=True,
    )
    env = {**os.environ, **demo.env, "DAGSTER_HOME": str(home)}
    env.pop("JADA_DATA_DIR", None)  # the demo's queue and store live in its own DAGSTER_HOME
    from dagster_graphql import DagsterGraphQLClient

    dagster = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-p",
            str(WEBSERVER_PORT),
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    stop = threading.Event()
    syncs = threading.Thread(
        target=launch_syncs,
        args=(DagsterGraphQLClient("127.0.0.1", port_number=WEBSERVER_PORT, timeout=30), stop),
        kwargs={"interval_s": DEMO_SYNC_INTERVAL_S},
        name="demo-syncs",
        daemon=True,
    )
    syncs.start()
    # `kill` (SIGTERM) winds the demo down like Ctrl-C, instead of leaving dagster dev without its emulators.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches dagster dev too (same process group), and it stops its webserver and
        # daemon by itself; a SIGINT sent to this process alone is passed on after a grace period.
        try:
            return dagster.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dagster.send_signal(signal.SIGINT)
            return dagster.wait()
    finally:
        stop.set()
        syncs.join(timeout=35)
        demo.stop()
        print("Demo emulators stopped.")


if __name__ == "__main__":
    sys.exit(main())
