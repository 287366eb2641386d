"""`jada aws alarms` creates the CloudWatch alarms on the health metrics (moto server): the alarm on the
per-minute metric treats missing data as breaching, so a dead daemon alarms; re-running updates, never
duplicates; thresholds follow the health checks'."""

from __future__ import annotations

import boto3

from jada_pipelines.cli import main

NAMESPACE = "JadaTest"


def alarms(prefix="jada-prod-") -> dict[str, dict]:
    found = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


def test_the_alarm_on_silence_treats_missing_data_as_breaching_and_the_others_do_not(aws, capsys):
    topic = boto3.client("sns").create_topic(Name="jada-alerts")["TopicArn"]

    code = main(["aws", "alarms", "--namespace", NAMESPACE, "--env", "prod", "--sns-topic-arn", topic])

    assert code == 0
    created = alarms()
    assert set(created) == {
        f"jada-prod-{suffix}"
        for suffix in (
            "metrics-silent",
            "dead-letters",
            "oldest-queued",
            "sessions-over-cap",
            "google-credentials",
            "turn-cap",
        )
    }
    silent = created["jada-prod-metrics-silent"]
    assert silent["TreatMissingData"] == "breaching"
    assert (silent["MetricName"], silent["Statistic"], silent["Period"]) == (
        "LiveSessions",
        "SampleCount",
        60,
    )
    assert (silent["EvaluationPeriods"], silent["ComparisonOperator"], silent["Threshold"]) == (
        5,
        "LessThanThreshold",
        1.0,
    )
    for alarm in created.values():
        assert alarm["Namespace"] == NAMESPACE
        assert alarm["Dimensions"] == [{"Name": "Env", "Value": "prod"}]
        assert alarm["AlarmActions"] == alarm["OKActions"] == [topic]
        if alarm is not silent:
            assert alarm["TreatMissingData"] == "notBreaching"
    assert created["jada-prod-oldest-queued"]["Threshold"] == 120 * 60
    assert created["jada-prod-sessions-over-cap"]["Threshold"] == 5


def test_re_running_updates_the_alarms_with_the_environment_s_settings(aws, capsys, monkeypatch):
    monkeypatch.setenv("JADA_CLOUDWATCH_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("JADA_ENV", "prod")
    main(["aws", "alarms"])
    monkeypatch.setenv("JADA_HEALTH_QUEUED_AGE_ERROR_MINUTES", "45")

    main(["aws", "alarms"])

    assert len(alarms()) == 6
    assert alarms()["jada-prod-oldest-queued"]["Threshold"] == 45 * 60
    assert "notify no one" in capsys.readouterr().out


def test_without_a_namespace_it_says_what_to_pass(aws, capsys):
    code = main(["aws", "alarms"])

    assert code == 2 and "pass --namespace or set JADA_CLOUDWATCH_NAMESPACE" in capsys.readouterr().err
    assert alarms("jada-") == {}
