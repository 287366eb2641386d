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

The package: :mod:`.ports` (the ports and their check), :mod:`.sheet` (the seeded sheet), :mod:`.page`
(the read-only page), :mod:`.stage` (emulators, token, ``demo.env``, DAGSTER_HOME), :mod:`.story` (the script)
and :mod:`.launch` (``main``, which ``__main__`` runs).
"""

from jada_pipelines.emulators.demo.launch import main, parse_args
from jada_pipelines.emulators.demo.page import SheetPage, wall_clock
from jada_pipelines.emulators.demo.ports import PORT_OPTIONS, DemoPorts, port_problems
from jada_pipelines.emulators.demo.sheet import HEADER, SPREADSHEET_ID, TAB, seed_rows
from jada_pipelines.emulators.demo.stage import (
    ENV_FILE,
    STATE_DIR,
    DemoEmulators,
    load_demo_env,
    start_emulators,
)
from jada_pipelines.emulators.demo.story import DemoStopped, DemoStory, reconsent_argv, run_reconsent

__all__ = [
    "ENV_FILE",
    "HEADER",
    "PORT_OPTIONS",
    "SPREADSHEET_ID",
    "STATE_DIR",
    "TAB",
    "DemoEmulators",
    "DemoPorts",
    "DemoStopped",
    "DemoStory",
    "SheetPage",
    "load_demo_env",
    "main",
    "parse_args",
    "port_problems",
    "reconsent_argv",
    "run_reconsent",
    "seed_rows",
    "start_emulators",
    "wall_clock",
]
