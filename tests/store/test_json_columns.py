"""The run section and results' ``extra`` read back as before now that orjson writes them.

A bulk import writes ``runs.info`` and ``results.extra`` as JSON text made by orjson (issue 12's
import speed); whatever orjson would write differently (a time, an integer past 64 bits, a key
that is not text) still goes the old way. Either way the stored JSON must read back as
pydantic's dump of the run, on both backends.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tritonwatch.runformat import parse_run
from tritonwatch.store import Store
from tritonwatch.store.jsoncolumns import JsonText, json_text
from tritonwatch.testing import make_run_document

HUD_LIKE = {
    "record": {"timestamp": 1723607200, "runners": [{"name": "cuda", "gpu_count": 1}]},
    "parts": [{"model": {"name": "gemm", "backend": None}, "metric": {"extra_info": {}}}],
    "note": "é ✓ \\u0000 as text",
    "ratio": 0.1 + 0.2,
    "big": 2**63 - 1,
}


def _run(run_extra: dict[str, Any], result_extra: dict[str, Any]) -> Any:
    doc = make_run_document(n_results=2, run_id=uuid.uuid4())
    doc["run"].update(run_extra)
    doc["results"][0]["extra"] = result_extra
    return parse_run(doc)


@pytest.mark.parametrize(
    ("run_extra", "result_extra"),
    [
        ({"hud": HUD_LIKE, "gone": None}, {"hud": {"part": 0, "input_shape": "(1, 2)"}}),
        ({"past_64_bits": 2**70}, {"past_64_bits": -(2**70)}),  # orjson refuses: json.dumps
        ({"tupled": [1, 2]}, {"float_keys": {"1.5": 1}}),
    ],
)
def test_run_section_and_extra_read_back_as_pydantic_dumps_them(
    store: Store, run_extra: dict[str, Any], result_extra: dict[str, Any]
) -> None:
    run = _run(run_extra, result_extra)
    store.runs.add(run)
    got = store.runs.get(str(run.run.id))
    assert got.info == run.run.model_dump(mode="json", exclude_none=True)
    assert [r.extra for r in got.results] == [r.extra for r in run.results]


def test_values_only_pydantic_writes_as_json_take_its_way(store: Store) -> None:
    run = _run({}, {"k": 1})
    when = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    run.run.__pydantic_extra__["when"] = when  # set in Python, not read from a file
    run.run.__pydantic_extra__["pair"] = (1, "a")
    store.runs.add(run, org="acme")
    got = store.runs.get(str(run.run.id))
    expected = run.run.model_dump(mode="json", exclude_none=True)
    assert got.info == {**expected, "org": "acme"}
    assert got.info["when"] == "2026-11-27T12:00:00Z"


def test_the_engine_keeps_json_text_and_dumps_the_rest_as_json_dumps_does() -> None:
    assert json_text(JsonText('{"a":1}')) == '{"a":1}'
    assert json_text({"a": [1, "é"]}) == '{"a": [1, "\\u00e9"]}'
    assert json_text('{"a":1}') == '"{\\"a\\":1}"'  # plain text is a JSON string, as before
