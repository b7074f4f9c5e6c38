"""``tritonwatch nightly``: run the configured suite, push, detect and notify in one command.

Made for a scheduler (cron, a systemd timer, a GitHub Actions self-hosted runner, a Kubernetes
CronJob): every step runs even when an earlier one failed (a failed push does not stop detection
on the local history; a failed run still pushes what was spooled before), the summary says what
each step did, and the exit code says what needs attention (:data:`EXIT_CODES`).

The configuration is a TOML file (see ``examples/nightly.toml``). Tokens are never read from it:
the push token comes from ``TRITONWATCH_TOKEN`` (or the ``token`` setting) or from a file named
by ``push.token_file`` that only the runner's user can read.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import settings
from .errors import InputError, TritonwatchError, UsageError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

#: Exit codes, most severe first; when several apply the first listed wins.
EXIT_CODES: dict[int, str] = {
    2: "configuration or usage error: nothing was attempted",
    3: "the suite did not run, or some cases errored or were incorrect",
    4: "some runs were not pushed (server unreachable or refused them); they stay spooled",
    5: "notification failed (the webhook refused or could not be reached)",
    6: "detection failed (the message says why; the run and push still happened)",
    1: "new regressions were found (alerts filed tonight)",
    0: "everything ran, was pushed, and no new regression was found",
    130: "interrupted (Ctrl-C): the cases that finished are stored; later steps did not run",
}
_SEVERITY = [3, 4, 6, 5, 1]


@dataclass(frozen=True)
class RunSection:
    enabled: bool = True
    suite: str = "nightly"
    patterns: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    device: str | None = None
    gpus: list[int] = field(default_factory=list)
    budget_ms: float | None = None
    target_ci: float | None = None
    label: str | None = "nightly"
    seed: int | None = None
    plugins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PushSection:
    enabled: bool = True
    server: str | None = None
    token_file: str | None = None
    retries: int = 5
    backoff_s: float = 2.0
    timeout_s: float = 120.0


@dataclass(frozen=True)
class DetectSection:
    enabled: bool = True
    this_machine_only: bool = True


@dataclass(frozen=True)
class NotifySection:
    enabled: bool = True
    format: str = "markdown"
    webhook: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class NightlyConfig:
    db: str | None = None
    org: str | None = None
    machine_name: str | None = None
    run: RunSection = field(default_factory=RunSection)
    push: PushSection = field(default_factory=PushSection)
    detect: DetectSection = field(default_factory=DetectSection)
    notify: NotifySection = field(default_factory=NotifySection)


_SECTIONS = {
    "run": RunSection,
    "push": PushSection,
    "detect": DetectSection,
    "notify": NotifySection,
}


def _build(cls: type, table: dict[str, Any], where: str, path: str) -> Any:
    known = {f.name for f in fields(cls)}
    if "token" in table:
        raise InputError(
            f"{where}token: do not put tokens in a config file; use "
            "TRITONWATCH_TOKEN or push.token_file",
            path=path,
        )
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(
            f"unknown key(s) {', '.join(where + k for k in unknown)}; known: "
            f"{', '.join(sorted(known))}",
            path=path,
        )
    types = {f.name: str(f.type) for f in fields(cls)}
    for key, value in table.items():
        want = _TYPES.get(types[key].replace(" | None", ""))
        if want is None:
            continue
        if (
            value is None
            and "None" not in types[key]
            or (
                value is not None
                and (not isinstance(value, want) or isinstance(value, bool) and bool not in want)
            )
        ):
            raise InputError(f"{where}{key}: expected {types[key]}, got {value!r}", path=path)
    return cls(**table)


_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "list[str]": (list,),
    "list[int]": (list,),
}


def load_config(path: Path | None) -> NightlyConfig:
    """The nightly configuration from a TOML file, or the defaults when ``path`` is None."""
    if path is None:
        return NightlyConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read the config ({e.strerror})", path=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML ({e})", path=str(path)) from None
    top = {k: v for k, v in data.items() if k not in _SECTIONS}
    cfg = _build(NightlyConfig, top, "", str(path))
    parts = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise InputError(f"[{name}] must be a table", path=str(path))
        parts[name] = _build(cls, table, f"{name}.", str(path))
    return NightlyConfig(db=cfg.db, org=cfg.org, machine_name=cfg.machine_name, **parts)


@dataclass
class Step:
    """One step of the night: its name, whether it succeeded, and one line saying what it did."""

    name: str
    ok: bool
    summary: str
    code: int = 0  # the exit code this step asks for (0 when fine)


@dataclass
class NightlyReport:
    steps: list[Step] = field(default_factory=list)
    run_uuid: str | None = None
    interrupted: bool = False  # Ctrl-C: the steps after the one interrupted did not run

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        codes = {s.code for s in self.steps}
        return next((c for c in _SEVERITY if c in codes), 0)


def _token(cfg: PushSection) -> str | None:
    if cfg.token_file:
        try:
            return Path(cfg.token_file).read_text(encoding="utf-8").strip() or None
        except OSError as e:
            raise UsageError(
                f"cannot read push.token_file {cfg.token_file} ({e.strerror})"
            ) from None
    return settings.get("token")


def _run_step(store: Store, cfg: NightlyConfig, report: NightlyReport) -> None:
    from .bench.runner import RunOptions, run_suite

    r = cfg.run
    opts = RunOptions(
        suite=r.suite,
        patterns=r.patterns,
        providers=r.providers or None,
        dtypes=r.dtypes or None,
        device=r.device,
        budget_ms=r.budget_ms,
        target_ci=r.target_ci,
        label=r.label,
        seed=r.seed,
        gpus=r.gpus or None,
        plugins=r.plugins,
        command="tritonwatch nightly",
    )
    try:
        outcome = run_suite(opts, store)
    except TritonwatchError as e:
        report.steps.append(Step("run", False, str(e), 3))
        return
    bad = [o for o in outcome.outcomes if o.record.status in ("error", "incorrect")]
    n = len(outcome.outcomes)
    report.run_uuid = outcome.stored.uuid if outcome.stored else None
    stored = f"run {report.run_uuid[:8]}" if report.run_uuid else "nothing stored"
    line = f"{n} cases, {len(bad)} failed or incorrect, {outcome.elapsed_s:.0f} s; {stored}"
    if outcome.interrupted:
        line += " (interrupted: push, detect and notify did not run)"
        report.interrupted = True
    report.steps.append(
        Step(
            "run",
            not bad and report.run_uuid is not None,
            line,
            3 if bad or report.run_uuid is None else 0,
        )
    )


def _push_step(store: Store, cfg: NightlyConfig, report: NightlyReport) -> None:
    from .push import PushOptions, push

    p = cfg.push
    server = p.server or settings.get("server")
    if not server:
        report.steps.append(Step("push", True, "skipped: no server configured"))
        return
    token = _token(p)
    opts = PushOptions(attempts=p.retries + 1, backoff_s=p.backoff_s, timeout_s=p.timeout_s)
    try:
        res = push(store, server, token or "", opts)
    except TritonwatchError as e:
        report.steps.append(Step("push", False, str(e), 4))
        return
    line = (
        f"{res.count('created')} sent, {res.count('existing')} already there, "
        f"{res.pending} still spooled"
    )
    if res.stopped:
        line += f" ({res.stopped})"
    refused = [r for r in res.runs if r.outcome == "refused"]
    if refused:
        line += f"; refused {refused[0].uuid[:8]}: {refused[0].message}"
    report.steps.append(Step("push", res.complete, line, 0 if res.complete else 4))


def _detect_step(store: Store, cfg: NightlyConfig, report: NightlyReport) -> list[int]:
    from .analysis.detect import detect

    machine = None
    if cfg.detect.this_machine_only and report.run_uuid:
        machine = store.runs.get(report.run_uuid).summary.machine
    try:
        rep = detect(store, machine=machine)
    except TritonwatchError as e:
        report.steps.append(Step("detect", False, str(e), 6))
        return []
    except Exception as e:  # noqa: BLE001 - a detection bug must not cost the night's summary
        log.exception("detect failed")
        report.steps.append(Step("detect", False, f"crashed: {type(e).__name__}: {e}", 6))
        return []
    created = [f for f in rep.findings if f.action == "created"]
    regressions = [f for f in created if f.direction == "regression"]
    line = (
        f"{rep.n_series} series, {len(regressions)} new regression(s), "
        f"{len(created) - len(regressions)} new improvement(s)"
    )
    report.steps.append(Step("detect", True, line, 1 if regressions else 0))
    return [f.alert_id for f in created]


def _notify_step(
    store: Store, cfg: NightlyConfig, new_ids: list[int], report: NightlyReport
) -> str:
    from . import notify

    n = cfg.notify
    hook = n.webhook or settings.get("webhook")
    base = n.base_url or settings.get("base_url")
    if n.format not in ("markdown", "slack", "discord"):
        raise UsageError(f"notify.format {n.format!r}: use markdown, slack or discord")
    note = notify.notification(store, status="new").only(set(new_ids))
    if not note.groups:
        report.steps.append(Step("notify", True, "nothing new to announce"))
        return ""
    text, payload = notify.payload(note, n.format, base)
    if n.format != "markdown":
        text = notify.payload(note, "markdown", base)[0]
    if not hook:
        report.steps.append(
            Step(
                "notify",
                True,
                f"{len(note.alert_ids)} alert(s); no webhook configured, printed below",
            )
        )
        return text
    failed = notify.send(hook, payload, timeout=30.0).error
    if failed:
        report.steps.append(Step("notify", False, f"the webhook failed ({failed})", 5))
    else:
        report.steps.append(Step("notify", True, f"posted {len(note.alert_ids)} alert(s)"))
    return ""


def nightly(
    store: Store, cfg: NightlyConfig, *, on_step: Callable[[str], None] | None = None
) -> tuple[NightlyReport, str]:
    """Run the night's steps in order; returns the report and any text for the terminal."""
    report = NightlyReport()
    say = on_step or (lambda _s: None)
    text = ""
    with settings.scope(org=cfg.org, machine_name=cfg.machine_name):
        if cfg.run.enabled:
            say("run")
            _run_step(store, cfg, report)
        if report.interrupted:  # Ctrl-C stops the night: nothing half-measured goes out
            return report, text
        if cfg.push.enabled:
            say("push")
            _push_step(store, cfg, report)
        new_ids: list[int] = []
        if cfg.detect.enabled:
            say("detect")
            new_ids = _detect_step(store, cfg, report)
        if cfg.notify.enabled and cfg.detect.enabled:
            say("notify")
            text = _notify_step(store, cfg, new_ids, report)
    return report, text


def default_config_path() -> Path | None:
    """``TRITONWATCH_NIGHTLY_CONFIG``, else ``tritonwatch-nightly.toml`` here if it exists."""
    env = os.environ.get("TRITONWATCH_NIGHTLY_CONFIG")
    if env:
        return Path(env)
    here = Path("tritonwatch-nightly.toml")
    return here if here.is_file() else None
