"""Build environments: virtual environments with a chosen Triton, and any Python that has one.

``create_env`` makes ``<envs_dir>/<NAME>`` with ``python -m venv`` and pip-installs Triton (a
version from the package index or a wheel file). With ``system_site_packages`` the venv also sees
the host's packages (torch, for A/B timing) but its own Triton is installed into the venv with
``--ignore-installed`` so it shadows the host's; :func:`probe` checks that it does.
``resolve_env`` turns what a user typed (a name, a python path, a venv folder, ``current``) into
an :class:`EnvInfo` by running the compile worker's ``probe`` with that Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import CodegenError, NotFoundError, UsageError

WORKER = Path(__file__).resolve().parent / "compiler.py"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


@dataclass(frozen=True)
class EnvInfo:
    """A Python with Triton, as the worker's probe saw it."""

    name: str
    python: str
    python_version: str
    triton_version: str
    triton_commit: str | None
    triton_path: str
    build_hash: str
    backends: tuple[str, ...] = ()
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    torch_version: str | None = None  # what else the environment sees (None: not importable)
    tritonwatch_version: str | None = None

    @property
    def ptxas_versions(self) -> dict[str, str]:
        return {k: str(v.get("version")) for k, v in self.tools.items() if k.startswith("ptxas")}

    @property
    def label(self) -> str:
        return f"{self.name} (triton {self.triton_version})"

    def build_info(self) -> dict[str, Any]:
        """The build section the Store keys codegen rows by."""
        triton: dict[str, Any] = {"version": self.triton_version}
        if self.triton_commit:
            triton["commit"] = self.triton_commit
        return {"triton": triton}

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this Triton build in cache keys."""
        return {
            "python": self.python,
            "triton": self.triton_version,
            "commit": self.triton_commit,
            "build": self.build_hash,
        }


def envs_dir() -> Path:
    return Path(settings.get("envs_dir")).expanduser()


def env_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def probe(python: str | Path, *, name: str | None = None) -> EnvInfo:
    """Ask ``python`` about its Triton (without importing it); clear errors when it cannot."""
    py = str(python)
    shown = name or py
    try:
        r = subprocess.run([py, str(WORKER), "probe"], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise NotFoundError(f"environment {shown}: no Python at {py}") from None
    except PermissionError:
        raise CodegenError(f"environment {shown}: {py} is not executable") from None
    except subprocess.TimeoutExpired:
        raise CodegenError(f"environment {shown}: {py} did not answer within 120 s") from None
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise CodegenError(f"environment {shown}: {py} cannot run the compile worker ({tail})")
    try:
        d = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise CodegenError(
            f"environment {shown}: {py} printed something other than the probe's "
            "JSON; is it a Python 3.9+ interpreter?"
        ) from None
    if d.get("error") == "no-triton":
        raise CodegenError(
            f"environment {shown} has no Triton ({py} cannot import triton); "
            f"install it with `{py} -m pip install triton` or make one with "
            "`tritonwatch env create NAME --triton VERSION`"
        )
    # The path we ran (a venv's bin/python, a wrapper script), not the interpreter it resolves to:
    # it is what the workers are launched with and what tells two environments apart.
    return EnvInfo(
        name=name or py,
        python=os.path.abspath(py),
        python_version=d["python_version"],
        triton_version=d["triton_version"],
        triton_commit=d.get("triton_commit"),
        triton_path=d["triton_path"],
        build_hash=d["build_hash"],
        backends=tuple(d.get("backends", ())),
        tools=d.get("tools", {}),
        torch_version=d.get("torch"),
        tritonwatch_version=d.get("tritonwatch"),
    )


def resolve_env(ref: str) -> EnvInfo:
    """An environment named ``ref``: ``current`` (this Python), a name made by ``env create``,
    a venv folder, or a path to a Python executable."""
    if not ref or not ref.strip():
        raise UsageError(
            "empty environment; give a name from `tritonwatch env list` or a python path"
        )
    if ref == "current":
        return probe(sys.executable, name="current")
    named = envs_dir() / ref
    if _NAME.fullmatch(ref) and env_python(named).exists():
        return probe(env_python(named), name=ref)
    p = Path(ref).expanduser()
    if p.is_dir() and env_python(p).exists():
        return probe(env_python(p), name=ref)
    if p.is_file() or "/" in ref or os.sep in ref:
        return probe(p, name=ref)
    raise NotFoundError(
        f"no environment {ref!r} in {envs_dir()}; `tritonwatch env list` shows "
        "them, `tritonwatch env create NAME --triton VERSION` makes one, or pass "
        "a path to a Python that has Triton"
    )


@dataclass(frozen=True)
class EnvEntry:
    """One folder under ``envs_dir``: its EnvInfo, or why it cannot be used."""

    name: str
    folder: str
    info: EnvInfo | None
    problem: str | None


def list_envs() -> list[EnvEntry]:
    """Each environment under ``envs_dir``, probed; broken ones say what is wrong."""
    root = envs_dir()
    out: list[EnvEntry] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not env_python(folder).exists():
            continue
        try:
            out.append(
                EnvEntry(
                    folder.name, str(folder), probe(env_python(folder), name=folder.name), None
                )
            )
        except (CodegenError, NotFoundError) as e:
            out.append(EnvEntry(folder.name, str(folder), None, str(e)))
    return out


def remove_env(name: str) -> Path:
    """Delete the environment ``NAME`` made by ``env create`` (its folder under ``envs_dir``)."""
    folder = envs_dir() / name
    if not _NAME.fullmatch(name) or name == "current" or not env_python(folder).exists():
        known = [e.name for e in list_envs()]
        raise NotFoundError(
            f"no environment {name!r} in {envs_dir()}; environments there: "
            f"{', '.join(known) or 'none'}"
        )
    shutil.rmtree(folder)
    return folder


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        raise CodegenError(f"{what} failed: {(errors or lines or ['no output'])[-1].strip()}")


_SITE_QUERY = (
    "import json, site, sys; "
    "print(json.dumps([sys.prefix != sys.base_prefix, site.getsitepackages()]))"
)


def _layer_on_venv(base: str, py: Path) -> None:
    """Make a new environment see ``base``'s packages when ``base`` is itself a venv.

    ``--system-site-packages`` means the site-packages of the interpreter a venv was made
    from, and a venv's Python is made from the base installation: an environment created from
    the venv that tritonwatch runs in would see neither torch nor tritonwatch. A ``.pth`` file
    adds the parent venv's site folders after the environment's own, so the environment's Triton
    still comes first (pip installs it there with --ignore-installed).
    """
    parent = subprocess.run([base, "-c", _SITE_QUERY], capture_output=True, text=True)
    child = subprocess.run([str(py), "-c", _SITE_QUERY], capture_output=True, text=True)
    if parent.returncode != 0 or child.returncode != 0:
        raise CodegenError(f"cannot read the site folders of {base} or {py}")
    in_venv, parent_sites = json.loads(parent.stdout)
    own_sites = json.loads(child.stdout)[1]
    if not in_venv or not own_sites:
        return
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in parent_sites)
    (Path(own_sites[0]) / "_tritonwatch_parent_venv.pth").write_text(lines)


def built_checkout(path: Path) -> Path | None:
    """The folder holding a built ``triton`` package in a Triton checkout (its root or its
    ``python/`` folder, after ``pip install -e``), or None when there is none."""
    for folder in (path, path / "python"):
        pkg = folder / "triton"
        if (pkg / "__init__.py").is_file() and any((pkg / "_C").glob("libtriton*.so")):
            return folder.resolve()
    return None


def _link_checkout(py: Path, folder: Path) -> None:
    """Put a checkout's build first on the environment's path (before any Triton it sees)."""
    r = subprocess.run([str(py), "-c", _SITE_QUERY], capture_output=True, text=True)
    sites = json.loads(r.stdout)[1] if r.returncode == 0 else []
    if not sites:
        raise CodegenError(f"cannot read the site folders of {py}")
    # A checkout carries no package metadata here, so Triton cannot find its backends through
    # entry points; its own switch makes it load the in-tree ones (Triton 3.6 to 3.9).
    line = (
        f"import os, sys; sys.path.insert(0, {str(folder)!r}); "
        'os.environ.setdefault("TRITON_BACKENDS_IN_TREE", "1")\n'
    )
    (Path(sites[0]) / "_tritonwatch_checkout.pth").write_text(line)


def create_env(
    name: str, triton: str, *, system_site_packages: bool = False, base_python: str | None = None
) -> EnvInfo:
    """Make ``<envs_dir>/NAME`` with Triton ``triton``: a version like ``3.8.0``, a wheel path,
    or the folder of a Triton checkout built in place (used where it is, not copied).

    A failed install removes the half-made folder, so the name can be tried again.
    """
    if not _NAME.fullmatch(name) or name == "current":
        raise UsageError(f"bad environment name {name!r}; use letters, digits, '.', '_', '+', '-'")
    folder = envs_dir() / name
    if folder.exists():
        raise UsageError(
            f"environment {name!r} already exists at {folder}; pick another name or "
            "remove that folder"
        )
    wheel = Path(triton).expanduser()
    checkout: Path | None = None
    if triton.endswith(".whl"):
        if not wheel.is_file():
            raise UsageError(f"no wheel file at {wheel}")
        requirement = str(wheel.resolve())
    elif wheel.is_dir():
        checkout = built_checkout(wheel)
        if checkout is None:
            raise UsageError(
                f"{wheel} holds no built Triton (no triton/_C/libtriton*.so in it or in its "
                "python/ folder); build the checkout in place first (pip install -e . , or "
                "pip install -e python for older layouts) or pass a .whl"
            )
        requirement = ""
    elif re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", triton):
        requirement = f"triton=={triton}"
    else:
        raise UsageError(
            f"--triton {triton!r} is neither a version (3.8.0), a .whl file, nor a folder"
        )
    base = base_python or sys.executable
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        venv = [base, "-m", "venv", str(folder)]
        if system_site_packages:
            venv.insert(3, "--system-site-packages")
        _run(venv, f"creating the virtual environment {folder}")
        py = env_python(folder)
        if system_site_packages:
            _layer_on_venv(base, py)
        if checkout is not None:
            _link_checkout(py, checkout)
        else:
            # --ignore-installed: with system site packages the host's Triton would satisfy the
            # requirement and the venv would silently use it.
            _run(
                [
                    str(py),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--ignore-installed",
                    requirement,
                ],
                f"pip install {requirement}",
            )
        info = probe(py, name=name)
        found = Path(info.triton_path).resolve()
        if (
            found != (checkout / "triton").resolve()
            if checkout is not None
            else not found.is_relative_to(folder.resolve())
        ):
            raise CodegenError(
                f"environment {name}: Triton resolves to {info.triton_path}, not "
                "to the one installed in the environment"
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return info
