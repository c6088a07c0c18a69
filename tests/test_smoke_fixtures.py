from __future__ import annotations

import json

import pytest

from conftest import TINY_CHECKPOINTS


@pytest.mark.parametrize("name", sorted(TINY_CHECKPOINTS))
def test_every_tiny_checkpoint_exports_all_variants(make_bundle, name: str) -> None:
    bundle = make_bundle(name)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["variants"]) == {"fp32", "fp16", "int8"}
