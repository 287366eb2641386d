"""`make demo` (``python -m jada_pipelines.emulators.demo``): check the ports, set the stage, run ``dagster dev``
and play the story beside it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from jada_pipelines.emulators.demo.ports import DemoPorts, port_problems
from jada_pipelines.emulators.demo.sheet import SPREADSHEET_ID, TAB
from jada_pipelines.emulators.demo.stage import (
    ENV_FILE,
    REPO_ROOT,
    STATE_DIR,
    fresh_dagster_home,
    start_emulators,
)
from jada_pipelines.emulators.demo.story import (
    DEMO_SYNC_INTERVAL_S,
    RECONSENT_AFTER_S,
    REVOKE_AFTER_SYNCS,
    DemoStory,
)


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
    home = fresh_dagster_home(state_dir)
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
