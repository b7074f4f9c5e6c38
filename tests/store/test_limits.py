"""What the database can hold is checked in the store, for every way a run gets in.

A valid ``tritonwatch.run/1`` run may carry a shape whose JSON form is longer than the
``series.shape`` column; PostgreSQL used to answer ``tritonwatch import`` with a DataError
traceback, SQLite stored it. Both now refuse it with one line naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.errors import InputError
from tritonwatch.runformat import dump_run
from tritonwatch.store import Store
from tritonwatch.store import schema as s
from tritonwatch.store.limits import MAX_SHAPE, max_length, storable_problem
from tritonwatch.testing import make_run


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
