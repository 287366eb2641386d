"""Slack alert messages: Block Kit plus a plain-text fallback, each with a dedup key (plain Python).

The fallback text is what Slack shows in notifications and on clients without Block Kit, so it carries
everything a person needs on its own: what failed, how badly, why, and where the run is.

Text that comes from outside (a check's description holding a sheet's quarantine reason, a step failure
holding the model's refusal) is escaped for mrkdwn: Slack reads ``<!channel>`` or ``<https://x|label>`` in
message text as a mention or a disguised link, and asks senders to escape ``&``, ``<`` and ``>``
(https://api.slack.com/reference/surfaces/formatting#escaping). Header blocks are ``plain_text``, which
Slack never parses, so they are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Slack truncates or rejects longer fields: section text is capped at 3000 characters, header at 150.
_SECTION_LIMIT = 2900
_HEADER_LIMIT = 150

_ICONS = {"ERROR": ":red_circle:", "WARN": ":large_orange_circle:", "OK": ":large_green_circle:"}


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict] = field(default_factory=list)
    dedup_key: str = ""


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    severity: str  # "WARN" | "ERROR"
    description: str
    blocking: bool


def escape(text: str) -> str:
    """Text shown as written in mrkdwn: ``&``, ``<`` and ``>`` become entities (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_url(webserver_url: str, run_id: str) -> str:
    return f"{webserver_url.rstrip('/')}/runs/{run_id}"


def check_failed(check: FailedCheck, *, job: str, run_id: str, webserver_url: str) -> SlackMessage:
    kind = "blocking check" if check.blocking else "check"
    title = f"{check.severity}: {kind} {check.check} failed on {check.asset}"
    return _message(
        title=title,
        severity=check.severity,
        fields={"Asset": check.asset, "Check": check.check, "Severity": check.severity, "Job": job},
        details=escape(check.description) if check.description else "(the check gave no description)",
        run_id=run_id,
        webserver_url=webserver_url,
        dedup_key=f"check-failed:{check.asset}:{check.check}:{run_id}",
    )


def check_recovered(asset: str, check: str, *, job: str, run_id: str, webserver_url: str) -> SlackMessage:
    return _message(
        title=f"Recovered: check {check} passes again on {asset}",
        severity="OK",
        fields={"Asset": asset, "Check": check, "Severity": "OK", "Job": job},
        details="The check passed in this run after failing earlier.",
        run_id=run_id,
        webserver_url=webserver_url,
        dedup_key=f"check-recovered:{asset}:{check}:{run_id}",
    )


def run_failed(
    *,
    job: str,
    run_id: str,
    step_failures: list[tuple[str, str]],
    failed_checks: list[FailedCheck],
    run_message: str,
    webserver_url: str,
) -> SlackMessage:
    """One message for a failed run: each failed step's description (for a credentials failure, the fix)."""
    reasons = [f"*{escape(step)}*: {escape(description)}" for step, description in step_failures]
    # A blocking check and the step it stops often carry the same text (the credentials fix): say it once.
    said = {description for _, description in step_failures}
    reasons += [
        f"*check {escape(c.asset)}.{escape(c.check)}* ({c.severity}): {escape(c.description)}"
        for c in failed_checks
        if c.description not in said
    ]
    return _message(
        title=f"ERROR: run of {job} failed",
        severity="ERROR",
        fields={
            "Job": job,
            "Severity": "ERROR",
            "Failed steps": ", ".join(s for s, _ in step_failures) or "-",
        },
        details="\n".join(reasons) or escape(run_message),
        run_id=run_id,
        webserver_url=webserver_url,
        dedup_key=f"run-failed:{run_id}",
    )


def asset_url(webserver_url: str, asset: str) -> str:
    return f"{webserver_url.rstrip('/')}/assets/{asset}"


def asset_stale(
    asset: str,
    *,
    last_materialized_at: str | None,
    minutes_late: float | None,
    fail_window_minutes: float,
    reminder: bool,
    dedup_key: str,
    webserver_url: str,
) -> SlackMessage:
    """An asset failed its freshness policy: its data is older than the policy allows."""
    age = (
        f"Last materialized at {last_materialized_at}, {minutes_late:.0f} min ago;"
        if last_materialized_at is not None and minutes_late is not None
        else "Its last materialization could not be read;"
    )
    details = (
        f"{age} its freshness policy expects one within {fail_window_minutes:.0f} min. Check that the schedule "
        "that materializes it is running (Automation in the UI; `jada health` names a stopped one) and that its "
        "latest runs succeeded."
    )
    prefix = "Still stale" if reminder else "Stale"
    return _message(
        title=f"ERROR: {prefix}: {asset} is not fresh",
        severity="ERROR",
        fields={"Asset": asset, "Freshness": "FAIL", "Expected within": f"{fail_window_minutes:.0f} min"},
        details=escape(details),
        link=asset_url(webserver_url, asset),
        button="Open the asset in Dagster",
        dedup_key=dedup_key,
    )


def asset_fresh_again(asset: str, *, state: str, dedup_key: str, webserver_url: str) -> SlackMessage:
    return _message(
        title=f"Recovered: {asset} is fresh again",
        severity="OK",
        fields={"Asset": asset, "Freshness": state},
        details="It was materialized again within its freshness policy.",
        link=asset_url(webserver_url, asset),
        button="Open the asset in Dagster",
        dedup_key=dedup_key,
    )


def watchdog(
    *, kind: str, section: str, summary: str, since: str, host: str, dedup_key: str, webserver_url: str
) -> SlackMessage:
    """A message from `jada health --alert`, which runs outside the daemon: ``kind`` is problem, reminder or recovered."""
    if kind == "recovered":
        title, severity = f"Recovered: jada health {section} is no longer ERROR", "OK"
        details = f"Since {since}, cleared now: {escape(summary)}"
    else:
        still = "Still ERROR" if kind == "reminder" else "ERROR"
        title, severity = f"{still}: jada health {section}", "ERROR"
        details = f"{escape(summary)}\nSeen by the watchdog outside the daemon (`jada health --alert`) since {since}."
    return _message(
        title=title,
        severity=severity,
        fields={"Section": section, "Host": host, "Severity": "OK" if kind == "recovered" else "ERROR"},
        details=details,
        link=webserver_url,
        button="Open Dagster",
        dedup_key=dedup_key,
    )


def _message(
    *,
    title: str,
    severity: str,
    fields: dict[str, str],
    details: str,
    dedup_key: str,
    webserver_url: str | None = None,
    run_id: str | None = None,
    link: str | None = None,
    button: str = "Open the run in Dagster",
) -> SlackMessage:
    """``details`` is mrkdwn whose outside text the caller escaped; title and fields are escaped here.

    The button goes to the run (``run_id`` and ``webserver_url``) or to ``link``.
    """
    url = link if link is not None else run_url(webserver_url or "", run_id or "")
    icon = _ICONS[severity]
    fields = {name: escape(value) for name, value in fields.items()}
    field_text = ", ".join(f"{name}: {value}" for name, value in fields.items())
    where = "Run" if run_id is not None else "Link"
    text = (
        f"{icon} {escape(title)}. {field_text}. {_plain(details)} {where}: {url} (dedup {escape(dedup_key)})"
    )
    context = f"run `{escape(run_id)}` · " if run_id is not None else ""
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_LIMIT), "emoji": True}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields.items()],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(details, _SECTION_LIMIT)}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": button},
                    "url": url,
                    "action_id": "open_run" if run_id is not None else "open_link",
                }
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{icon} {context}dedup `{escape(dedup_key)}`"}],
        },
    ]
    return SlackMessage(text=_cut(text, _SECTION_LIMIT), blocks=blocks, dedup_key=dedup_key)


def _plain(details: str) -> str:
    return details.replace("*", "").replace("\n", " ")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
