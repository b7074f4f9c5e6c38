"""bench.tuning: a build's autotuning results in a folder of the comparison, not Triton's cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch.bench import tuning


@needs("triton")
def test_autotuning_results_go_to_the_builds_folder_and_kernels_stay_in_tritons_cache(
    tmp_path: Path,
) -> None:
    """Through Triton's own loader (TRITON_CACHE_MANAGER), in a fresh process as a worker."""
    env: dict[str, str] = {"TRITON_CACHE_DIR": str(tmp_path / "cache")}
    assert tuning.share_tuning(env, str(tmp_path / "tuning-A"))
    code = (
        "from triton.runtime.cache import get_cache_manager\n"
        "m = get_cache_manager('c0ffee')\n"
        "m.put('{\"configs_timings\": []}', 'matmul.autotune.json', binary=False)\n"
        "m.put(b'binary', 'matmul.cubin')\n"
        "again = get_cache_manager('c0ffee')\n"
        "print(type(again).__name__, again.get_file('matmul.autotune.json'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tuned = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*") if p.is_file())
    assert out[0] == "SideTuning"
    assert out[1] == str(tmp_path / "tuning-A" / "YD764" / "matmul.autotune.json")
    assert tuned == ["cache/YD764/matmul.cubin", "tuning-A/YD764/matmul.autotune.json"]
    assert env["TRITON_CACHE_AUTOTUNING"] == "1"


def test_a_users_own_cache_manager_is_left_alone(tmp_path: Path) -> None:
    env = {"TRITON_CACHE_MANAGER": "mycache:Remote"}
    assert not tuning.share_tuning(env, str(tmp_path))
    assert env == {"TRITON_CACHE_MANAGER": "mycache:Remote"}


def test_the_module_makes_nothing_but_its_manager() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        tuning.Other  # noqa: B018


@needs("triton")
def test_a_process_without_the_folder_keeps_tritons_own_places(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRITON_CACHE_DIR": str(tmp_path / "cache"),
        "TRITON_CACHE_MANAGER": tuning.MANAGER,
    }
    env.pop(tuning.DIR_VAR, None)
    code = (
        "from triton.runtime.cache import get_cache_manager\n"
        "print(get_cache_manager('c0ffee').put('{}', 'matmul.autotune.json', binary=False))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(tmp_path / "cache" / "YD764" / "matmul.autotune.json")
