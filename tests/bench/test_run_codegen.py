"""`tritonwatch run --codegen`: static metrics of the suite's kernels become series of the run."""

from __future__ import annotations

from click.testing import CliRunner
from support.probes import needs

from tritonwatch.cli import main
from tritonwatch.store import Store

pytestmark = needs("torch", "triton")


def test_run_codegen_stores_static_metrics_as_series(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = [
        "run",
        "--db",
        sqlite_url,
        "--suite",
        "smoke",
        "-k",
        "vector_add[N=4099]",
        "--provider",
        "torch",
        "--dtype",
        "fp32",
        "--budget-ms",
        "20",
        "--codegen",
        "--targets",
        "sm80",
        "--codegen-kernels",
        "add",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with Store.open(sqlite_url) as store:
        (summary,) = store.runs.find()
        detail = store.runs.get(summary.uuid)
        info = store.info()
    static = [r for r in detail.results if r.mode == "codegen"]
    assert static, "no codegen results stored"
    assert {r.metric for r in static} >= {"registers", "spills", "shared_memory", "instructions"}
    assert all(r.shape == {"target": "sm80"} for r in static)
    regs = [r.value for r in static if r.metric == "registers" and r.status == "ok"]
    assert regs and all(v > 0 for v in regs)  # ptxas really ran
    assert info.counts["codegen"] >= 1
