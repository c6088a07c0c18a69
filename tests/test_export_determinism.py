"""Export is host-independent and deterministic: the same checkpoint gives byte-identical graph files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from distilrt.runtime.manifest import Manifest, sha256_file

SCRIPT = """
import sys
from distilrt.export import export_model
export_model(sys.argv[1], sys.argv[2], name=sys.argv[3], precisions="fp32,fp16,int8")  # as make_bundle
"""


def _graph_files(manifest: Manifest) -> dict[str, str]:
    return {v.file: v.sha256 for v in (*manifest.variants.values(), *manifest.graphs.values())}


def test_two_exports_give_identical_graph_files(make_checkpoint, make_bundle, tmp_path: Path) -> None:
    name = "distilbert-qa-uncased"
    first = make_bundle(name)
    # The second export runs in another process with another hash seed, from a copy of the checkpoint
    # in another directory, into another output: none of that may reach the graph files.
    copy = shutil.copytree(make_checkpoint(name), tmp_path / "elsewhere" / "checkpoint")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(copy), str(tmp_path / "out"), first.name], check=True, env=env,
                   timeout=600)
    second = tmp_path / "out" / first.name
    a, b = Manifest.read(first), Manifest.read(second)
    assert _graph_files(a) == _graph_files(b)
    assert len(_graph_files(a)) == 6  # fp32 plain, fused and flash; fp16 plain and fused; int8
    for relative, digest in _graph_files(a).items():
        assert sha256_file(second / relative) == digest, relative
    for support in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (first / support).read_bytes() == (second / support).read_bytes(), support
    # the manifests differ only in where the checkpoint was and when the export ran
    left, right = json.loads((first / "manifest.json").read_text()), json.loads((second / "manifest.json").read_text())
    for data in (left, right):
        data.pop("created")
        data["source"].pop("model")
        data["source"].pop("path")
    assert left == right
