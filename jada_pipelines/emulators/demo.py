"""`make demo`: the whole story on one machine, against LOCAL EMULATORS of Google, Anthropic and a Slack
webhook (stand-ins on 127.0.0.1, not the real services).

It checks every port it needs is free (and exits naming the one that is not), starts the emulators and a
read-only page of the sheet and of the Slack posts, seeds a port sheet of 21 rows (one without an id, which
the pull quarantines; seven ask for agent work; P017 carries the emulator's turn-cap marker, so its session
hits the 30-turn cap and hands off), writes a demo token file and a fresh DAGSTER_HOME under the state
directory (linked to the repository's dagster.yaml, so the 5-session limit holds), and runs ``dagster dev``
wired to the emulators. Then the demo's script (``DemoStory``) plays, on a clock a person can follow:

1. the sheet loop: ``port_sheet_sync_job`` every minute (the real schedule's 30 minutes would hide it);
2. after a few syncs, a revocation: the Google emulator answers ``invalid_grant``, as when someone removes
   the app's access. The next sync fails its blocking check ``google_credentials_fresh`` and its run, and
   ``run_failure_alert_sensor`` posts one alert, with the fix and the run's link, to the Slack emulator;
3. a re-consent with ``jada auth google`` against the emulator's consent screen (the demo plays the browser);
   the next sync passes, and ``asset_check_alert_sensor`` posts the recovery.

The demo only talks to the webserver it started: before its first launch it checks that the webserver on
its port serves the demo's own DAGSTER_HOME, and it stops if ``dagster dev`` exits.

``jada demo sheet`` and ``jada demo slack`` print the sheet and the Slack posts (see ``docs/demo.md``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING

from jada_pipelines.emulators._server import LocalServer
from jada_pipelines.emulators.anthropic import DEMO_TURN_CAP, AnthropicEmulator
from jada_pipelines.emulators.google import Formula, GoogleEmulator
from jada_pipelines.emulators.slack import SlackWebhookEmulator
from jada_pipelines.port_sheet.resources import DEFAULT_OWNED_COLUMNS

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / "demo_state"
SPREADSHEET_ID = "demo-port-sheet"
TAB = "Ports"
ENV_FILE = "demo.env"
# Long enough that sessions visibly overlap in the UI, and the 5-at-once limit shows.
ANTHROPIC_DELAY_S = 1.0
SHEET_PAGE_REFRESH_S = 5
# The real schedule syncs every 30 minutes; the demo launches the same job this often so the loop shows.
DEMO_SYNC_INTERVAL_S = 60
# P017 waits this long between its attempts (JADA_AGENT_CONTINUE_DELAY_SECONDS): longer than a sync interval,
# so a sync writes `incomplete` to the sheet before the next attempt makes it `dispatched` again.
DEMO_CONTINUE_DELAY_S = 90
# Syncs before the scripted revocation: long enough for the sessions to finish and P017 to hit its cap.
REVOKE_AFTER_SYNCS = 4
# Time to look at the failure (the red check, the failed run, the Slack post) before the re-consent.
RECONSENT_AFTER_S = 60
# How long the script waits for a run to finish, or for an alert to reach Slack, before saying so.
RUN_TIMEOUT_S = 300
ALERT_TIMEOUT_S = 180
WEBSERVER_TIMEOUT_S = 300


@dataclass(frozen=True)
class DemoPorts:
    """Every port the demo listens on, all on 127.0.0.1; each is a `make demo` setting (see ``docs/demo.md``)."""

    webserver: int = 3000
    google: int = 8765
    anthropic: int = 8766
    page: int = 8767
    slack: int = 8768

    def named(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The make/CLI option that sets each port, for the message that names a taken one.
PORT_OPTIONS = {
    "webserver": "PORT",
    "google": "GOOGLE_PORT",
    "anthropic": "ANTHROPIC_PORT",
    "page": "PAGE_PORT",
    "slack": "SLACK_PORT",
}


def port_problems(ports: DemoPorts, host: str = "127.0.0.1") -> list[str]:
    """A sentence for each port that is shared between two settings or cannot be listened on; empty when all
    are free. Run before anything starts, so a taken port stops the demo instead of half-starting it."""
    problems = []
    seen: dict[int, str] = {}
    for name, port in ports.named().items():
        if port in seen:
            problems.append(
                f"{PORT_OPTIONS[name]}={port} is also {PORT_OPTIONS[seen[port]]}: give each its own port."
            )
            continue
        seen[port] = name
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT after the last demo counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            problems.append(
                f"port {port} ({PORT_OPTIONS[name]}, the {name}) is taken ({exc.strerror}): stop the program "
                f"using it (`ss -ltnp 'sport = :{port}'` shows which), or choose another, e.g. "
                f"`make demo {PORT_OPTIONS[name]}={port + 100}`."
            )
        finally:
            probe.close()
    return problems


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
            f"<li class=post><time>{_clock(p['received_at'])}</time> {html.escape(p['text'])}</li>"
            for p in reversed(posts)
        )
        steps = "".join(
            f"<li><time>{_clock(at)}</time> {html.escape(text)}</li>" for at, text in reversed(self._steps())
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


def _clock(epoch: float) -> str:
    """Local wall-clock time, as the terminal and the Dagster UI show it."""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%H:%M:%S")


@dataclass
class DemoEmulators:
    """The running stand-ins, the page, and the environment that points the product at them."""

    google: GoogleEmulator
    anthropic: AnthropicEmulator
    slack: SlackWebhookEmulator
    page: SheetPage
    env: dict[str, str]
    state_dir: Path
    steps: list[tuple[float, str]] = field(default_factory=list)

    @property
    def token_file(self) -> Path:
        return Path(self.env["JADA_GOOGLE_TOKEN_FILE"])

    @property
    def client_secrets_file(self) -> Path:
        return self.state_dir / "client_secret.json"

    def stop(self) -> None:
        """Stop everything and remove ``demo.env``, so `jada demo sheet` knows no demo is running."""
        self.page.stop()
        self.slack.stop()
        self.anthropic.stop()
        self.google.stop()
        (self.state_dir / ENV_FILE).unlink(missing_ok=True)


def start_emulators(state_dir: Path = STATE_DIR, ports: DemoPorts | None = None) -> DemoEmulators:
    """Start the emulators and the page, seed the sheet, write the token file and ``demo.env``; the caller
    stops them (a port already taken stops what had started and raises ``OSError``). Ports of 0 pick free
    ones (tests)."""
    ports = ports or DemoPorts()
    state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as started:
        google = GoogleEmulator(port=ports.google)
        google.start()
        started.callback(google.stop)
        anthropic = AnthropicEmulator(delay_s=ANTHROPIC_DELAY_S, port=ports.anthropic)
        anthropic.start()
        started.callback(anthropic.stop)
        slack = SlackWebhookEmulator(port=ports.slack)
        slack.start()
        started.callback(slack.stop)
        steps: list[tuple[float, str]] = []
        page = SheetPage(google, slack, port=ports.page, steps=lambda: list(steps))
        page.start()
        started.pop_all()  # all listen: from here on the caller stops them
    google.set_sheet(SPREADSHEET_ID, TAB, seed_rows())
    token_file = state_dir / "google-token.json"
    token_file.write_text(json.dumps(google.authorized_user_info(consented_at=datetime.now(UTC).isoformat())))
    token_file.chmod(0o600)
    # What a person downloads from the Google Cloud console for `jada auth google`, pointed at the emulator.
    (state_dir / "client_secret.json").write_text(json.dumps(google.client_config()))
    env = {
        "JADA_GOOGLE_TOKEN_FILE": str(token_file),
        "JADA_GOOGLE_TOKEN_URI": google.token_uri,
        "JADA_SHEETS_API_URL": google.base_url,
        "JADA_PORT_SHEET_ID": SPREADSHEET_ID,
        "JADA_PORT_SHEET_TAB": TAB,
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        # The emulator accepts any key; this one only marks the demo in its request log.
        "ANTHROPIC_API_KEY": "demo-key-for-the-local-emulator",
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "JADA_WEBSERVER_URL": f"http://127.0.0.1:{ports.webserver}",
        "JADA_AGENT_CONTINUE_DELAY_SECONDS": str(DEMO_CONTINUE_DELAY_S),
        # `set -a; . demo_state/demo.env; set +a` then points `jada` at the demo's own instance too.
        "DAGSTER_HOME": str(state_dir / "dagster_home"),
    }
    env_file = state_dir / ENV_FILE
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    env_file.chmod(0o600)
    return DemoEmulators(
        google=google, anthropic=anthropic, slack=slack, page=page, env=env, state_dir=state_dir, steps=steps
    )


def load_demo_env(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """The environment a running demo wrote; empty when no demo has run."""
    path = state_dir / ENV_FILE
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _fresh_dagster_home(state_dir: Path) -> Path:
    """An empty DAGSTER_HOME linked to the repository's instance/dagster.yaml: each demo starts from a new sheet, so
    an old queue or run history would show work the new sheet never asked for."""
    home = state_dir / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    from tests.fixtures.local_daemon import INSTANCE_CONFIG

    (home / "dagster.yaml").symlink_to(INSTANCE_CONFIG)
    return home


class DemoStopped(Exception):
    """The demo was stopped (Ctrl-C), or ``dagster dev`` exited, while the script waited."""


class DemoStory:
    """The demo's script: the sheet loop, a revocation, the failure and its alert, a re-consent, the recovery.

    Every step is printed and kept in ``demo.steps`` (the page shows them). Runs go only to the webserver this
    demo started: ``wait_for_own_webserver`` checks that it serves the demo's DAGSTER_HOME first.
    """

    def __init__(
        self,
        demo: DemoEmulators,
        client: DagsterGraphQLClient,
        *,
        home: Path,
        stop: threading.Event,
        dagster_alive: Callable[[], bool],
        sync_interval_s: float = DEMO_SYNC_INTERVAL_S,
        revoke_after_syncs: int = REVOKE_AFTER_SYNCS,
        reconsent_after_s: float = RECONSENT_AFTER_S,
    ) -> None:
        self.demo = demo
        self.client = client
        self.home = home
        self.stop = stop
        self.dagster_alive = dagster_alive
        self.sync_interval_s = sync_interval_s
        self.revoke_after_syncs = revoke_after_syncs
        self.reconsent_after_s = reconsent_after_s
        self.failure: str | None = None  # why the script gave up, if it did

    def say(self, text: str) -> None:
        self.demo.steps.append((time.time(), text))
        print(f"demo: {text}", flush=True)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.stop.is_set() or not self.dagster_alive():
                raise DemoStopped
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 1.0))

    def _until(self, what: str, probe: Callable[[], object], timeout_s: float, every_s: float = 2.0):
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")
            self._wait(every_s)

    def run(self) -> None:
        try:
            self._play()
        except DemoStopped:
            pass
        except TimeoutError as exc:
            self.failure = str(exc)
            self.say(f"the script stopped: {exc}. The demo keeps running; see docs/demo.md.")

    # -- the script ----------------------------------------------------------------------------------

    def _play(self) -> None:
        self.wait_for_own_webserver()
        for number in range(1, self.revoke_after_syncs + 1):
            run_id = self.sync(f"sync {number}: the sheet loop")
            # Each sync finishes before the next step, so the revocation never lands inside a running sync.
            self.say(f"run {run_id} ended {self.finished(run_id)}.")
            self._wait(self.sync_interval_s)
        self.revoke()
        failed = self.sync("the first sync after the revocation: it must fail")
        status = self.finished(failed)
        self.say(
            f"run {failed} ended {status}: its blocking check google_credentials_fresh failed with the fix; "
            "waiting for run_failure_alert_sensor's Slack post."
        )
        self._until(
            "the Slack alert for the failed run", lambda: self.post_mentioning(failed), ALERT_TIMEOUT_S
        )
        self.say(
            f"the Slack emulator received the alert for run {failed}. The re-consent follows in "
            f"{self.reconsent_after_s:g} s."
        )
        self._wait(self.reconsent_after_s)
        self.reconsent()
        passed = self.sync("the first sync after the re-consent: it must pass")
        status = self.finished(passed)
        self.say(f"run {passed} ended {status}; waiting for the recovery post.")
        self._until("the Slack recovery post", lambda: self.post_mentioning(passed), ALERT_TIMEOUT_S)
        self.say("the Slack emulator received the recovery. The sheet loop goes on.")
        while True:
            self._wait(self.sync_interval_s)
            self.sync("the sheet loop")

    def wait_for_own_webserver(self) -> None:
        def ours() -> bool:
            info = self.webserver_instance_info()
            return info is not None and str(self.home) in info

        self.say("waiting for dagster dev's webserver to serve this demo's DAGSTER_HOME.")
        self._until("dagster dev's webserver answering", ours, WEBSERVER_TIMEOUT_S)

    def webserver_instance_info(self) -> str | None:
        """The instance description the webserver serves (it names its storage directories), or None."""
        try:
            result = self.client._execute("query { instance { info } }")
        except Exception:  # not up yet, or not a Dagster webserver: both mean "not ours yet"
            return None
        return (result or {}).get("instance", {}).get("info")

    def sync(self, why: str) -> str:
        run_id = self.client.submit_job_execution("port_sheet_sync_job", tags={"jada/demo": "1"})
        self.say(f"launched port_sheet_sync_job ({why}): run {run_id}")
        return run_id

    def finished(self, run_id: str) -> str:
        done = {"SUCCESS", "FAILURE", "CANCELED"}

        def status() -> str | None:
            value = self.client.get_run_status(run_id).value
            return value if value in done else None

        return self._until(f"run {run_id} finishing", status, RUN_TIMEOUT_S)

    def post_mentioning(self, text: str) -> bool:
        return any(text in post["text"] for post in self.demo.slack.posts())

    def revoke(self) -> None:
        token = json.loads(self.demo.token_file.read_text())
        self.demo.google.revoke_refresh_token(token["refresh_token"])
        self.demo.google.expire_access_tokens()
        self.say(
            "REVOKED the demo's Google token, as when someone removes the app at "
            "myaccount.google.com/permissions: the Google emulator now answers invalid_grant."
        )

    def reconsent(self) -> None:
        argv = reconsent_argv(self.demo)
        self.say("re-consenting as a person would: jada " + " ".join(argv[3:]))
        code, output = run_reconsent(argv, self.demo.google.token_uri)
        if code != 0:
            raise TimeoutError(f"`jada auth google` exited {code}: {output.strip()[-500:]}")
        self.say("`jada auth google` stored a new token: " + output.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reconsent_argv(demo: DemoEmulators) -> list[str]:
    """`jada auth google` as a person runs it on a headless machine, against the emulator's consent screen."""
    return [
        sys.executable,
        "-m",
        "jada_pipelines.cli",
        "auth",
        "google",
        "--client-secrets",
        str(demo.client_secrets_file),
        "--production",
        "--no-browser",
        "--port",
        str(_free_port()),
        "--output",
        str(demo.token_file),
        "--timeout",
        "60",
    ]


