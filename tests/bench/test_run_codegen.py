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


def test_run_k_selects_what_codegen_compiles_and_says_so(sqlite_url: str) -> None:
    """`run -k softmax --codegen` compiles the softmax kernel only, and the summary says what
    was compiled and stored (issue 14, item 9); a -k naming no kernel is reported, not hidden."""
    args = ["run", "--db", sqlite_url, "--suite", "smoke", "--provider", "torch", "--dtype"]
    args += ["fp32", "--budget-ms", "20", "--codegen", "--targets", "sm80"]
    result = CliRunner().invoke(main, [*args, "-k", "softmax[M=37"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "codegen (-k softmax[M=37): 3 specs of softmax_kernel for sm80: 3 compiled" in (
        result.output
    ), result.output
    with Store.open(sqlite_url) as store:
        detail = store.runs.get(store.runs.find()[0].uuid)
    assert {r.operator for r in detail.results if r.mode == "codegen"} == {"softmax_kernel"}
    result = CliRunner().invoke(main, [*args, "-k", "vector_add[N=4099]"])
    assert result.exit_code == 0, result.output
    assert "codegen: nothing compiled (-k vector_add[N=4099])" in " ".join(result.output.split())
    assert "no kernel or spec is named by vector_add" in " ".join(result.output.split())
