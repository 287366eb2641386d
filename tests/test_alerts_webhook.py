"""Alerts reach a Slack webhook per Slack's contract: 429 and 5xx retried a bounded number of times, 4xx never."""

from __future__ import annotations

import logging
import socket

import pytest

from jada_pipelines.alerts import messages
from jada_pipelines.alerts.resources import SlackWebhookResource
from jada_pipelines.alerts.webhook import Pacer, SlackDeliveryError, WebhookSender

FAILED_CHECK = messages.FailedCheck(
    asset="port_sheet_rows",
    check="port_sheet_rows_valid",
    severity="WARN",
    description="3 rows quarantined",
    blocking=False,
)


def a_message() -> messages.SlackMessage:
    return messages.check_failed(
        FAILED_CHECK, job="port_sheet_sync_job", run_id="run-1", webserver_url="http://ui:3000"
    )


class RecordingSleep:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleep():
    return RecordingSleep()


def sender_for(url: str, sleep: RecordingSleep, **kwargs) -> WebhookSender:
    return WebhookSender(url, pacer=Pacer(0, sleep=sleep), sleep=sleep, **kwargs)


def test_a_message_arrives_as_block_kit_with_a_fallback_a_run_button_and_a_dedup_key(slack_webhook, sleep):
    sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    (payload,) = slack_webhook.payloads
    assert "port_sheet_rows_valid" in payload["text"] and "WARN" in payload["text"]
    assert "3 rows quarantined" in payload["text"]
    button = next(b for b in payload["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == "http://ui:3000/runs/run-1"
    assert "check-failed:port_sheet_rows:port_sheet_rows_valid:run-1" in str(payload["blocks"][-1])


def test_a_429_is_retried_once_after_its_retry_after_then_delivered(slack_webhook, sleep):
    slack_webhook.script(429, "rate_limited", retry_after=7)

    sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    assert slack_webhook.requests == 2
    assert len(slack_webhook.payloads) == 1
    assert sleep.calls == [7.0]


def test_a_retry_after_longer_than_a_tick_may_wait_is_handed_back_not_slept_nor_cut_short(
    slack_webhook, sleep
):
    # Cutting it short would post inside Slack's quiet window, which can get the webhook disabled.
    slack_webhook.script(429, "rate_limited", retry_after=3600)

    with pytest.raises(SlackDeliveryError) as raised:
        sender_for(slack_webhook.webhook_url, sleep, max_retry_after=30).send(a_message())

    assert raised.value.retry_after == 3600 and not raised.value.permanent
    assert sleep.calls == [] and slack_webhook.requests == 1


def test_a_503_then_200_is_delivered(slack_webhook, sleep):
    slack_webhook.fail_next("server_error")

    sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    assert slack_webhook.requests == 2
    assert len(slack_webhook.payloads) == 1


def test_server_errors_are_retried_a_bounded_number_of_times(slack_webhook, sleep):
    slack_webhook.fail_next("server_error", times=10)

    with pytest.raises(SlackDeliveryError) as raised:
        sender_for(slack_webhook.webhook_url, sleep, max_retries=3).send(a_message())

    assert slack_webhook.requests == 4
    assert not raised.value.permanent


@pytest.mark.parametrize(
    ("fault", "status", "fix"),
    [
        ("no_service", 404, "create a new incoming webhook"),
        ("channel_is_archived", 410, "unarchive"),
    ],
)
def test_a_permanent_4xx_is_not_retried_and_is_logged_loudly_without_the_url(
    slack_webhook, sleep, caplog, fault, status, fix
):
    slack_webhook.fail_next(fault)

    with caplog.at_level(logging.INFO), pytest.raises(SlackDeliveryError) as raised:
        sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    assert slack_webhook.requests == 1
    assert raised.value.permanent and raised.value.status == status
    assert fix in str(raised.value)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert loud and fault in loud[0].getMessage()
    assert "emulator-webhook-secret" not in caplog.text + str(raised.value)


def test_block_kit_that_slack_rejects_goes_out_as_plain_text_so_later_alerts_are_not_held(
    slack_webhook, sleep, caplog
):
    slack_webhook.fail_next("invalid_payload")

    sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    (payload,) = slack_webhook.payloads
    assert "blocks" not in payload and "3 rows quarantined" in payload["text"]
    assert "Block Kit" in caplog.text


def test_a_message_rejected_even_as_plain_text_is_a_permanent_error_that_names_the_bug(slack_webhook, sleep):
    slack_webhook.fail_next("invalid_payload", times=2)

    with pytest.raises(SlackDeliveryError, match=r"bug in jada_pipelines\.alerts\.messages") as raised:
        sender_for(slack_webhook.webhook_url, sleep).send(a_message())

    assert raised.value.permanent and slack_webhook.requests == 2


def test_connection_refused_is_retried_then_raised_as_retryable_without_the_url(sleep, caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0/B0/closed-port-secret"

    with caplog.at_level(logging.INFO), pytest.raises(SlackDeliveryError) as raised:
        sender_for(url, sleep, max_retries=2).send(a_message())

    assert not raised.value.permanent
    assert len(sleep.calls) == 2
    assert "closed-port-secret" not in caplog.text + str(raised.value)


def test_the_pacer_spaces_posts_one_second_apart_on_an_injected_clock():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(1.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait()
    now[0] += 0.25
    pacer.wait()
    now[0] += 5
    pacer.wait()

    assert slept == [0.75]


def test_the_resource_says_which_variable_to_set_when_the_webhook_is_missing():
    resource = SlackWebhookResource()

    assert not resource.configured()
    with pytest.raises(Exception, match="SLACK_WEBHOOK_URL is not set"):
        resource.post(a_message())


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T0/B0/plain-http-secret",
        "hooks.slack.com/services/T0/B0/no-scheme-secret",
        "https:///services/T0/B0/no-host-secret",
    ],
)
def test_a_webhook_url_that_is_not_https_is_refused_in_a_sentence_that_does_not_repeat_it(monkeypatch, url):
    from jada_pipelines.settings import ConfigError

    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)

    with pytest.raises(ConfigError) as raised:
        SlackWebhookResource().configured()

    assert "SLACK_WEBHOOK_URL is not an https:// URL" in str(raised.value)
    assert "secret" not in str(raised.value).replace("is a secret", "")
    assert "hooks.slack.com/services/T0" not in str(raised.value)


def test_an_error_whose_text_quotes_the_url_leaves_the_resource_without_it(slack_webhook, monkeypatch):
    import traceback

    # A space in the path makes http.client raise InvalidURL with the whole path (the secret) in its text.
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack_webhook.webhook_url + " typo-secret")

    with pytest.raises(SlackDeliveryError) as raised:
        SlackWebhookResource(max_retries=0).post(a_message())

    told = "".join(traceback.format_exception(raised.value))
    assert "InvalidURL" in told and "withheld" in told
    assert "emulator-webhook-secret" not in told and "typo-secret" not in told
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_text_from_the_sheet_or_the_model_is_escaped_so_slack_shows_it_instead_of_acting_on_it():
    hostile = "row 7: <!channel> see <https://evil.example|the fix> & more"
    check = messages.check_failed(
        messages.FailedCheck("port_sheet_rows", "port_sheet_rows_valid", "WARN", hostile, False),
        job="port_sheet_sync_job",
        run_id="run-1",
        webserver_url="http://ui:3000",
    )
    run = messages.run_failed(
        job="agent_session_job",
        run_id="run-2",
        step_failures=[("agent_session", f"The model refused: {hostile}")],
        failed_checks=[],
        run_message="",
        webserver_url="http://ui:3000",
    )

    for message in (check, run):
        mrkdwn = [message.text] + [
            text
            for block in message.blocks
            for text in [block.get("text", {}).get("text", "")]
            + [f["text"] for f in block.get("fields", []) + block.get("elements", []) if "text" in f]
            if block["type"] in ("section", "context")
        ]
        assert any("&lt;!channel&gt;" in text for text in mrkdwn)
        assert not any("<!channel>" in text or "<https://evil" in text for text in mrkdwn)
        assert any("&amp; more" in text for text in mrkdwn)
    assert "*agent_session*:" in str(run.blocks)  # our own formatting still renders
