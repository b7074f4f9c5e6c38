"""Plugins: an operator registered from an installed package's entry point, duplicates, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch import plugins
from tritonwatch.errors import BenchError


def _install(tmp_path: Path, name: str, body: str, entry: str) -> None:
    """A minimal installed distribution: a module plus a dist-info with entry_points.txt."""
    (tmp_path / f"{name}.py").write_text(body)
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[tritonwatch]\n{name} = {entry}\n")


PLUGIN = """
from tritonwatch.bench.spec import Operator, Prepared, Provider

def register(reg):
    reg.add_operator(Operator(
        name="triple", family="third-party", shapes={"smoke": [{"N": 8}]}, dtypes=("fp32",),
        make_inputs=lambda s, d, dev, seed: list(range(s["N"])),
        reference=lambda i, s, d: [3 * x for x in i], flops=lambda s: float(s["N"]),
        bytes=lambda s, d: 8.0 * s["N"], tolerance={"fp32": 0.0}))
    reg.add_provider(Provider("triple", "python", lambda i, c, dev: Prepared(lambda: [3 * x for x in i]),
                              kind="other"))
    reg.add_provider(Provider("matmul", "mylib", lambda i, c, dev: Prepared(lambda: None),
                              kind="other", dtypes=("fp16",)))
"""


@needs("torch", "triton")
def test_an_installed_package_adds_operators_and_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, "tw_triple_plugin", PLUGIN, "tw_triple_plugin:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = plugins.load()
    assert "triple" in reg.operators and reg.origin["triple"].startswith("tw_triple_plugin")
    assert "python" in reg.providers["triple"]
    # A plugin may add a provider to a built-in operator, because built-ins load first.
    assert "mylib" in reg.providers["matmul"] and "matmul" in reg.operators
    assert "mylib" in reg.provider_names()


@needs("torch", "triton")
def test_duplicate_operator_is_rejected_naming_both_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = PLUGIN.replace('"triple"', '"softmax"', 1)
    _install(tmp_path, "tw_dup_plugin", body, "tw_dup_plugin:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BenchError, match="softmax.*registered twice.*builtin.*tw_dup_plugin"):
        plugins.load()


@needs("torch", "triton")
def test_a_broken_plugin_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(
        tmp_path,
        "tw_broken_plugin",
        "def register(reg):\n    raise KeyError('oops')\n",
        "tw_broken_plugin:register",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BenchError, match="tw_broken_plugin.*KeyError"):
        plugins.load()


@needs("torch", "triton")
def test_extra_plugin_spec_must_be_module_colon_function() -> None:
    with pytest.raises(BenchError, match="module:function"):
        plugins.load(["no_colon_here"])
    with pytest.raises(BenchError, match="cannot load plugin"):
        plugins.load(["no_such_module_xyz:register"])


def test_importing_tritonwatch_loads_no_plugin() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tritonwatch, tritonwatch.plugins, tritonwatch.cli; "
        "print('tritonwatch.ops' in sys.modules, 'triton' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@needs("torch", "triton")
def test_worker_side_imports_no_database_or_web_code() -> None:
    """The worker's own modules pull in only stdlib, numpy, torch and triton.

    The package ``__init__`` is bypassed with a stub so this checks the worker side itself.
    """
    import subprocess
    import sys

    pkg = Path(__file__).parents[2] / "tritonwatch"
    code = (
        "import sys, types\n"
        f"m = types.ModuleType('tritonwatch'); m.__path__ = [{str(pkg)!r}]\n"
        "sys.modules['tritonwatch'] = m\n"
        "import tritonwatch.bench.worker, tritonwatch.bench.timing, tritonwatch.bench.environment\n"
        "from tritonwatch import plugins\n"
        "from tritonwatch.ops import register\n"
        "from tritonwatch.bench.registry import Registry\n"
        "register(Registry())\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('sqlalchemy', 'pydantic', 'fastapi', 'starlette', 'alembic', 'platformdirs', 'httpx')"
        " or n.startswith(('tritonwatch.store', 'tritonwatch.web', 'tritonwatch.settings')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_source_tree_that_was_never_installed_still_has_the_builtin_suite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PYTHONPATH=checkout with no dist-info (a GPU machine without a registry): no entry points.
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    reg = plugins.load()
    assert {"matmul", "softmax", "attention"} <= set(reg.operators)
    assert reg.origin["matmul"].startswith("builtin")
