"""Bad input at every entry point: a typed error from the library, exit 2 with one line from the CLI.

Each row of the tables is a value a careless or hostile caller can pass; none may end in a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from distilrt.runtime import pipeline
from distilrt.runtime.cli import main
from distilrt.runtime.errors import BundleError, CheckpointError, DistilrtError, InputError
from distilrt.runtime.validation import logical_cpus, short

SURROGATE = "caf\ud800 is closed"
BUNDLES = {"question-answering": "distilbert-qa-uncased", "fill-mask": "distilbert-mlm-uncased",
           "feature-extraction": "distilbert-features-cased", "text-classification": "distilbert-classifier"}


@pytest.fixture(scope="module")
def pipes(make_bundle) -> dict[str, Any]:
    return {task: pipeline(task, model=make_bundle(name), precision="fp32", provider="cpu")
            for task, name in BUNDLES.items()}


def _call(task: str, pipe: Any, texts: list[str]) -> Any:
    if task == "question-answering":
        return pipe(question=["Who is it?"] * len(texts), context=texts)
    if task == "fill-mask":
        return pipe([t + " [MASK]." for t in texts])
    return pipe(texts)


@pytest.mark.parametrize("task", sorted(BUNDLES))
def test_lone_surrogate_in_a_list_names_its_index(pipes, task: str) -> None:
    with pytest.raises(InputError, match=r"\[2\].*not valid Unicode"):
        _call(task, pipes[task], ["fine text", "more fine text", SURROGATE])


LIBRARY_TABLE: list[tuple[str, Callable[[dict[str, Any]], Any], type[Exception], str]] = [
    ("embed an empty list", lambda p: p["feature-extraction"]([]), InputError, "empty list"),
    ("classify an empty list", lambda p: p["text-classification"]([]), InputError, "empty list"),
    ("fill-mask an empty list", lambda p: p["fill-mask"]([]), InputError, "empty list"),
    ("qa an empty list", lambda p: p["question-answering"](question=[], context=[]), InputError, "empty list"),
    ("doc_stride 383 on a short context", lambda p: p["question-answering"](
        question="Who?", context="Jim Henson was a puppeteer.", doc_stride=383), InputError, "doc_stride"),
    ("doc_stride 384 on a short context", lambda p: p["question-answering"](
        question="Who?", context="Jim Henson was a puppeteer.", doc_stride=384), InputError, "doc_stride"),
    ("a non-string input", lambda p: p["fill-mask"](["x [MASK]", 7]), InputError, r"inputs\[1\] must be a string"),
    ("top_k of a huge text", lambda p: p["fill-mask"]("a [MASK]", top_k="9" * 500), InputError, r"\.\.\. \(500 chars"),
]


@pytest.mark.parametrize("case", LIBRARY_TABLE, ids=[row[0] for row in LIBRARY_TABLE])
def test_library_bad_input_table(pipes, case) -> None:
    _, call, error, message = case
    with pytest.raises(error, match=message):
        call(pipes)


@pytest.mark.parametrize("model", [None, 42, b"bytes/path", ["a", "b"]])
def test_pipeline_model_of_the_wrong_type(model: Any) -> None:
    with pytest.raises(InputError, match="bundle directory"):
        pipeline("fill-mask", model=model)


@pytest.mark.parametrize("option", ["threads", "streams"])
def test_thread_counts_are_bounded_by_the_host(make_bundle, option: str) -> None:
    bundle = make_bundle("distilbert-classifier")
    with pytest.raises(InputError, match=rf"{option}=1000000 is more than the {logical_cpus()} logical CPUs"):
        pipeline("text-classification", model=bundle, provider="cpu", **{option: 10**6})
    with pytest.raises(InputError, match=f"{option} must be a positive integer"):
        pipeline("text-classification", model=bundle, provider="cpu", **{option: 0})


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle.name
    shutil.copytree(bundle, target)
    return target


#: manifest edits (the edit returns the new JSON value, or raw text to write as it is)
MANIFEST_EDITS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("a JSON list", lambda m: [m], "holds a JSON list"),
    ("variants as a list", lambda m: {**m, "variants": list(m["variants"])}, "variants must be an object"),
    ("a variant as a string", lambda m: {**m, "variants": {"fp32": "onnx/model.onnx"}}, "variants.fp32 must be"),
    ("a variant file as a number", lambda m: {**m, "variants": {k: {**v, "file": 3} for k, v in m["variants"].items()}},
     r"variants\.\w+\.file must be"),
    ("inputs of numbers", lambda m: {**m, "inputs": [1, 2]}, "inputs must be an array of strings"),
    ("max_sequence_length as text", lambda m: {**m, "max_sequence_length": "512"}, "max_sequence_length must be"),
    ("deeply nested", lambda m: "[" * 100000 + "]" * 100000, "cannot read"),
]


@pytest.mark.parametrize("case", MANIFEST_EDITS, ids=[row[0] for row in MANIFEST_EDITS])
def test_malformed_manifest_is_a_bundle_error(make_bundle, tmp_path: Path, case) -> None:
    _, edit, message = case
    bundle = _copy(make_bundle("distilbert-classifier"), tmp_path)
    edited = edit(json.loads((bundle / "manifest.json").read_text()))
    (bundle / "manifest.json").write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(BundleError, match=message):
        pipeline(None, model=bundle, provider="cpu")


def test_bundle_config_that_is_a_list(make_bundle, tmp_path: Path) -> None:
    bundle = _copy(make_bundle("distilbert-classifier"), tmp_path)
    (bundle / "config.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="config.json"):
        pipeline(None, model=bundle, provider="cpu")


def test_exporter_checkpoint_config_that_is_a_list(tmp_path: Path) -> None:
    from distilrt.export import export_model

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("[]")
    with pytest.raises(CheckpointError, match="not an object"):
        export_model(str(checkpoint), tmp_path / "out")


# -- the command line: exit 2 and one line on stderr ----------------------------------------------------


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1") + b"\n")
    return {"missing": str(tmp_path / "nope.jsonl"), "latin": str(latin), "dir": str(tmp_path)}


CLI_TABLE: list[tuple[str, list[str], str]] = [
    ("missing --jsonl", ["classify", "{clf}", "--jsonl", "{missing}"], "cannot read --jsonl"),
    ("non-UTF-8 --jsonl", ["classify", "{clf}", "--jsonl", "{latin}"], "not UTF-8"),
    ("a directory as --jsonl", ["embed", "{emb}", "--jsonl", "{dir}"], "cannot read"),
    ("missing --context-file", ["qa", "{qa}", "-q", "Who?", "--context-file", "{missing}"], "cannot read --context-file"),
    ("non-UTF-8 --context-file", ["qa", "{qa}", "-q", "Who?", "--context-file", "{latin}"], "not UTF-8"),
    ("--threads past the host", ["classify", "{clf}", "some text", "--threads", "1000000"], "logical CPUs"),
    ("--streams past the host", ["classify", "{clf}", "some text", "--streams", "1000000"], "logical CPUs"),
    ("a lone surrogate", ["fill-mask", "{mlm}", "caf\ud800 [MASK]"], "not valid Unicode"),
    ("serve --threads past the host", ["serve", "{clf}", "--threads", "1000000"], "logical CPUs"),
    ("serve batch tokens below input tokens", ["serve", "{clf}", "--max-batch-tokens", "10"], "max_batch_tokens"),
]


@pytest.mark.parametrize("case", CLI_TABLE, ids=[row[0] for row in CLI_TABLE])
def test_cli_bad_input_table(make_bundle, capsys, files, case) -> None:
    _, argv, message = case
    paths = {"clf": make_bundle("distilbert-classifier"), "qa": make_bundle("distilbert-qa-uncased"),
             "mlm": make_bundle("distilbert-mlm-uncased"), "emb": make_bundle("distilbert-features-cased")}
    values = {**{k: str(v) for k, v in paths.items()}, **files}
    code, err = _cli(capsys, *[a.format(**values) for a in argv])
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_short_quotes_a_prefix_only() -> None:
    assert short("x" * 10) == repr("x" * 10)
    quoted = short("y" * 1_000_000)
    assert len(quoted) < 100 and "1000000 chars" in quoted


def test_every_library_error_is_a_distilrt_error() -> None:
    assert issubclass(InputError, DistilrtError) and issubclass(BundleError, DistilrtError)
