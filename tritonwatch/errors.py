"""The exception tree. User errors carry one line that says what was wrong and what to do.

::

    TritonwatchError              exit 2; printed as one line, never a traceback
    ├── UsageError                a bad option or argument value
    │   └── LimitError            more than a configured limit allows (the server answers 413)
    ├── InputError                a file that cannot be read or parsed (names path and line)
    ├── NotFoundError             a run, alert, environment ... that does not exist
    ├── StoreError                the results database
    │   ├── DatabaseUnavailable   unreachable server, wrong URL, missing driver
    │   ├── NotADatabase          the file is not a tritonwatch database
    │   ├── SchemaTooNew          written by a newer tritonwatch
    │   └── ReadOnlyLocation      the database cannot be created or written there
    ├── BenchError                the harness (suite file, unknown operator, worker failure)
    ├── CodegenError              build environments and the compile worker
    └── RemoteError               the upload server answered with an error or cannot be reached

Anything else that escapes is a bug: the CLI prints a traceback for it.
"""

from __future__ import annotations


class TritonwatchError(Exception):
    """Base of every error a user can cause; ``str()`` is the one line the CLI prints."""

    exit_code: int = 2


class UsageError(TritonwatchError):
    """A command-line option or argument has a value tritonwatch cannot use."""


class LimitError(UsageError):
    """More than a configured limit allows (results per run, samples per result, new series);
    the message names the setting that holds the limit."""


class InputError(TritonwatchError):
    """A file could not be read or parsed.

    The message names the file and, where it applies, the 1-based line number.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class NotFoundError(TritonwatchError):
    """A named thing (run, alert, environment, view) does not exist."""


class StoreError(TritonwatchError):
    """The results database cannot be used."""


class DatabaseUnavailable(StoreError):
    """The database URL is malformed, its driver is missing, or its server does not answer."""


class NotADatabase(StoreError):
    """The file or database exists but is not a tritonwatch database."""


class SchemaTooNew(StoreError):
    """The database was written by a newer tritonwatch than this one."""


class ReadOnlyLocation(StoreError):
    """The database cannot be created or written at that location."""


class BenchError(TritonwatchError):
    """The harness cannot do what was asked (bad suite file, unknown operator, worker failure)."""


class CodegenError(TritonwatchError):
    """A build environment or the compile worker cannot do what was asked."""


class RemoteError(TritonwatchError):
    """The tritonwatch server refused a request or could not be reached."""
