"""precision="auto" never takes a variant whose recorded agreement missed its target while another meets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilrt.runtime.bundle import Bundle
from distilrt.runtime.errors import BundleError
from distilrt.runtime.manifest import Manifest, Variant
from distilrt.runtime.registry import PRECISIONS, VARIANT_FILES, check_precision


def bundle_with(**met: bool | None) -> Bundle:
    """A bundle whose variants recorded target_met as given (None: no agreement figures, like fp32)."""
    variants = {}
    for precision, value in met.items():
        precision = precision.replace("_", "-")
        parity = {} if value is None else {"agreement": {"target_met": value}}
        variants[precision] = Variant(precision, VARIANT_FILES[precision], 1, "0" * 64, parity=parity)
    manifest = Manifest(name="m", task="feature-extraction", architecture="BertModel", model_type="bert", source={},
                        max_sequence_length=8, inputs=("input_ids",), outputs=("last_hidden_state",), opset=18,
                        versions={}, variants=variants)
    return Bundle(Path("."), manifest)


def test_static_int8_is_a_known_precision() -> None:
    assert "int8-static" in PRECISIONS and check_precision("int8-static") == "int8-static"
    assert VARIANT_FILES["int8-static"] == "onnx/model_qdq.onnx"


@pytest.mark.parametrize(("met", "device", "expected"), [
    ({"fp32": None, "int8": True, "int8_static": True}, "cpu", "int8"),
    ({"fp32": None, "int8": False, "int8_static": True}, "cpu", "int8-static"),
    ({"fp32": None, "int8": False, "int8_static": False}, "cpu", "fp32"),
    ({"fp32": None, "fp16": False, "int8": True}, "cuda", "fp32"),
    ({"fp16": False, "int8_static": True}, "cuda", "int8-static"),
    ({"int8": False}, "cpu", "int8"),  # nothing else to run
])
def test_auto_skips_variants_that_missed_their_target(met: dict, device: str, expected: str) -> None:
    assert bundle_with(**met).choose_precision("auto", device=device) == expected


def test_explicit_precision_is_honoured_even_below_target() -> None:
    assert bundle_with(fp32=None, int8=False).choose_precision("int8", device="cpu") == "int8"
    with pytest.raises(BundleError, match="int8-static"):
        bundle_with(fp32=None).choose_precision("int8-static", device="cpu")
