"""A long HUD history read in a second process, so parsing it and storing it overlap.

A year of HUD records takes as long to parse and map into runs as to store. On a machine with
two or more cores, a reader process (:func:`main`, with the same Python) parses the
file and hands each run's document over a pipe while this process validates and stores the
previous ones. The reader imports no database code and writes nothing; the import's transaction,
its tally and its errors stay this process's, exactly as when it reads the file itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from ..errors import InputError
from ..runformat import Run
from . import hud
from .jsontext import Progress, rare_collections
from .options import ImportOptions, Tally

# Smaller files are read in this process: the reader's start (0.3 s) would cost more than the
# overlap saves (a 32 MB file holds about 25,000 records, two seconds of work).
MIN_BYTES = 32 << 20
# Runs read ahead of the store (a few MB); the reader waits on the pipe beyond that. Each run
# goes as its own message as soon as it is made: holding runs back to send them in batches made
# the reader a quarter slower (their memory was no longer reused while still in cache).
QUEUE = 256

COMMAND = "from tritonwatch.formats.background import main; main()"  # run with ``python -c``
_RUN, _TALLY, _ERROR, _BUG = b"R", b"T", b"E", b"B"


def wanted(size: int) -> bool:
    """Whether a HUD file of ``size`` bytes is read in a second process: two free cores, and a
    Python to start it with (an embedded interpreter has no ``sys.executable``)."""
    return size >= MIN_BYTES and _cores() >= 2 and bool(sys.executable)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def hud_runs(
    p: Path, opts: ImportOptions, tally: Tally, progress: Progress | None, fallback: datetime
) -> Iterator[Run]:
    """The runs of a JSON-each-row HUD file, read by a reader process; the same runs, tally and
    errors as :func:`.hud.read_runs` over :func:`.reader.json_rows` in this process."""
    path = str(p)
    parts: list[Any] = []
    with _Reader(p, opts, fallback) as reader:
        for tag, payload in reader.messages():
            if tag == _RUN:
                done, doc, new, reset = pickle.loads(payload)
                if progress and done:
                    progress(done)
                if reset:
                    parts.clear()
                parts += new
                if doc is not None:
                    yield hud.build_run(_Parts.decode(doc, parts), path)
            elif tag == _TALLY:
                tally.merge(pickle.loads(payload))
                return
            elif tag == _ERROR:
                error: InputError = pickle.loads(payload)  # main() sends no other kind
                raise error
            else:
                raise RuntimeError(f"the reader process of {path} failed:\n{payload.decode()}")
        raise InputError(
            f"the reader process stopped without finishing ({reader.why()})", path=path
        )


class _Reader:
    """The reader process and a thread that drains its pipe into a bounded queue, so it keeps
    reading while the store works (a 64 KB pipe alone would make them take turns)."""

    def __init__(self, p: Path, opts: ImportOptions, fallback: datetime) -> None:
        # The reader imports this very tritonwatch, whether installed or run from a checkout.
        root = str(Path(__file__).resolve().parents[2])  # the folder holding tritonwatch/
        paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-c", COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=env,
        )
        stdin, self.out = cast(IO[bytes], self.proc.stdin), cast(IO[bytes], self.proc.stdout)
        # A reader that died at once shows as a pipe closed early, told by messages() and why().
        with contextlib.suppress(BrokenPipeError), stdin:
            pickle.dump((str(p), opts, fallback), stdin)
        self.queue: queue.Queue[tuple[bytes, bytes]] = queue.Queue(QUEUE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, args=(self.out,), daemon=True)
        self.thread.start()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.proc.poll() is None:
            self.proc.kill()  # the importer stopped early (an error, Ctrl-C): it has no use for it
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        self.proc.wait()
        self.out.close()
        self.err.close()

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        while True:
            tag, payload = self.queue.get()
            if not tag:
                return
            yield tag, payload

    def why(self) -> str:
        code = self.proc.wait()
        self.err.seek(0)
        lines = self.err.read().decode(errors="replace").strip().splitlines()
        return f"exit code {code}" + (f": {lines[-1]}" if lines else "")

    def _drain(self, out: IO[bytes]) -> None:
        while not self.stop.is_set():
            head = out.read(5)
            if len(head) < 5:
                self._put((b"", b""))
                return
            n = int.from_bytes(head[1:], "little")
            payload = out.read(n)
            if len(payload) < n:  # the reader died in the middle of a message
                self._put((b"", b""))
                return
            self._put((head[:1], payload))

    def _put(self, item: tuple[bytes, bytes]) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class _Parts:
    """The runs of a HUD history share the entries of their table of parts (``run.hud.parts``,
    one per distinct record less its values): each entry crosses the pipe once, and the runs
    name theirs by number. Unpickling every run's own copy was a fifth of the importer's work.
    The entries sent are kept, so an id here always names the object it was given for."""

    LIMIT = 4_096  # entries remembered on both sides; past it both start again

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.kept: list[Any] = []

    def encode(self, doc: dict[str, Any]) -> tuple[list[Any], bool]:
        """Replace ``doc``'s parts by their numbers; the entries not sent before, and whether
        the numbering starts again."""
        table = doc["run"].get("hud")
        entries = table.get("parts") if isinstance(table, dict) else None
        if not isinstance(entries, list):
            return [], False
        reset = len(self.kept) + len(entries) > self.LIMIT
        if reset:
            self.refs.clear()
            self.kept.clear()
        new, numbers = [], []
        for entry in entries:
            n = self.refs.get(id(entry))
            if n is None:
                n = self.refs[id(entry)] = len(self.kept)
                self.kept.append(entry)
                new.append(entry)
            numbers.append(n)
        doc["run"]["hud"] = {**table, "parts": tuple(numbers)}  # JSON gives lists, never tuples
        return new, reset

    @staticmethod
    def decode(doc: dict[str, Any], parts: list[Any]) -> dict[str, Any]:
        table = doc["run"].get("hud")
        if isinstance(table, dict) and isinstance(table.get("parts"), tuple):
            table["parts"] = [parts[n] for n in table["parts"]]
        return doc


# -- the reader process ---------------------------------------------------------------------
def _send(out: IO[bytes], tag: bytes, payload: bytes) -> None:
    out.write(tag + len(payload).to_bytes(4, "little") + payload)


def _read(out: IO[bytes], path: str, opts: ImportOptions, fallback: datetime) -> None:
    from .reader import json_rows  # the reader module starts this one: imported when run

    tally = Tally()
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n

    rows = json_rows(Path(path), "hud", tally, progress)
    parts = _Parts()
    for doc in hud.read_docs(rows, path, opts, tally, fallback):
        new, reset = parts.encode(doc)
        _send(out, _RUN, pickle.dumps((done, doc, new, reset), pickle.HIGHEST_PROTOCOL))
        done = 0
    _send(out, _RUN, pickle.dumps((done, None, [], False)))
    _send(out, _TALLY, pickle.dumps(tally))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle
    path, opts, fallback = pickle.load(sys.stdin.buffer)
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)  # noqa: SIM115
    try:
        with rare_collections():
            _read(out, path, opts, fallback)
    except InputError as e:
        _send(out, _ERROR, pickle.dumps(e))
    except Exception:
        _send(out, _BUG, traceback.format_exc().encode())
    out.flush()
    os._exit(0)  # nothing to tear down; the importer waits for the pipe to close
