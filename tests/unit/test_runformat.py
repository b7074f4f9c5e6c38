"""The run format: the shipped JSON Schema matches the models, and validation explains itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tritonwatch.runformat import dump_run, json_schema, metric_better, parse_run, shipped_schema
from tritonwatch.testing import make_run


def test_shipped_schema_matches_the_models() -> None:
    assert shipped_schema() == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "regenerate tritonwatch/schemas/run-1.schema.json (see docs/run-format.md)")


def test_schema_validates_a_real_run() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(dump_run(make_run()), shipped_schema())


@pytest.mark.parametrize(("metric", "better"), [("time", "lower"), ("tflops", "higher"),
                                                ("gbps", "higher"), ("pct_peak", "higher"),
                                                ("registers", "lower"), ("my_score", "lower")])
def test_metric_direction(metric: str, better: str) -> None:
    assert metric_better(metric) == better


def test_explicit_direction_wins() -> None:
    assert metric_better("my_score", "higher") == "higher"


def test_errors_name_fields() -> None:
    doc = dump_run(make_run())
    doc["machine"] = {}
    doc["results"][0]["status"] = "great"
    with pytest.raises(ValueError) as e:
        parse_run(doc)
    assert "machine.name" in str(e.value) and "results.0.status" in str(e.value)


def test_ok_result_needs_a_number() -> None:
    doc = dump_run(make_run())
    del doc["results"][0]["samples"]
    with pytest.raises(ValueError, match="needs 'samples' or 'value'"):
        parse_run(doc)
    doc["results"][0]["status"] = "error"
    parse_run(doc)


def test_naive_times_are_utc() -> None:
    doc = dump_run(make_run())
    doc["run"]["started_at"] = "2026-11-01T02:00:00"
    assert parse_run(doc).run.started_at.isoformat() == "2026-11-01T02:00:00+00:00"


def test_fixture_is_valid() -> None:
    line = (Path(__file__).parents[1] / "fixtures" / "run-v1.jsonl").read_text().splitlines()[0]
    assert len(parse_run(line).results) == 5
