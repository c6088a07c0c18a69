"""The wheel ships the runtime, the exporter and what ``distilrt bench`` runs, and nothing of development:
no research instrument, no test or pytest-benchmark file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Left out of the copy the wheel is built from: environments, caches and build output, never sources.
_NOT_SOURCES = (".git", ".venv", "venv", "build", "dist", "models", "__pycache__", ".pytest_cache", ".hypothesis",
                ".benchmarks", ".cache", "*.egg-info", "results", "tmp")


def _setuptools_major() -> int:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0])
    except Exception:  # not installed, or a version string without a leading number
        return 0


@pytest.mark.skipif(_setuptools_major() < 77, reason="the build needs setuptools >= 77 (`make install` sets it up)")
def test_wheel_ships_no_research_tool_or_test_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path / "wheel")], check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("distilrt-*.whl")
    names = [n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n]

    assert {"distilrt/runtime/pipeline.py", "distilrt/export/api.py", "distilrt/benchmarks/runner.py"} <= set(names)
    files = [Path(n) for n in names]
    assert [str(f) for f in files if f.name.startswith("test_") or f.name == "conftest.py"] == []
    assert [str(f) for f in files if "research" in f.parts] == []
    # the research instruments used to live in the benchmarks package; none of them is shipped there
    research = {p.name for p in (ROOT / "research").glob("*.py") if p.name != "__init__.py"}
    assert research and [str(f) for f in files if f.parent.name == "benchmarks" and f.name in research] == []
