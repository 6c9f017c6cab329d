"""The operator commands: a user with a known id, grants by reference, tokens issued and revoked."""

from __future__ import annotations

import re
import uuid

import pytest

from cli.main import main
from core.database import Database
from core.errors import Unauthorized
from core.settings import Settings
from core.users import authenticate


@pytest.fixture(autouse=True)
def operator_env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


def printed(capsys: pytest.CaptureFixture[str], name: str) -> str:
    found = re.search(rf"^{name}:\s+(\S+)$", capsys.readouterr().out, re.MULTILINE)
    assert found, name
    return found.group(1)


def test_grants_by_reference_apply_once_and_tokens_revoke_by_id(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    user_id = str(uuid.uuid4())
    assert main(["user", "create", "--name", "ana", "--id", user_id]) == 0
    assert printed(capsys, "user_id") == user_id
    for _ in range(2):
        assert main(["credits", "grant", user_id, "300", "--reference", "pay_9"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"balance of {user_id}: 300") == 2
    assert "was applied before" in out
    assert main(["credits", "grant", user_id, "-500", "--reference", "refund_9"]) == 1
    assert "exceeds the balance" in capsys.readouterr().err
    assert main(["token", "issue", user_id, "--label", "ci"]) == 0
    out = capsys.readouterr().out
    token_id = re.search(r"^token_id: (\d+)$", out, re.MULTILINE)
    token = re.search(r"^token:\s+(\S+)$", out, re.MULTILINE)
    assert token_id and token
    assert str(authenticate(db.sessions, token.group(1)).user_id) == user_id
    assert main(["token", "revoke", token_id.group(1)]) == 0
    with pytest.raises(Unauthorized):
        authenticate(db.sessions, token.group(1))
    assert main(["token", "revoke", token_id.group(1)]) == 1
