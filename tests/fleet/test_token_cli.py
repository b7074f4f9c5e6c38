"""`tritonwatch token create|list|revoke`: shown once, stored hashed, revocation is immediate."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.store import Store


def _run(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_create_prints_the_token_once_and_stores_only_its_hash(sqlite_url: str) -> None:
    res = _run("token", "create", "--org", "amd", "--name", "mi300x-1", "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert token.startswith("tw_") and len(token) > 30 and "\n" not in token
    assert "shown only now" in res.stderr and "scopes: upload" in res.stderr
    listed = _run("token", "list", "--format", "json", "--db", sqlite_url)
    rows = json.loads(listed.stdout)
    assert [(r["org"], r["name"], r["scopes"], r["revoked_at"]) for r in rows] == [
        ("amd", "mi300x-1", ["upload"], None)
    ]
    assert token not in listed.stdout
    with Store.open(sqlite_url) as st:
        with st.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT token_hash FROM tokens").scalar_one()
        assert token not in stored and len(stored) == 64
        row = st.access.check_token(token)
        assert row is not None and row.actor == "amd/mi300x-1"
    table = _run("token", "list", "--org", "amd", "--db", sqlite_url)
    assert "mi300x-1" in table.stdout and token not in table.stdout


def test_scopes_revoke_and_errors(sqlite_url: str) -> None:
    res = _run(
        "token",
        "create",
        "--org",
        "acme",
        "--name",
        "alice",
        "--scope",
        "triage",
        "--scope",
        "views",
        "--db",
        sqlite_url,
    )
    token = res.stdout.strip()
    with Store.open(sqlite_url) as st:
        row = st.access.check_token(token)
        assert row is not None and row.scopes == ("triage", "views")
    again = _run("token", "create", "--org", "acme", "--name", "alice", "--db", sqlite_url)
    assert again.exit_code == 2 and again.output.startswith("error: ") and "already" in again.output
    res = _run("token", "revoke", str(row.id), "--db", sqlite_url)
    assert res.exit_code == 0 and "revoked token" in res.stdout
    with Store.open(sqlite_url) as st:
        assert st.access.check_token(token) is None
    missing = _run("token", "revoke", "999", "--db", sqlite_url)
    assert missing.exit_code == 2 and "no token with id 999" in missing.output
    assert "Traceback" not in missing.output
    bad = _run(
        "token", "create", "--org", "acme", "--name", "x", "--scope", "admin", "--db", sqlite_url
    )
    assert bad.exit_code == 2 and "admin" in bad.output
