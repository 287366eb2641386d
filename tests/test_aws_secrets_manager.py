"""The Google token in Secrets Manager: written idempotently, read back, and never losing the version it replaced."""

from __future__ import annotations

import uuid

import boto3
import pytest

from jada_pipelines.google_api.secrets_manager import (
    SecretStoreError,
    previous_token,
    read_token,
    rollback_token,
    write_token,
)

SECRET = "jada/google-token"
FIRST = {"refresh_token": "1//first", "client_id": "cid.apps.googleusercontent.com", "token": "ya29.a"}
REFRESHED = {**FIRST, "refresh_token": "1//second", "token": "ya29.b"}


def _versions():
    return boto3.client("secretsmanager").list_secret_version_ids(SecretId=SECRET)["Versions"]


def test_a_first_write_creates_the_secret_and_reads_back(aws):
    write_token(SECRET, FIRST, client_request_token=str(uuid.uuid4()))

    assert read_token(SECRET) == FIRST


def test_a_refresh_keeps_the_old_token_as_awsprevious(aws):
    write_token(SECRET, FIRST, client_request_token=str(uuid.uuid4()))
    write_token(SECRET, REFRESHED, client_request_token=str(uuid.uuid4()))

    assert read_token(SECRET) == REFRESHED
    assert previous_token(SECRET) == FIRST


def test_a_retried_write_with_the_same_request_token_adds_no_version(aws):
    write_token(SECRET, FIRST, client_request_token=str(uuid.uuid4()))
    retry_token = str(uuid.uuid4())
    write_token(SECRET, REFRESHED, client_request_token=retry_token)
    write_token(SECRET, REFRESHED, client_request_token=retry_token)

    assert len(_versions()) == 2
    # The retry did not push the good old token out of AWSPREVIOUS.
    assert previous_token(SECRET) == FIRST


def test_reusing_a_request_token_for_different_data_is_refused(aws):
    token = str(uuid.uuid4())
    write_token(SECRET, FIRST, client_request_token=token)
    write_token(SECRET, REFRESHED, client_request_token=str(uuid.uuid4()))

    with pytest.raises(SecretStoreError, match="already used for different data") as caught:
        write_token(SECRET, {"refresh_token": "1//third"}, client_request_token=token)
    assert caught.value.code == "ResourceExistsException"
    assert read_token(SECRET) == REFRESHED


def test_rollback_makes_the_previous_token_current_again(aws):
    write_token(SECRET, FIRST, client_request_token=str(uuid.uuid4()))
    write_token(SECRET, REFRESHED, client_request_token=str(uuid.uuid4()))

    rollback_token(SECRET)

    assert read_token(SECRET) == FIRST
    assert previous_token(SECRET) == REFRESHED


def test_rollback_of_a_secret_written_once_says_there_is_nothing_to_roll_back_to(aws):
    write_token(SECRET, FIRST, client_request_token=str(uuid.uuid4()))

    with pytest.raises(SecretStoreError, match="no AWSPREVIOUS version"):
        rollback_token(SECRET)
    assert read_token(SECRET) == FIRST


def test_a_missing_secret_names_the_variable_to_check(aws):
    with pytest.raises(SecretStoreError, match="JADA_GOOGLE_TOKEN_SECRET_ID") as caught:
        read_token("jada/nope")
    assert caught.value.code == "ResourceNotFoundException"


def test_a_secret_that_is_not_json_is_reported_without_its_value(aws):
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString="ya29.not-json-secret")

    with pytest.raises(SecretStoreError, match="not valid JSON") as caught:
        read_token(SECRET)
    assert "ya29" not in str(caught.value)


def test_a_json_value_that_is_not_an_object_is_refused(aws):
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString='["a", "b"]')

    with pytest.raises(SecretStoreError, match="holds a JSON list"):
        read_token(SECRET)


def test_a_request_token_of_the_wrong_length_is_refused_before_any_call(aws):
    with pytest.raises(ValueError, match="32 to 64 characters"):
        write_token(SECRET, FIRST, client_request_token="short")
