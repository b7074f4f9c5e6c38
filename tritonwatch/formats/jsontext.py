"""Reading JSON text at the speed and in the memory a bulk import needs.

``loads`` parses with orjson, several times faster than the standard library; where orjson
refuses what the standard library accepts (``NaN``/``Infinity``, ``1e400``, lone surrogates, a
byte-order mark, UTF-16 text), the standard library decides, so the files accepted and the
errors raised are the standard library's. One difference remains: an integer past 64 bits reads
as a float. :class:`JsonStream` reads the values of a file one at a time from a sliding buffer
(a list of a million records, on one line or pretty-printed, never sits in memory whole).
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..errors import InputError

JSONDecodeError = json.JSONDecodeError
Progress = Callable[[int], None]  # bytes read since the last call
SNIFF_LINE = 1 << 24  # a first line longer than this is streamed, never parsed whole to sniff
CHUNK = 1 << 20


def loads(text: str | bytes) -> Any:
    """``json.loads``, through orjson when it can."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def first_line(p: Path) -> tuple[bytes | None, bool]:
    """The first non-blank line (None when longer than SNIFF_LINE: a one-line list or object)
    and whether it is the only one; never holds more than SNIFF_LINE bytes of it."""
    with p.open("rb") as f:
        raw = f.readline(SNIFF_LINE + 1)
        while raw and not raw.strip():
            raw = f.readline(SNIFF_LINE + 1)
        first: bytes | None = raw
        if len(raw) > SNIFF_LINE and not raw.endswith(b"\n"):  # too long to sniff
            first = None
            while raw and not raw.endswith(b"\n"):  # skip to its end
                raw = f.readline(CHUNK)
        while chunk := f.read(CHUNK):
            if chunk.strip():
                return first, False
    return first, True


class JsonStream:
    """JSON values read one at a time from a sliding buffer over a text file."""

    def __init__(self, f: TextIO, path: str, progress: Progress | None) -> None:
        self.f, self.path, self.progress = f, path, progress
        self.buf, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder()

    def more(self) -> bool:
        chunk = self.f.read(CHUNK)
        if self.progress and chunk:
            self.progress(len(chunk.encode("utf-8")))
        self.eof = not chunk
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return bool(chunk)

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, char: str, what: str) -> None:
        c = self.peek()
        if c != char:
            found = f"{c!r}" if c else "the end of the file"
            raise InputError(f"not valid JSON: expected {what}, found {found}", path=self.path)
        self.pos += 1

    def value(self, where: str) -> Any:
        self.peek()
        while True:
            try:
                item, self.pos = self.decoder.raw_decode(self.buf, self.pos)
                return item
            except json.JSONDecodeError as e:
                if self.more():
                    continue
                raise InputError(
                    f"not valid JSON ({e.msg}) {where}; the file looks truncated", path=self.path
                ) from None

    def items(self) -> Iterator[Any]:
        """The elements of the list that starts here."""
        self.expect("[", "a list")
        while True:
            c = self.peek()
            if c == "]":
                self.pos += 1
                return
            if c == "":
                raise InputError(
                    "not valid JSON (the list never closes); the file looks truncated",
                    path=self.path,
                )
            yield self.value("in a list item")
            if self.peek() == ",":
                self.pos += 1

    def enter(self, key: str) -> None:
        """Move into the value of ``key`` of the object that starts here (keys before it are
        read and dropped: ClickHouse's ``meta`` is small)."""
        self.expect("{", "an object")
        while self.peek() == '"':
            name = self.value("in a key")
            self.expect(":", "':' after a key")
            if name == key:
                return
            self.value(f"in the value of {name!r}")
            if self.peek() == ",":
                self.pos += 1
        raise InputError(f"a JSON object without {key!r}", path=self.path)


def top_level(stream: JsonStream) -> Iterator[Any]:
    """Every top-level value of the file, the elements of a top-level list one by one."""
    while c := stream.peek():
        if c == "[":
            yield from stream.items()
        else:
            yield stream.value("at the top level")


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while importing, as bulk loaders do.

    An import allocates millions of short-lived containers (each parsed record) beside the
    ~100,000 long-lived objects of the modules already loaded; at the default thresholds the
    collector took about 30% of an import's time, rescanning them. Records hold no cycles (they
    are freed by reference counting, so memory stays bounded): freezing what exists and
    collecting every 100,000 allocations brings that under 2%.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 100, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
