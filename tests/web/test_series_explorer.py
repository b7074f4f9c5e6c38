"""The series explorer with many series (issue 14, item 5): normalised by default, sorted by
size, counted exactly and paged, and an empty state when the baseline provider has no data."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tritonwatch.store import Store
from tritonwatch.testing import make_run
from tritonwatch.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def sweep(n: int, provider: str = "triton") -> list[dict[str, Any]]:
    return [
        {
            "operator": "sweep",
            "provider": provider,
            "shape": {"M": 64 * (i + 1), "N": 256},
            "dtype": "fp16",
            "metric": "time",
            "unit": "ms",
            "samples": [0.01 * (i + 1)] * 10,
        }
        for i in range(n)
    ]


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with Store.open(sqlite_url) as st:
        st.runs.add(make_run(results=sweep(241), machine="box"))
        st.runs.add(make_run(results=sweep(8, "small"), machine="box", seed=1))
        with TestClient(create_app(st)) as c:
            yield c


def catalog_shapes(html: str) -> list[str]:
    table = html[html.index('id="series-catalog"') :]
    table = table[: table.index("</table>")]
    return re.findall(r'<td class="mono">([^<]*)</td>', table)


def test_counts_are_exact_and_the_list_pages(client: TestClient) -> None:
    html = client.get("/series", params={"operator": "sweep", "provider": "triton"}).text
    assert "241 series match" in html and "More than" not in html
    shapes = catalog_shapes(html)
    assert len(shapes) == 200 and shapes[:3] == ["M=64 N=256", "M=128 N=256", "M=192 N=256"]
    assert "series 1–200 of 241" in html
    nxt = re.search(r'href="(/series\?[^"]*offset=200[^"]*)"', html)
    assert nxt, html[-3000:]
    page2 = client.get(nxt.group(1).replace("&amp;", "&")).text
    assert len(catalog_shapes(page2)) == 41 and "series 201–241 of 241" in page2


def test_many_series_are_normalised_unless_asked_for_raw(client: TestClient) -> None:
    html = client.get("/series", params={"operator": "sweep", "provider": "small"}).text
    assert 'id="auto-norm"' in html and '"norm":"first"' in html
    raw = client.get("/series", params={"operator": "sweep", "provider": "small", "norm": "none"})
    assert 'id="auto-norm"' not in raw.text and '"norm":"none"' in raw.text
    log = client.get(
        "/series", params={"operator": "sweep", "provider": "small", "scale": "log"}
    ).text
    assert '"scale":"log"' in log


def test_a_baseline_without_data_says_so_instead_of_an_empty_chart(client: TestClient) -> None:
    html = client.get(
        "/series",
        params={"operator": "sweep", "provider": "small", "norm": "provider", "base": "triton"},
    ).text
    assert 'id="no-baseline"' in html and 'id="series-data"' not in html
