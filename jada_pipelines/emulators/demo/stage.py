"""The demo's stage: the emulators started and seeded, the token file, ``demo.env`` and a fresh DAGSTER_HOME."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jada_pipelines.emulators.anthropic import AnthropicEmulator
from jada_pipelines.emulators.demo.page import SheetPage
from jada_pipelines.emulators.demo.ports import DemoPorts
from jada_pipelines.emulators.demo.sheet import SPREADSHEET_ID, TAB, seed_rows
from jada_pipelines.emulators.google import GoogleEmulator
from jada_pipelines.emulators.slack import SlackWebhookEmulator

REPO_ROOT = Path(__file__).resolve().parents[3]
STATE_DIR = REPO_ROOT / "demo_state"
ENV_FILE = "demo.env"
# Long enough that sessions visibly overlap in the UI, and the 5-at-once limit shows.
ANTHROPIC_DELAY_S = 1.0
# P017 waits this long between its attempts (JADA_AGENT_CONTINUE_DELAY_SECONDS): longer than a sync interval,
# so a sync writes `incomplete` to the sheet before the next attempt makes it `dispatched` again.
DEMO_CONTINUE_DELAY_S = 90


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


def fresh_dagster_home(state_dir: Path) -> Path:
    """An empty DAGSTER_HOME linked to the repository's instance/dagster.yaml: each demo starts from a new sheet, so
    an old queue or run history would show work the new sheet never asked for."""
    home = state_dir / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").symlink_to(REPO_ROOT / "instance" / "dagster.yaml")
    return home
