"""Typed settings with help text and one precedence order.

A value comes from, first match wins: a command-line option (the CLI passes it through
:func:`scope`), the environment variable ``TRITONWATCH_<NAME>``, the file ``tritonwatch.toml`` in
the working directory (or the file named by ``TRITONWATCH_CONFIG``), then the default.
Tests change settings with ``with settings.scope(db="sqlite:///..."):``.
Every setting is listed in ``docs/settings.md``; a test checks the page matches.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import InputError, UsageError


def data_dir() -> Path:
    """The per-user folder for the default database, build environments and caches."""
    return Path(platformdirs.user_data_dir("tritonwatch", appauthor=False))


def _default_db() -> str:
    return f"sqlite:///{data_dir() / 'tritonwatch.db'}"


def _float(v: Any) -> float:
    return float(v)


def _int(v: Any) -> int:
    return int(v)


def _str(v: Any) -> str:
    return str(v)


def _opt_str(v: Any) -> str | None:
    return None if v in (None, "") else str(v)


@dataclass(frozen=True)
class Setting:
    """One setting: its name, how to parse it, its default and the help a user reads."""

    name: str
    parse: Callable[[Any], Any]
    default: Callable[[], Any]
    help: str

    @property
    def env(self) -> str:
        return "TRITONWATCH_" + self.name.upper()


def _s(name: str, parse: Callable[[Any], Any], default: Any, help: str) -> Setting:
    factory = default if callable(default) else (lambda d=default: d)
    return Setting(name, parse, factory, help)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        _s(
            "db",
            _str,
            _default_db,
            "Results database URL: sqlite:///PATH (the default, a file in the user data folder) "
            "or postgresql://USER@HOST/DB.",
        ),
        _s(
            "org",
            _opt_str,
            None,
            "Organisation that runs made here belong to (stamped on each run).",
        ),
        _s(
            "machine_name",
            _opt_str,
            None,
            "Name recorded for this machine; defaults to the host name.",
        ),
        _s(
            "device",
            _str,
            "auto",
            "Where kernels run: auto (the GPU if there is one, else cpu), cuda or cpu.",
        ),
        _s(
            "target_ci",
            _float,
            0.005,
            "Adaptive stop: relative width of the median's 95% CI to reach (0.005 = 0.5%).",
        ),
        _s(
            "budget_ms",
            _float,
            2000.0,
            "Measuring budget per case in milliseconds, compile and warm-up excluded.",
        ),
        _s(
            "min_time_ms",
            _float,
            50.0,
            "GPU timings sample at least this long, even once the CI is narrow, so a "
            "measurement spans the GPU's clock and power changes (0 = stop on the CI alone).",
        ),
        _s(
            "case_timeout_s",
            _float,
            300.0,
            "A worker that produces nothing for this many seconds is killed; its case errors.",
        ),
        _s(
            "cpu_threads",
            _int,
            1,
            "Threads torch uses in CPU timings (0 = torch's default); 1 keeps them reproducible. "
            "An A/B comparison pins its workers to this many cores (none with 0).",
        ),
        _s(
            "seed",
            _int,
            0,
            "Seed for input data and the shuffled case order (recorded with each run).",
        ),
        _s(
            "threshold",
            _float,
            0.02,
            "Practical threshold for A/B verdicts: a ratio within 1 +/- threshold is 'same'.",
        ),
        _s(
            "server",
            _opt_str,
            None,
            "URL of a tritonwatch server that `push` and `nightly` send runs to.",
        ),
        _s(
            "token",
            _opt_str,
            None,
            "Bearer token for the server (create with `tritonwatch token create`).",
        ),
        _s(
            "base_url",
            _opt_str,
            None,
            "Public URL of the dashboard, used for links in notifications.",
        ),
        _s(
            "webhook",
            _opt_str,
            None,
            "Slack- or Discord-compatible webhook URL that `notify` posts to.",
        ),
        _s(
            "envs_dir",
            _str,
            lambda: str(data_dir() / "envs"),
            "Folder holding build environments made by `tritonwatch env create`.",
        ),
        _s(
            "cache_dir",
            _str,
            lambda: str(data_dir() / "cache"),
            "Folder of the content-addressed compile cache used by `blast`.",
        ),
        _s(
            "cache_max_mb",
            _float,
            2048.0,
            "Size cap of the compile cache in MiB; `blast` drops the least recently used "
            "entries beyond it (`tritonwatch cache prune` does it by hand).",
        ),
        _s(
            "targets",
            _str,
            "sm80,sm90,sm100,gfx942",
            "Comma-separated compile targets for `blast` and `run --codegen`.",
        ),
        _s(
            "jobs",
            _int,
            lambda: max(1, (os.cpu_count() or 2)),
            "Parallel compile workers for `blast`.",
        ),
        _s("host", _str, "127.0.0.1", "Address `serve` listens on."),
        _s("port", _int, 8000, "Port `serve` listens on."),
        _s("max_upload_mb", _float, 32.0, "Largest run the upload API accepts, in MiB."),
        _s(
            "org_upload_mb_per_s",
            _float,
            4.0,
            "Upload bytes each organisation may send per second, in MiB, on average (bursts up "
            "to max_upload_mb); beyond it uploads get 429 with Retry-After. 0 turns it off.",
        ),
        _s(
            "max_run_results",
            _int,
            20_000,
            "Most results one uploaded run may hold; a larger run is refused (413).",
        ),
        _s(
            "max_result_samples",
            _int,
            10_000,
            "Most samples one result of an uploaded run may hold; more is refused (413).",
        ),
        _s(
            "max_run_new_series",
            _int,
            20_000,
            "Most series one uploaded run may create (series not stored before); more is "
            "refused (413). A first upload of a suite creates one series per case, so keep "
            "it at least the largest suite's size.",
        ),
        _s(
            "header_timeout_s",
            _float,
            10.0,
            "Seconds `serve` gives a new connection to send a request's headers; "
            "idle and half-sent connections are closed after it.",
        ),
        _s(
            "keep_alive_s",
            _float,
            5.0,
            "Seconds `serve` keeps an idle connection open between two requests.",
        ),
        _s(
            "body_timeout_s",
            _float,
            60.0,
            "Seconds a request may take to send its whole body; a slower one is answered 408.",
        ),
    ]
}

_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tritonwatch_settings", default=None
)


def _toml_path() -> Path:
    return Path(os.environ.get("TRITONWATCH_CONFIG", "tritonwatch.toml"))


def _toml_values() -> dict[str, Any]:
    path = _toml_path()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML ({e}); fix or remove the file", path=str(path)) from e
    table = data.get("tritonwatch", data)
    unknown = sorted(k for k, v in table.items() if k not in SETTINGS and not isinstance(v, dict))
    if unknown:
        raise InputError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(SETTINGS))}",
            path=str(path),
        )
    return {k: v for k, v in table.items() if k in SETTINGS}


def _lookup(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise UsageError(
            f"unknown setting {name!r}; known: {', '.join(sorted(SETTINGS))}"
        ) from None


def get(name: str) -> Any:
    """The value of a setting, by the precedence order in this module's docstring."""
    s = _lookup(name)
    over = _overrides.get() or {}
    if name in over and over[name] is not None:
        raw, source = over[name], "option"
    elif s.env in os.environ:
        raw, source = os.environ[s.env], s.env
    else:
        toml = _toml_values()
        if name in toml:
            raw, source = toml[name], str(_toml_path())
        else:
            return s.default()
    try:
        return s.parse(raw)
    except (TypeError, ValueError):
        raise UsageError(f"setting {name} from {source}: cannot use {raw!r}") from None


@contextlib.contextmanager
def scope(**values: Any) -> Iterator[None]:
    """Override settings inside a ``with`` block (the CLI's options and tests use this).

    A value of None means "not given" (an option left out) and keeps what an outer scope set.
    """
    for name in values:
        _lookup(name)
    given = {k: v for k, v in values.items() if v is not None}
    token = _overrides.set({**(_overrides.get() or {}), **given})
    try:
        yield
    finally:
        _overrides.reset(token)


def describe() -> list[tuple[str, str, str, str]]:
    """(name, environment variable, default, help) for each setting, for docs and `--help`."""
    rows = []
    for s in SETTINGS.values():
        default = s.default()
        shown = (
            "(user data folder)"
            if isinstance(default, str) and str(data_dir()) in default
            else repr(default)
        )
        if s.name == "jobs":
            shown = "(number of CPUs)"
        rows.append((s.name, s.env, shown, s.help))
    return rows