def run_reconsent(argv: list[str], token_uri: str) -> tuple[int, str]:
    """Run `jada auth google` and play the person at the browser: open the printed consent URL (the emulator's
    consent screen approves at once and redirects to the command's local server). Returns (exit code, output)."""
    env = {**os.environ, "JADA_GOOGLE_TOKEN_URI": token_uri}
    process = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)", line)
        if match:
            with urllib.request.urlopen(match.group(1), timeout=30) as response:
                response.read()
    return process.wait(timeout=60), "".join(output)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DemoPorts()
    parser = argparse.ArgumentParser(
        prog="make demo",
        description="The whole story against local emulators. Every option is also a `make demo` setting.",
    )
    parser.add_argument("--port", type=int, default=defaults.webserver, help="dagster dev's webserver port.")
    parser.add_argument("--google-port", type=int, default=defaults.google)
    parser.add_argument("--anthropic-port", type=int, default=defaults.anthropic)
    parser.add_argument("--page-port", type=int, default=defaults.page, help="The sheet and Slack page.")
    parser.add_argument("--slack-port", type=int, default=defaults.slack)
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--sync-seconds", type=float, default=DEMO_SYNC_INTERVAL_S)
    parser.add_argument("--revoke-after-syncs", type=int, default=REVOKE_AFTER_SYNCS)
    parser.add_argument("--reconsent-after-seconds", type=float, default=RECONSENT_AFTER_S)
    args = parser.parse_args(argv)
    for name in ("port", "google_port", "anthropic_port", "page_port", "slack_port"):
        if not 1 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not a port: use 1-65535.")
    if args.sync_seconds <= 0 or args.revoke_after_syncs < 0 or args.reconsent_after_seconds < 0:
        parser.error(
            "--sync-seconds must be above 0; --revoke-after-syncs and --reconsent-after-seconds 0 or more."
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ports = DemoPorts(
        webserver=args.port,
        google=args.google_port,
        anthropic=args.anthropic_port,
        page=args.page_port,
        slack=args.slack_port,
    )
    problems = port_problems(ports)
    if problems:
        print("make demo: nothing was started.\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    state_dir = args.state_dir.resolve()
    try:
        demo = start_emulators(state_dir, ports)
    except OSError as exc:  # taken between the check and the start
        print(f"make demo: nothing was started: a port was taken meanwhile ({exc}).", file=sys.stderr)
        return 1
    home = _fresh_dagster_home(state_dir)
    webserver_url = f"http://127.0.0.1:{ports.webserver}"
    print(
        "LOCAL EMULATORS (stand-ins, not Google, Anthropic or Slack):\n"
        f"  Google OAuth + Sheets v4  {demo.google.base_url}  (spreadsheet {SPREADSHEET_ID!r}, tab {TAB!r})\n"
        f"  Anthropic Messages API    {demo.anthropic.base_url}  (scripted demo agent, no model)\n"
        f"  Slack incoming webhook    {demo.slack.base_url}  (the alerts land here)\n"
        f"  The sheet and the Slack posts, read-only: {demo.page.url}\n"
        f"Open {webserver_url}, then follow docs/demo.md. To point `jada` at this demo in another terminal:\n"
        f"  set -a; . {state_dir / ENV_FILE}; set +a\n",
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
            "-h",
            "127.0.0.1",
            "-p",
            str(ports.webserver),
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    stop = threading.Event()
    story = DemoStory(
        demo,
        DagsterGraphQLClient("127.0.0.1", port_number=ports.webserver, timeout=30),
        home=home,
        stop=stop,
        dagster_alive=lambda: dagster.poll() is None,
        sync_interval_s=args.sync_seconds,
        revoke_after_syncs=args.revoke_after_syncs,
        reconsent_after_s=args.reconsent_after_seconds,
    )
    script = threading.Thread(target=story.run, name="demo-story", daemon=True)
    script.start()
    # `kill` (SIGTERM) winds the demo down like Ctrl-C, instead of leaving dagster dev without its emulators.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = dagster.wait()
        print(f"make demo: dagster dev exited with code {code}; stopping the emulators.", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches dagster dev too (same process group), and it stops its webserver and
        # daemon by itself; a SIGINT sent to this process alone is passed on after a grace period.
        try:
            dagster.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dagster.send_signal(signal.SIGINT)
            dagster.wait()
        return 0
    finally:
        stop.set()
        script.join(timeout=35)
        demo.stop()
        print("Demo emulators stopped.")


if __name__ == "__main__":
    sys.exit(main())
