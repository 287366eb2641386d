"""The Google token can live in a 0600 file or in AWS Secrets Manager (moto here, not AWS): both stores
round-trip it, and the credentials check works the same from either, naming the source when it cannot."""

from __future__ import annotations

import json
import stat

from jada_pipelines.google_api.credentials import check_credentials
from jada_pipelines.google_api.tokens import FileTokenStore, SecretsManagerTokenStore

SECRET_ID = "jada/google-token"


def test_the_file_store_writes_atomically_with_mode_0600_and_reads_back(tmp_path):
    store = FileTokenStore(tmp_path / "nested" / "token.json")

    store.save({"refresh_token": "r", "consented_at": "2026-11-28T00:00:00+00:00"})
    store.save({"refresh_token": "r2"})

    assert store.load() == {"refresh_token": "r2"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.path.parent.iterdir()] == ["token.json"], "no temporary file is left behind"


def test_a_token_in_secrets_manager_refreshes_like_a_token_file(
    aws, google_emulator, google_token_file, monkeypatch
):
    SecretsManagerTokenStore(SECRET_ID).save(json.loads(google_token_file.read_text()))
    monkeypatch.delenv("JADA_GOOGLE_TOKEN_FILE")
    monkeypatch.setenv("JADA_GOOGLE_TOKEN_SECRET_ID", SECRET_ID)

    verdict = check_credentials()

    assert verdict.ok
    assert verdict.metadata["source"] == f"JADA_GOOGLE_TOKEN_SECRET_ID={SECRET_ID}"
    assert google_emulator.calls["token"] == 1


def test_a_missing_secret_names_the_secret_and_the_fix(aws, monkeypatch):
    monkeypatch.setenv("JADA_GOOGLE_TOKEN_SECRET_ID", "jada/absent")

    verdict = check_credentials()

    assert verdict.kind == "missing_file"
    assert "jada/absent" in verdict.description
    assert "--store secretsmanager" in verdict.description
