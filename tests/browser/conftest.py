"""A real `tritonwatch serve` subprocess on a free port over a seeded SQLite file, and Chromium.

The server's log is attached to any failure; screenshots go to test-artifacts/ (gitignored).
Without Debian's Chromium the tests skip, except in CI (env CI set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.server import ServeProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from webseed import Seeded, seed  # noqa: E402

CHROMIUM = os.environ.get("TRITONWATCH_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'tritonwatch[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Server:
    url: str
    log: Path
    seeded: Seeded
    token: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    problem = _missing()
    if problem:
        _skip_or_fail(problem)
    from tritonwatch.store import Store

    tmp = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{tmp / 'dash.db'}"
    with Store.open(url) as st:
        seeded = seed(st, detector=True)  # the real detection pass files the alerts
        token = st.access.create_token("acme", "browser").token
    proc = ServeProcess(
        url,
        tmp / "server.log",
        env={"TRITONWATCH_CONFIG": str(tmp / "none.toml")},
        clean_env=True,
        cwd=tmp,
    )
    srv = Server(url=proc.url, log=proc.log_path, seeded=seeded, token=token)
    try:
        try:
            proc.start(timeout=30)
        except RuntimeError as e:
            pytest.fail(f"tritonwatch serve did not start: {e}")
        yield srv
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: object, server: Server, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page that records JS errors and dialogs; attaches the server log on failure."""
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900},  # type: ignore[attr-defined]
        accept_downloads=True,
    )
    pg = ctx.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
        request.node.add_report_section("call", "server log", server.log_text())
    ctx.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
