"""The demo's script (``DemoStory``): the sheet loop, a revocation, the failure and its alert, a re-consent,
the recovery."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jada_pipelines.emulators.demo.ports import free_port
from jada_pipelines.emulators.demo.stage import REPO_ROOT, DemoEmulators

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

# The real schedule syncs every 30 minutes; the demo launches the same job this often so the loop shows.
DEMO_SYNC_INTERVAL_S = 60
# Syncs before the scripted revocation: long enough for the sessions to finish and P017 to hit its cap.
REVOKE_AFTER_SYNCS = 4
# Time to look at the failure (the red check, the failed run, the Slack post) before the re-consent.
RECONSENT_AFTER_S = 60
# How long the script waits for a run to finish, or for an alert to reach Slack, before saying so.
RUN_TIMEOUT_S = 300
ALERT_TIMEOUT_S = 180
WEBSERVER_TIMEOUT_S = 300
# The real 30-minute schedule of the job the demo launches itself. The demo turns it off while its script
# plays, so a schedule tick in the revoked window cannot fail a second sync and post a second alert.
SCHEDULE = "port_sheet_sync_schedule"

# Dagster's GraphQL API, as the webserver serves it (dagster_graphql/schema/schedules): find the schedule's
# code location and state, stop it by its state id, start it by its selector.
_FIND_SCHEDULE = """
query DemoFindSchedule {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes { name location { name } schedules { name scheduleState { id status } } }
    }
    ... on PythonError { message }
  }
}
"""
_STOP_SCHEDULE = """
mutation DemoStopSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on ScheduleNotFoundError { message }
  }
}
"""
_START_SCHEDULE = """
mutation DemoStartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on ScheduleNotFoundError { message }
  }
}
"""


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
        self.schedule_paused = False  # the script turned the real schedule off and has not turned it on yet

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
            if self.schedule_paused and self.dagster_alive():
                # The script no longer drives the syncs: the schedule does again.
                try:
                    self.resume_schedule()
                except Exception as error:  # the webserver's answer, whatever it is, is for the person
                    self.say(
                        f"could not turn {SCHEDULE} back on ({error}): turn it on in the UI (Automation)."
                    )

    # -- the script ----------------------------------------------------------------------------------

    def _play(self) -> None:
        self.wait_for_own_webserver()
        self.pause_schedule()
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
        self.resume_schedule()
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

    def pause_schedule(self) -> None:
        """Turn the real schedule off while the script drives the syncs (the UI shows it stopped)."""
        state = self._schedule_state()
        self._schedule_mutation(_STOP_SCHEDULE, {"id": state["id"]}, "stopRunningSchedule")
        self.schedule_paused = True
        self.say(
            f"turned {SCHEDULE} off while this script launches the syncs, so no scheduled sync lands in the "
            "revoked window and adds a second alert; it is turned back on when the script ends."
        )

    def resume_schedule(self) -> None:
        """Turn the real schedule back on (the script's end)."""
        state = self._schedule_state()
        selector = {
            "repositoryLocationName": state["location"],
            "repositoryName": state["repository"],
            "scheduleName": SCHEDULE,
        }
        self._schedule_mutation(_START_SCHEDULE, {"selector": selector}, "startSchedule")
        self.schedule_paused = False
        self.say(f"turned {SCHEDULE} back on: it syncs the sheet every 30 minutes again.")

    def _schedule_state(self) -> dict:
        """The schedule's state id and status, and the repository and code location that hold it."""
        answer = (self.client._execute(_FIND_SCHEDULE) or {})["repositoriesOrError"]
        if answer["__typename"] != "RepositoryConnection":
            raise TimeoutError(f"the webserver could not list its code locations: {answer.get('message')}")
        for repository in answer["nodes"]:
            for schedule in repository["schedules"]:
                if schedule["name"] == SCHEDULE:
                    return {
                        **schedule["scheduleState"],
                        "repository": repository["name"],
                        "location": repository["location"]["name"],
                    }
        raise TimeoutError(f"the webserver serves no schedule named {SCHEDULE}")

    def _schedule_mutation(self, mutation: str, variables: dict, field: str) -> None:
        answer = (self.client._execute(mutation, variables) or {})[field]
        if answer["__typename"] != "ScheduleStateResult":
            raise TimeoutError(f"{field} on {SCHEDULE} was refused: {answer.get('message')}")

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
        str(free_port()),
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
