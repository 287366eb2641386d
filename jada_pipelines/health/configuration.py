"""The configuration section of `jada health`: the settings without which a part of the product does nothing.

Each problem names the variable to set and the doc section that explains it. The rules themselves live with
the parts they guard (``why_no_session_can_run`` for sessions, ``webhook_url`` for Slack, the Google
credentials' sources); this module only grades what they say:

- ERROR when no agent session can start (no Anthropic key for the default backend, a malformed session
  setting): tasks queue up and nothing runs them.
- WARN when alerts go nowhere (no Slack webhook) or the port sheet is not configured (no Google credentials,
  no sheet id): the UI and the run say so too, but nobody is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from jada_pipelines import settings
from jada_pipelines.agents.bwrap_sandbox import sandbox_status
from jada_pipelines.agents.sensors import why_no_session_can_run
from jada_pipelines.alerts.resources import WEBHOOK_VARIABLE, webhook_url
from jada_pipelines.google_api.config import SOURCE_VARIABLES

SESSIONS_DOC = 'docs/agents.md, "Set-up"'
SLACK_DOC = 'docs/alerts_health.md, "Set-up"'
GOOGLE_DOC = 'docs/google.md, "Set-up"'


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR or WARN
    variable: str
    text: str  # the sentence, ending with the doc section to read


def sessions_problem() -> Problem | None:
    """Why no agent session can start, if one cannot: the sensor's own rule, less the sandbox (the audit's
    sandbox section reports that one)."""

    problem = why_no_session_can_run()
    if problem is None or problem == sandbox_status().problem:
        return None
    variable = problem.split(" ", 1)[0].split("=", 1)[0]
    return Problem(
        "ERROR",
        variable,
        f"No agent session can start: {problem} Until then agent_task_sensor claims nothing and tasks stay "
        f"queued. See {SESSIONS_DOC}.",
    )


def slack_problem() -> Problem | None:
    try:
        url = webhook_url()
    except settings.ConfigError as error:
        return Problem("ERROR", WEBHOOK_VARIABLE, f"{error} See {SLACK_DOC}.")
    if url is not None:
        return None
    return Problem(
        "WARN",
        WEBHOOK_VARIABLE,
        f"{WEBHOOK_VARIABLE} is not set: failed checks and runs alert nobody (the alert sensors skip). Set it "
        f"to a Slack incoming-webhook URL in .env. See {SLACK_DOC}.",
    )


def google_problems() -> list[Problem]:
    problems = []
    if not any(settings.get(name) for name in SOURCE_VARIABLES):
        problems.append(
            Problem(
                "WARN",
                SOURCE_VARIABLES[0],
                f"Google is not configured: none of {', '.join(SOURCE_VARIABLES)} is set, so every port-sheet "
                f"sync fails its credentials check. Set {SOURCE_VARIABLES[0]} in .env, then run "
                f"`jada auth google`. See {GOOGLE_DOC}.",
            )
        )
    if not settings.get("JADA_PORT_SHEET_ID"):
        problems.append(
            Problem(
                "WARN",
                "JADA_PORT_SHEET_ID",
                "JADA_PORT_SHEET_ID is not set: the port-sheet sync does not know which sheet to read. Set it to "
                f"the long id in the sheet's URL. See {GOOGLE_DOC}.",
            )
        )
    return problems


def problems() -> list[Problem]:
    """Every configuration problem, the ERRORs first."""
    found = [p for p in (sessions_problem(), slack_problem()) if p is not None] + google_problems()
    return sorted(found, key=lambda p: p.severity != "ERROR")
