"""Commands of the detect area: detect, alerts, alert, notify, gate."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import datetime
from pathlib import Path

import click

from .. import settings
from ..errors import UsageError
from .options import DATE, console, db_option, format_option, open_store, progress_bar

# Pending changes listed after a detect pass (the rest are counted in the summary line).
MAX_PENDING = 20


@click.command("detect")
@click.option(
    "--since",
    type=DATE,
    metavar="DATE",
    help="Only file changes whose first bad run started at or after DATE (ISO 8601, "
    "UTC); older nights are still read as the baseline.",
)
@click.option("--machine", help="Only series measured on this machine (its recorded name).")
@click.option(
    "-k",
    "pattern",
    metavar="PATTERN",
    help="Only series whose name (operator provider variant shape dtype mode metric) "
    "contains PATTERN, or matches it as a glob when it has * ? or [.",
)
@db_option
def detect_cmd(
    since: datetime | None, machine: str | None, pattern: str | None, db: str | None
) -> None:
    """Find regressions and improvements in every series and file alerts (idempotent).

    Running it twice on the same data files nothing new; an alert already filed for a change is
    updated and keeps its triage status. The method is described in docs/detection.md.
    """
    from ..analysis.detect import detect
    from ..report.alerts import detect_summary, detect_table, pending_lines

    with open_store(db) as store, progress_bar() as bar:
        task = bar.add_task("detect", total=4)

        def step(what: str, i: int, n: int) -> None:
            bar.update(task, description=what, completed=i, total=n)

        report = detect(store, since=since, machine=machine, pattern=pattern, progress=step)
    if report.findings:
        console().print(detect_table(report))
    else:
        click.echo(detect_summary(report))
    for line in pending_lines(report)[:MAX_PENDING]:
        click.echo(line)


@click.command("alerts")
@click.option(
    "--status",
    metavar="STATUS",
    help="Only alerts with this triage status: new, confirmed, acknowledged, false_positive "
    "or fixed.",
)
@click.option("--machine", help="Only alerts on this machine.")
@click.option("--operator", help="Only alerts of this operator.")
@click.option("--direction", type=click.Choice(["regression", "improvement"]))
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@format_option("table", "json")
@db_option
def alerts_cmd(
    status: str | None,
    machine: str | None,
    operator: str | None,
    direction: str | None,
    limit: int | None,
    fmt: str,
    db: str | None,
) -> None:
    """List alerts with their triage status, most severe first."""
    from ..report.alerts import alerts_json, alerts_table

    with open_store(db, create=False) as store:
        rows = store.alerts.find(
            status=status, machine=machine, operator=operator, direction=direction, limit=limit
        )
    if fmt == "json":
        click.echo(alerts_json(rows))
    else:
        console().print(alerts_table(rows))


@click.command("alert")
@click.argument("alert_id", type=int)
@click.option(
    "--set",
    "new_status",
    metavar="STATUS",
    help="Change the status: new, confirmed, acknowledged, false_positive or fixed.",
)
@click.option("--note", metavar="TEXT", help="Why (kept in the alert's history).")
@click.option("--actor", metavar="NAME", help="Who is triaging [default: $USER].")
@db_option
def alert_cmd(
    alert_id: int, new_status: str | None, note: str | None, actor: str | None, db: str | None
) -> None:
    """Show one alert and its history, or change its triage status (--set STATUS --note TEXT)."""
    from ..report.alerts import alert_detail

    if note is not None and new_status is None:
        raise UsageError("--note goes with --set STATUS; a note alone changes nothing")
    with open_store(db) as store:
        if new_status is not None:
            who = actor or os.environ.get("USER") or _user()
            store.alerts.set_status(alert_id, new_status, actor=who, note=note)
        row = store.alerts.get(alert_id)
        history = store.alerts.history(alert_id)
    console().print(alert_detail(row, history))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.command("notify")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "slack", "discord", "github-issue"]),
    default="markdown",
    show_default=True,
    help="What to render.",
)
@click.option(
    "--webhook",
    metavar="URL",
    help="POST the payload to this Slack- or Discord-compatible webhook "
    "[default: the `webhook` setting; nothing is posted when unset].",
)
@click.option(
    "--base-url", metavar="URL", help="Dashboard URL for links [default: the `base_url` setting]."
)
@click.option(
    "--status",
    metavar="STATUS",
    default="new",
    show_default=True,
    help="Which alerts to announce (a triage status).",
)
@click.option("--machine", help="Only alerts on this machine.")
@click.option(
    "--since", type=DATE, metavar="DATE", help="Only alerts filed at or after DATE (ISO 8601, UTC)."
)
@db_option
def notify_cmd(
    fmt: str,
    webhook: str | None,
    base_url: str | None,
    status: str,
    machine: str | None,
    since: datetime | None,
    db: str | None,
) -> None:
    """Render new alerts for Markdown, Slack, Discord or a GitHub issue, or post them.

    Alerts are grouped by the build change that caused them, most severe first.
    """
    from ..notify import notify

    with settings.scope(webhook=webhook, base_url=base_url):
        hook, base = settings.get("webhook"), settings.get("base_url")
    with open_store(db, create=False) as store:
        result = notify(
            store,
            fmt=fmt,
            webhook=hook,
            base_url=base,
            status=status,
            machine=machine,
            since=since,
        )
    if result.posted:
        click.echo(
            f"posted {len(result.notification.alert_ids)} alert(s) to the webhook "
            f"(HTTP {result.status_code})"
        )
    elif hook:
        click.echo("nothing to post: no alerts with status " + status)
    else:
        click.echo(result.text, nl=not result.text.endswith("\n"))


@click.command("gate")
@click.option(
    "--policy",
    "policy_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Gate policy (TOML); see examples/gate.toml.",
)
@click.option(
    "--baseline",
    required=True,
    metavar="BUILD",
    help="The build to compare against: an exact Triton version (3.8.0), else a run UUID "
    "prefix, else a Triton commit prefix; force one with version:, run: or commit:.",
)
@click.option(
    "--candidate", required=True, metavar="BUILD", help="The build to gate (as --baseline)."
)
@format_option("table", "markdown")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the Markdown summary to this file.",
)
@db_option
def gate_cmd(
    policy_path: Path, baseline: str, candidate: str, fmt: str, output: Path | None, db: str | None
) -> None:
    """Pass or fail a release: a policy over operators x dtypes x GPUs, baseline vs candidate.

    Exit status 0 when the gate passes, 1 when it fails, 2 for a usage error (bad policy,
    unknown build). A blocking case that is missing, failed or incorrect fails with that reason.
    """
    from ..analysis.gate import evaluate, load_policy
    from ..report.gate import gate_markdown, gate_table

    policy = load_policy(policy_path)
    with open_store(db, create=False) as store:
        result = evaluate(store, policy, baseline, candidate, policy_name=policy_path.name)
    md = gate_markdown(result)
    if output is not None:
        try:
            output.write_text(md, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {output} ({e.strerror})") from None
    if fmt == "markdown":
        click.echo(md, nl=False)
    else:
        console().print(gate_table(result))
    sys.exit(0 if result.passed else 1)


COMMANDS = [detect_cmd, alerts_cmd, alert_cmd, notify_cmd, gate_cmd]
