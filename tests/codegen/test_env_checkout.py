"""`env create NAME --triton DIR`: a Triton checkout built in place is used where it is (a
developer's build, no wheel); a folder with no build is refused with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch.codegen import blast, create_env
from tritonwatch.errors import UsageError

pytestmark = needs("triton")
KERNELS = Path(__file__).resolve().parent / "kernels_sample.py"


@pytest.mark.slow
def test_a_built_checkout_becomes_an_environment(tmp_path: Path) -> None:
    import triton

    built = Path(triton.__file__).resolve().parent  # a real built triton package
    checkout = tmp_path / "triton-src"
    (checkout / "python").mkdir(parents=True)
    (checkout / "python" / "triton").symlink_to(built)  # the layout `pip install -e python` has
    info = create_env("dev", str(checkout))
    assert info.triton_version == triton.__version__
    assert Path(info.triton_path).resolve() == built
    r = blast("dev", "current", targets="sm90", kernel_files=[KERNELS], pattern="scale")
    assert r.summary.headline == "No change in 1 specialisation.", r.summary.headline


def test_a_folder_without_a_build_is_refused(tmp_path: Path) -> None:
    (tmp_path / "python" / "triton").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds no built Triton .* pip install -e"):
        create_env("dev", str(tmp_path))
    with pytest.raises(UsageError, match="neither a version"):
        create_env("dev", str(tmp_path / "missing"))
