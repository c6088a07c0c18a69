"""Sealed bundles: every file the runtime reads is verified, no path leaves the bundle, export cleans up safely."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from distilrt.runtime import pipeline
from distilrt.runtime.errors import BundleError
from distilrt.runtime.manifest import Manifest, seal


@pytest.fixture()
def clf(make_bundle, tmp_path: Path) -> Path:
    target = tmp_path / "clf"
    shutil.copytree(make_bundle("distilbert-classifier"), target, ignore=shutil.ignore_patterns(".cache"))
    return target


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _write_manifest(bundle: Path, data: dict) -> None:
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_export_lists_every_file_with_its_digest(clf: Path) -> None:
    files = _manifest(clf)["files"]
    on_disk = {p.relative_to(clf).as_posix() for p in clf.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(files) == on_disk and {"tokenizer.json", "config.json", "onnx/model.onnx"} <= on_disk
    import hashlib

    for name, entry in files.items():
        data = (clf / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "tokenizer_config.json", "special_tokens_map.json"])
def test_a_changed_support_file_is_refused(clf: Path, name: str) -> None:
    path = clf / name
    if not path.exists():
        pytest.skip(f"this bundle has no {name}")
    data = json.loads(path.read_text())
    data["_edited"] = True  # still valid JSON, so only the digest can catch it
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"{name} does not match the manifest"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_a_swapped_tokenizer_from_another_bundle_is_refused(clf: Path, make_bundle) -> None:
    shutil.copy(make_bundle("distilbert-features-cased") / "tokenizer.json", clf / "tokenizer.json")
    with pytest.raises(BundleError, match="tokenizer.json does not match"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_an_unlisted_special_tokens_file_is_refused(clf: Path) -> None:
    data = _manifest(clf)
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        data["files"].pop(name, None)
    _write_manifest(clf, data)
    (clf / "special_tokens_map.json").write_text(json.dumps({"mask_token": "[UNK]"}))
    with pytest.raises(BundleError, match="not listed in the bundle's manifest"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_a_missing_listed_file_is_refused(clf: Path) -> None:
    (clf / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_a_manifest_without_files_asks_for_a_re_export(clf: Path) -> None:
    data = _manifest(clf)
    del data["files"]
    _write_manifest(clf, data)
    with pytest.raises(BundleError, match="re-export the bundle"):
        pipeline(None, model=clf, provider="cpu")


@pytest.mark.parametrize("file", ["../../victim.onnx", "/etc/passwd", "onnx/../../x.onnx", ""])
def test_variant_paths_stay_inside_the_bundle(clf: Path, file: str) -> None:
    data = _manifest(clf)
    for entry in (*data["variants"].values(), *(data.get("graphs") or {}).values()):
        entry["file"] = file  # whichever graph of fp32 the runtime prefers
    _write_manifest(clf, data)
    with pytest.raises(BundleError, match="not a plain path inside the bundle"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_a_symlink_out_of_the_bundle_is_refused(clf: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(str(clf / "onnx"), str(outside / "onnx"))
    (clf / "onnx").symlink_to(outside / "onnx")  # same bytes, reached through a link that leaves the bundle
    with pytest.raises(BundleError, match="outside the bundle"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")
    (clf / "onnx").unlink()
    shutil.move(str(outside / "onnx"), str(clf / "onnx"))
    (clf / "tokenizer.json").rename(outside / "tokenizer.json")
    (clf / "tokenizer.json").symlink_to(outside / "tokenizer.json")
    with pytest.raises(BundleError, match="outside the bundle"):
        pipeline(None, model=clf, provider="cpu", precision="fp32")


def test_seal_refuses_symlinks(clf: Path, tmp_path: Path) -> None:
    (clf / "extra.json").symlink_to(clf / "config.json")
    with pytest.raises(BundleError, match="symlink"):
        seal(Manifest.read(clf), clf)


# -- export --force and leftovers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(make_checkpoint, tmp_path_factory) -> tuple[str, Path]:
    from distilrt.export import export_model

    checkpoint = str(make_checkpoint("distilbert-classifier"))
    out = tmp_path_factory.mktemp("force") / "out"
    export_model(checkpoint, out, precisions="fp32", name="clf")
    return checkpoint, out


def test_export_force_never_deletes_outside_the_target(exported, tmp_path: Path) -> None:
    from distilrt.export import export_model

    checkpoint, out = exported
    target = out / "clf"
    victim = out / "victim.txt"
    victim.write_text("keep me")
    data = _manifest(target)
    data["variants"]["int8"] = {**data["variants"]["fp32"], "file": "../victim.txt"}
    data["variants"]["fp16"] = {**data["variants"]["fp32"], "file": str(victim)}
    _write_manifest(target, data)
    result = export_model(checkpoint, out, precisions="fp32", name="clf", force=True)
    assert victim.read_text() == "keep me"
    assert set(result.manifest.variants) == {"fp32"} and "files" in _manifest(target)
    assert pipeline(None, model=target, provider="cpu")("some text")


def test_export_force_does_not_write_through_a_symlinked_folder(exported, tmp_path: Path) -> None:
    from distilrt.export import export_model
    from distilrt.runtime.errors import OutputExistsError

    checkpoint, out = exported
    target = out / "clf"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.onnx").write_text("someone else's file")
    shutil.rmtree(target / "onnx")
    (target / "onnx").symlink_to(elsewhere)
    with pytest.raises(OutputExistsError, match="outside the bundle"):
        export_model(checkpoint, out, precisions="fp32", name="clf", force=True)
    assert (elsewhere / "model.onnx").read_text() == "someone else's file"
    (target / "onnx").unlink()
    export_model(checkpoint, out, precisions="fp32", name="clf", force=True)  # repaired by a plain re-export
    link = out / "linked"
    link.symlink_to(target)
    with pytest.raises(OutputExistsError, match="symlink"):
        export_model(checkpoint, out, precisions="fp32", name="linked", force=True)


def test_bundle_folder_follows_the_umask(exported) -> None:
    _, out = exported
    mask = os.umask(0o022)
    os.umask(mask)
    assert (out / "clf").stat().st_mode & 0o777 == 0o777 & ~mask


def test_leftovers_of_a_killed_export_are_collected(tmp_path: Path) -> None:
    from distilrt.export import bundle as bundle_io

    output = tmp_path / "out"
    output.mkdir()
    script = ("import sys, time; from pathlib import Path; from distilrt.export import bundle as b; "
              "s = b.staging_dir(Path(sys.argv[1]), 'm'); w = b.work_dir(); (s / 'x.onnx').write_bytes(b'1'); "
              "print(s, w, flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script, str(output)], stdout=subprocess.PIPE, text=True)
    try:
        staging, work = (Path(p) for p in child.stdout.readline().split())
        assert staging.is_dir() and work.is_dir()
        assert bundle_io.collect_leftovers(output, "m") == []  # its export is still running: left alone
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    removed = bundle_io.collect_leftovers(output, "m")
    assert set(removed) == {staging, work} and not staging.exists() and not work.exists()
    unrelated = Path(tempfile.mkdtemp(prefix="distilrt-export-notapid-"))
    try:
        assert bundle_io.collect_leftovers(output, "m") == [] and unrelated.is_dir()
    finally:
        shutil.rmtree(unrelated)
