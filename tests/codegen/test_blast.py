"""blast end to end with real compiles (no GPU): self-comparison, a known change, failures,
missing Triton, caching. Fake environments are wrapper scripts (see conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch.codegen import blast, static_metrics
from tritonwatch.codegen.cache import CompileCache
from tritonwatch.errors import CodegenError, NotFoundError, UsageError
from tritonwatch.runformat import Result

pytestmark = needs("torch", "triton")


KERNELS = Path(__file__).resolve().parent / "kernels_sample.py"
TARGETS = "sm90,gfx942"


@pytest.mark.slow
def test_environment_against_itself_reports_zero_changes() -> None:
    r = blast("current", sys.executable, targets=TARGETS, kernel_files=[KERNELS])
    assert r.summary.total == 6
    assert r.summary.changed == 0 and r.summary.identical == 6
    assert all(row.first_changed_stage is None for row in r.rows)
    assert r.summary.headline.startswith("No change in 6 specialisations.")
    ok = [row for row in r.rows if row.a.status == "ok"]
    assert len(ok) == 6
    # the artifacts were really compiled and analysed, on both vendors
    sm90 = next(x for x in ok if x.target == "sm90" and x.kernel == "pipelined_kernel")
    amd = next(x for x in ok if x.target == "gfx942" and x.kernel == "pipelined_kernel")
    assert {"ttir", "ttgir", "llir", "ptx", "sass", "cubin"} <= set(sm90.a.stage_hashes)
    assert {"ttir", "ttgir", "llir", "amdgcn", "hsaco"} <= set(amd.a.stage_hashes)
    assert sm90.a.metrics["registers"] > 0 and sm90.a.metrics["instructions"] > 0
    assert sm90.a.key_instructions["wgmma"] > 0
    assert amd.a.metrics["vgprs"] > 0 and amd.a.key_instructions["mfma"] > 0
    assert sm90.a.tools["ptxas"]


@pytest.mark.slow
def test_known_change_is_found_and_located(fake_envs: dict[str, Path]) -> None:
    # B pipelines the loop of pipelined_kernel 2 deep instead of 3: a change that starts in the
    # frontend's loop attribute and reshapes the TTGIR software pipeline.
    r = blast("current", str(fake_envs["stages2"]), targets=TARGETS, kernel_files=[KERNELS])
    changed = {(row.kernel, row.target): row for row in r.rows if row.status == "changed"}
    assert set(changed) == {("pipelined_kernel", "sm90"), ("pipelined_kernel", "gfx942")}
    row = changed[("pipelined_kernel", "sm90")]
    assert row.first_changed_stage == "ttir"
    assert "ttgir" in row.changed_stages and "sass" in row.changed_stages
    assert row.metric("shared")[1] < row.metric("shared")[0]  # one stage fewer in shared memory
    assert row.diffs and next(iter(row.diffs.values())).startswith("--- A/")
    assert r.summary.changed == 2 and r.summary.by_stage == {"TTIR": 2}
    assert "2 of 6 specialisations changed" in r.summary.headline


@pytest.mark.slow
def test_kernel_failing_on_one_side_is_reported_and_the_rest_continue(
    fake_envs: dict[str, Path],
) -> None:
    r = blast("current", str(fake_envs["broken"]), targets=TARGETS, kernel_files=[KERNELS])
    failed = [row for row in r.rows if row.status == "failed_b"]
    assert {(x.kernel, x.target) for x in failed} == {
        ("breakable_kernel", "sm90"),
        ("breakable_kernel", "gfx942"),
    }
    assert "broken on purpose by TW_TEST_BREAK" in (failed[0].b.error or "")
    assert failed[0].b.error_line and "broken on purpose" in failed[0].b.error_line
    assert failed[0].a.status == "ok"
    assert sum(row.status == "identical" for row in r.rows) == 4
    assert "2 specialisations fail to compile only in B." in r.summary.headline


def test_environment_without_triton_is_a_clear_error(fake_envs: dict[str, Path]) -> None:
    with pytest.raises(CodegenError, match="has no Triton"):
        blast("current", str(fake_envs["no_triton"]), targets=TARGETS, kernel_files=[KERNELS])


def test_unknown_environment_and_bad_targets() -> None:
    with pytest.raises(NotFoundError, match="no environment 'nope'"):
        blast("current", "nope", targets=TARGETS, kernel_files=[KERNELS])
    with pytest.raises(NotFoundError, match="no Python at"):
        blast("current", "/no/such/python", targets=TARGETS, kernel_files=[KERNELS])
    with pytest.raises(UsageError, match="unknown target"):
        blast("current", "current", targets="sm90,a100", kernel_files=[KERNELS])
    with pytest.raises(UsageError, match="no kernel specs match") as e:
        blast("current", "current", targets=TARGETS, kernel_files=[KERNELS], pattern="zzz")
    assert "-k matches a kernel (breakable_kernel, pipelined_kernel, scale_kernel)" in str(e.value)
    assert "or a spec (breakable_fp32, pipelined_fp16, scale_fp32)" in str(e.value)


@pytest.mark.slow
def test_warm_run_is_served_from_the_cache(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "c")
    first = blast(
        "current", "current", targets="gfx942", kernel_files=[KERNELS], pattern="scale", cache=cache
    )
    # A/A through one Python: one compile answers both sides
    assert first.stats["compiled"] == 1 and first.stats["shared"] == 1
    assert first.stats["cached"] == 0
    second = blast(
        "current", "current", targets="gfx942", kernel_files=[KERNELS], pattern="scale", cache=cache
    )
    assert second.stats["compiled"] == 0 and second.stats["cached"] == 2
    assert [r.a.stage_hashes for r in second.rows] == [r.a.stage_hashes for r in first.rows]
    # an edit elsewhere in the file is a hit: the key follows the kernel, not the file
    copy = tmp_path / "kernels_copy.py"
    copy.write_text(KERNELS.read_text() + "\n# edited\n")
    third = blast(
        "current", "current", targets="gfx942", kernel_files=[copy], pattern="scale", cache=cache
    )
    assert third.stats["compiled"] == 0 and third.stats["cached"] == 2
    # a change to the kernel's source is a miss
    text = KERNELS.read_text()
    assert "* 2.0" in text
    copy.write_text(text.replace("* 2.0", "* 3.0"))
    fourth = blast(
        "current", "current", targets="gfx942", kernel_files=[copy], pattern="scale", cache=cache
    )
    assert fourth.stats["compiled"] == 1


@pytest.mark.slow
def test_static_metrics_rows_are_valid_run_results() -> None:
    m = static_metrics(targets="sm90", kernel_files=[KERNELS], pattern="scale")
    assert m.env.name == "current" and len(m.rows) == 1
    row = m.rows[0]
    assert row.status == "ok" and row.metrics["registers"] > 0 and row.dtype == "fp32"
    results = m.results()
    assert {r["metric"] for r in results} == {
        "registers",
        "spills",
        "shared_memory",
        "instructions",
    }
    for r in results:
        Result.model_validate(r)
        assert r["shape"] == {"target": "sm90"} and r["variant"] == "scale_fp32"
