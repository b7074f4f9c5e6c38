"""What the database can hold is checked in the store, for every way a run gets in.

A valid ``tritonwatch.run/1`` run may carry a shape whose JSON form is longer than the
``series.shape`` column; PostgreSQL used to answer ``tritonwatch import`` with a DataError
traceback, SQLite stored it. Both now refuse it with one line naming the field.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.errors import InputError, NotFoundError, UsageError
from tritonwatch.runformat import Run, dump_run, parse_run
from tritonwatch.store import Store, limits
from tritonwatch.store import schema as s
from tritonwatch.store.limits import MAX_SHAPE, max_length, storable_problem
from tritonwatch.testing import make_run, make_run_document


def _long_shape_run():  # type: ignore[no-untyped-def]
    shape = {f"dim_{i:03d}": "x" * 20 for i in range(60)}  # about 1,700 characters of JSON
    result = {
        "operator": "matmul",
        "provider": "triton",
        "shape": shape,
        "dtype": "fp16",
        "metric": "time",
        "unit": "ms",
        "samples": [1.0, 1.1, 1.2],
    }
    return make_run(results=[result])


def test_limits_are_read_from_the_schema() -> None:
    assert MAX_SHAPE == max_length(s.series.c.shape) == s.series.c.shape.type.length


def test_a_long_shape_is_a_valid_run_the_database_cannot_hold() -> None:
    run = _long_shape_run()
    assert len(json.dumps(run.results[0].shape, separators=(",", ":"))) > MAX_SHAPE
    assert storable_problem(run) == (
        f"results.0.shape: its JSON form is longer than {MAX_SHAPE} characters"
    )


def test_the_store_refuses_it_and_writes_nothing(store: Store) -> None:
    with pytest.raises(InputError, match=r"results\.0\.shape: its JSON form is longer"):
        store.runs.add(_long_shape_run())
    with pytest.raises(InputError, match=r"results\.0\.shape"):
        store.runs.add_many([make_run(seed=1), _long_shape_run()])
    assert store.info().counts["runs"] == 0


def test_import_prints_one_line_not_a_traceback(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(dump_run(_long_shape_run())) + "\n")
    res = CliRunner().invoke(main, ["import", str(path), "--db", db_url])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "DataError" not in res.output
    assert f"results.0.shape: its JSON form is longer than {MAX_SHAPE} characters" in res.output
    with Store.open(db_url) as st:
        assert st.info().counts["runs"] == 0


# -- numbers and times no database row can hold (issue 15): the same answer on both backends ----
@pytest.mark.parametrize("ref", ["¹", "¹²³⁴", "٣٣٣٣", "9" * 5000, str(2**64)])
def test_ids_beyond_ascii_digits_or_64_bits_are_not_found(store: Store, ref: str) -> None:
    store.runs.add(make_run())
    with pytest.raises((NotFoundError, UsageError)):
        store.reports.codegen_detail(ref)
    with pytest.raises((NotFoundError, UsageError)):
        store.runs.get(ref)


def test_an_offset_beyond_64_bits_is_a_usage_error(store: Store) -> None:
    for find in (
        store.runs.find,
        store.alerts.find,
        store.overview.results,
        store.reports.codegen_page,
        store.reports.comparison_page,
    ):
        with pytest.raises(UsageError, match="offset"):
            find(offset=2**63)  # type: ignore[operator]
        assert find(offset=2**63 - 1) == []  # type: ignore[operator]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_outside_utc_years_1_to_9999_is_invalid(when: str) -> None:
    doc = dump_run(make_run())
    doc["run"]["started_at"] = when
    with pytest.raises(ValueError, match="run.started_at: .*outside years 1 to 9999"):
        parse_run(doc)


def test_a_number_beyond_a_double_is_refused_on_both_backends(store: Store) -> None:
    doc = dump_run(make_run())
    doc["results"][0]["extra"] = {"x": 1}
    run = parse_run(json.dumps(doc).replace('{"x": 1}', '{"x": 1e309}'))
    assert run.results[0].extra == {"x": float("inf")}
    with pytest.raises(InputError, match=r"results\.0\.extra\.x: .*1e309"):
        store.runs.add(run)
    assert store.info().counts["runs"] == 0


# -- the quick check before the walk (issue 12's import speed) answers as the walk does --------
_BAD = ["a\x00b", "\x00", math.nan, math.inf, -math.inf, float("1e309")]


def _documents() -> list[dict[str, Any]]:
    """A run document with a NUL or non-finite value planted in each place the walk looks."""
    base = make_run_document(n_results=2)
    base["run"]["hud"] = {"record": {"runners": [{"name": "r", "x": [1, 2.5, None]}]}, "p": []}
    base["results"][1]["extra"] = {"hud": {"part": 0, "input_shape": "(1, 2)"}, "t": (1, 2)}
    docs = [base]
    spots: list[Callable[[dict[str, Any], Any], None]] = [
        lambda d, v: d["run"]["hud"]["record"]["runners"][0].__setitem__("name", v),
        lambda d, v: d["run"]["hud"]["record"]["runners"][0]["x"].append(v),
        lambda d, v: d["run"]["hud"]["p"].append({"k": [[v]]}),
        lambda d, v: d["run"].__setitem__("note", v),
        lambda d, v: d["machine"].__setitem__("driver", v),
        lambda d, v: d["machine"].__setitem__("info", {"a": {"b": v}}),
        lambda d, v: d["build"]["triton"].__setitem__("extra", [v]),
        lambda d, v: d["results"][1]["extra"]["hud"].__setitem__("input_shape", v),
        lambda d, v: d["results"][0]["shape"].__setitem__("M", v),
        lambda d, v: d["results"][1].__setitem__("error", v),
        lambda d, v: d["results"][0].__setitem__("variant", v),
    ]
    for spot in spots:
        for v in _BAD:
            d = copy.deepcopy(base)
            spot(d, v)
            docs.append(d)
    for v in (None, "a\x00b", math.nan):  # a bad key, alone or with a second problem
        d = copy.deepcopy(base)
        d["run"]["hud"]["record"]["a\x00"] = 1
        if v is not None:
            d["results"][0]["extra"] = {"z": v}
        docs.append(d)
    return docs


def _walk_only(run: Run) -> str | None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "_clean_values", lambda run: False)
        return limits.storable_problem(run)


def test_the_quick_check_finds_what_the_walk_finds_at_the_same_path() -> None:
    found = 0
    for doc in _documents():
        try:
            run = parse_run(doc)
        except ValueError:  # a value the run format refuses itself (a NaN in a shape)
            continue
        expected = _walk_only(run)
        assert limits.storable_problem(run) == expected
        found += expected is not None
    assert found >= 50  # most plantings reach the walk
    assert _walk_only(parse_run(_documents()[0])) is None


def test_values_the_walk_does_not_look_into_are_left_to_it() -> None:
    run = make_run()
    run.run.__pydantic_extra__["when"] = run.run.started_at  # not JSON: the walk skips it
    run.run.__pydantic_extra__["pair"] = (math.nan, "\x00")  # a tuple: the walk skips it too
    assert limits.storable_problem(run) is None


@pytest.mark.parametrize("field", ["label", "command", "suite"])
def test_the_quick_check_reads_declared_fields_of_a_run_without_extra_keys(field: str) -> None:
    doc = make_run_document()
    doc["run"][field] = "a\x00b"
    run = parse_run(doc)
    assert not run.run.model_extra
    assert limits.storable_problem(run) == _walk_only(run) is not None
