"""A large HUD history read by a reader process (formats/background.py) gives what reading it in
this process gives: the same runs, tally, progress and errors, and the reader never outlives the
import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tritonwatch.errors import InputError
from tritonwatch.formats import background
from tritonwatch.formats.exchange import ImportedFile, import_files, read_file
from tritonwatch.formats.options import ImportOptions
from tritonwatch.store import Store

HUD = Path(__file__).parent.parent / "fixtures" / "interop" / "hud"
RECORDS: list[dict[str, Any]] = json.loads((HUD / "hud_tritonbench_v3.json").read_text())


def _history(path: Path, nights: int = 3, extra: list[str] | None = None) -> Path:
    """The real tritonbench records, night after night, as JSON each row."""
    lines = [
        json.dumps({**r, "timestamp": r["timestamp"] + 86400 * night})
        for night in range(nights)
        for r in RECORDS
    ]
    path.write_text("\n".join(lines + (extra or [])) + "\n")
    return path


def _both(
    path: Path, monkeypatch: pytest.MonkeyPatch, opts: ImportOptions | None = None
) -> tuple[ImportedFile, ImportedFile]:
    """The file read here, then by a reader process (the size threshold taken away)."""
    here = read_file(path, opts=opts)
    with monkeypatch.context() as mp:
        mp.setattr(background, "MIN_BYTES", 0)
        mp.setattr(background, "_cores", lambda: 2)
        apart = read_file(path, opts=opts)
    return here, apart


def test_wanted_only_for_large_files_on_two_or_more_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "_cores", lambda: 2)
    assert background.wanted(background.MIN_BYTES)
    assert not background.wanted(background.MIN_BYTES - 1)
    monkeypatch.setattr(background.sys, "executable", "")  # embedded: nothing to start
    assert not background.wanted(1 << 40)
    monkeypatch.undo()
    monkeypatch.setattr(background, "_cores", lambda: 1)
    assert not background.wanted(1 << 40)


@pytest.mark.parametrize("name", ["json-each-row.json", "history"])
def test_the_reader_process_gives_the_same_runs_and_tally(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "history":  # a line that is not JSON and one orjson refuses (NaN) among them
        path = _history(tmp_path / name, extra=["{not json", '{"metric": {"x": NaN}}'])
    else:
        path = shutil.copy(HUD / name, tmp_path / name)
    here, apart = _both(Path(path), monkeypatch, ImportOptions(machine="m1"))
    assert here.format == apart.format == "hud"
    assert here.tally == apart.tally and here.tally.items > 0
    assert [r.model_dump() for r in here.runs] == [r.model_dump() for r in apart.runs]
    # The runs share their table of parts as they do when read here.
    if name == "history":
        ids = {id(p) for run in apart.runs for p in run.run.model_extra["hud"]["parts"]}
        assert len(ids) < sum(len(run.run.model_extra["hud"]["parts"]) for run in apart.runs)


def test_the_table_of_parts_survives_starting_again() -> None:
    parts = background._Parts()
    parts.LIMIT = 3
    shared = [{"p": i} for i in range(4)]
    docs = [{"run": {"hud": {"record": {}, "parts": shared[i : i + 2]}}} for i in range(3)]
    docs.append({"run": {"id": "no table"}})
    table: list[Any] = []
    for doc in docs:
        want = json.loads(json.dumps(doc))
        new, reset = parts.encode(doc)
        if reset:
            table.clear()
        table += new
        assert background._Parts.decode(doc, table) == want
    assert len(table) == 2  # started again at the second run and at the third


def test_an_import_stores_what_the_file_holds_and_counts_the_whole_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _history(tmp_path / "h.jsonl")
    monkeypatch.setattr(background, "MIN_BYTES", 0)
    monkeypatch.setattr(background, "_cores", lambda: 2)
    seen: list[int] = []
    report = import_files(store, [str(path)], progress=seen.append)
    assert sum(seen) == path.stat().st_size
    (f,) = report.files
    assert f.tally.items == f.stored + f.tally.skipped.total() == len(RECORDS) * 3
    assert report.added == len(store.runs.find(limit=None)) > 3
    assert import_files(store, [str(path)]).added == 0  # the same run ids: nothing twice


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"metric": 5}', ":4: 'metric' must be an object"),  # the reader's error, its line
        (  # the run's error, found when this process validates it
            json.dumps({**RECORDS[0], "timestamp": 1, "runners": [{"name": "x" * 300}]}),
            "cannot convert HUD records to a run: machine.name",
        ),
    ],
)
def test_an_error_in_the_file_is_the_same_error_and_writes_nothing(
    line: str, message: str, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps(r) for r in RECORDS[:3]] + [line]) + "\n")
    monkeypatch.setattr(background, "MIN_BYTES", 0)
    monkeypatch.setattr(background, "_cores", lambda: 2)
    with pytest.raises(InputError, match=message) as err:
        import_files(store, [str(path)])
    assert str(err.value).startswith(str(path))
    assert store.runs.find() == []


def test_a_reader_that_dies_is_an_error_not_a_short_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _history(tmp_path / "h.jsonl", nights=1)
    monkeypatch.setattr(background, "MIN_BYTES", 0)
    monkeypatch.setattr(background, "_cores", lambda: 2)
    monkeypatch.setattr(background, "COMMAND", "import sys; sys.exit('out of memory')")
    with pytest.raises(InputError, match=r"stopped without finishing \(exit code 1: out of memory"):
        read_file(path)


def test_the_reader_stops_when_the_import_does(tmp_path: Path) -> None:
    path = _history(tmp_path / "h.jsonl", nights=40)
    with background._Reader(path, ImportOptions(), background.datetime.now()) as reader:
        tag, _ = next(reader.messages())  # the importer fails after the first run
        assert tag == background._RUN
    assert reader.proc.returncode is not None
    assert not reader.thread.is_alive()


def test_the_reader_imports_no_database_code() -> None:
    code = (
        "import sys; from tritonwatch.formats import background; "
        "print(sorted(m for m in ('sqlalchemy', 'tritonwatch.store', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_the_store_refuses_stops_the_reader_at_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = {**RECORDS[0], "timestamp": RECORDS[0]["timestamp"] - 86400, "head_branch": "a\x00b"}
    path = tmp_path / "h.jsonl"
    _history(path, nights=300)  # 22 MB, far more than the pipe and the reader's buffer hold
    path.write_text(json.dumps(bad) + "\n" + path.read_text())  # the first run is refused
    monkeypatch.setattr(background, "MIN_BYTES", 0)
    monkeypatch.setattr(background, "_cores", lambda: 2)
    monkeypatch.setattr(background, "QUEUE", 2)  # the reader waits on the pipe, still running
    readers: list[background._Reader] = []
    enter = background._Reader.__enter__
    monkeypatch.setattr(background._Reader, "__enter__", lambda r: readers.append(r) or enter(r))
    try:
        import_files(store, [str(path)])
    except InputError as e:  # checked here: pytest.raises lets go of the frames (and reader)
        assert "cannot be stored: run.label" in str(e)
        (reader,) = readers
        assert reader.proc.poll() is not None and not reader.thread.is_alive()
    else:
        pytest.fail("the run with a NUL in its label was stored")
    assert store.runs.find() == []
