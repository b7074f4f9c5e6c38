"""Settings: one precedence order (option > env > tritonwatch.toml > default), typed, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonwatch import settings
from tritonwatch.errors import InputError, UsageError


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "tritonwatch.toml"
    monkeypatch.setenv("TRITONWATCH_CONFIG", str(toml))
    monkeypatch.delenv("TRITONWATCH_TARGET_CI", raising=False)
    assert settings.get("target_ci") == 0.005
    toml.write_text("target_ci = 0.01\n")
    assert settings.get("target_ci") == 0.01
    monkeypatch.setenv("TRITONWATCH_TARGET_CI", "0.02")
    assert settings.get("target_ci") == 0.02
    with settings.scope(target_ci=0.03):
        assert settings.get("target_ci") == 0.03
        # An option not given keeps the outer scope's: a library call inside a caller's scope
        # (run_ab's budget_ms=None inside compare_bench's budget_ms=100) used to fall through
        # to the environment and the default, 2000 ms.
        with settings.scope(target_ci=None):
            assert settings.get("target_ci") == 0.03
    with settings.scope(target_ci=None):  # no outer scope: it falls through
        assert settings.get("target_ci") == 0.02
    assert settings.get("target_ci") == 0.02


def test_tritonwatch_table_in_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "cfg.toml"
    toml.write_text('[tritonwatch]\norg = "acme"\n\n[nightly]\nsuite = "smoke"\n')
    monkeypatch.setenv("TRITONWATCH_CONFIG", str(toml))
    assert settings.get("org") == "acme"


def test_bad_values_say_where_they_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRITONWATCH_BUDGET_MS", "lots")
    with pytest.raises(UsageError, match="TRITONWATCH_BUDGET_MS"):
        settings.get("budget_ms")
    toml = tmp_path / "tritonwatch.toml"
    monkeypatch.setenv("TRITONWATCH_CONFIG", str(toml))
    toml.write_text("target_ci = [\n")
    with pytest.raises(InputError, match="not valid TOML"):
        settings.get("seed")
    toml.write_text("targett_ci = 0.1\n")
    with pytest.raises(InputError, match="unknown setting"):
        settings.get("seed")
    with pytest.raises(UsageError, match="unknown setting"):
        settings.get("nope")


def test_default_database_is_in_the_user_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITONWATCH_DB")
    assert settings.get("db") == f"sqlite:///{settings.data_dir() / 'tritonwatch.db'}"


def test_every_setting_is_documented() -> None:
    page = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    for s in settings.SETTINGS.values():
        assert f"`{s.name}`" in page and s.env in page, s.name
        assert len(s.help) > 20
