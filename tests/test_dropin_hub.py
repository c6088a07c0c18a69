"""Model ids: the bundle cache, hub repositories that ship ONNX files (both layouts), export on demand.

Offline throughout: a pre-populated Hugging Face cache read with HF_HUB_OFFLINE=1, and a fake hub on
loopback (huggingface_hub honours HF_ENDPOINT) for a subprocess that runs the model cards' own lines.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distilrt.runtime import HubUnreachableError, pipeline
from distilrt.runtime.manifest import Manifest, sha256_file
from distilrt.runtime.resolve import CACHED, EXPORTED, HUB_ONNX, LOCAL, resolve_model
from hub_fixtures import FakeHub, onnx_repo, populate_hub_cache
from runtime_fixtures import SQUAD_CONTEXT, SQUAD_QUESTION, reference_pipeline
from test_dropin_shapes import assert_same

pytest.importorskip("huggingface_hub")


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache and distilrt bundle cache, offline (conftest sets HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("DISTILRT_CACHE_DIR", str(tmp_path / "distilrt-cache"))
    return cache


@pytest.mark.parametrize("layout", ["onnx", "root"])
def test_hub_onnx_repository_from_the_offline_cache(make_bundle, hub_cache: Path, tmp_path: Path, layout: str) -> None:
    bundle = make_bundle("distilbert-qa-uncased")
    snapshot = populate_hub_cache(hub_cache, "acme/tiny-qa", onnx_repo(bundle, tmp_path / "repo", layout=layout))
    qa = pipeline("question-answering", "acme/tiny-qa", precision="fp32", provider="cpu")
    assert qa.resolved.how == HUB_ONNX and not qa.resolved.validated
    direct = pipeline("question-answering", str(bundle), precision="fp32", provider="cpu")
    # same plain graph; the exported bundle may also carry fused graphs the runtime prefers (float noise)
    assert_same(qa(SQUAD_QUESTION, SQUAD_CONTEXT, top_k=2), direct(SQUAD_QUESTION, SQUAD_CONTEXT, top_k=2))

    manifest = Manifest.read(qa.resolved.path)
    assert manifest.source["model"] == "acme/tiny-qa" and manifest.source["validated"] is False
    assert manifest.task == "question-answering" and manifest.outputs == ("start_logits", "end_logits")
    expected = {"fp32": "model.onnx", "int8": "model_quantized.onnx"} if layout == "onnx" else {"fp32": "model.onnx"}
    assert {k: Path(v.file).name for k, v in manifest.variants.items()} == expected
    for variant in manifest.variants.values():  # the SHA-256 of what was downloaded
        assert variant.sha256 == sha256_file(snapshot / variant.details["repo_file"]) and not variant.parity
    assert pipeline("question-answering", "acme/tiny-qa", provider="cpu").precision == ("int8" if layout == "onnx" else "fp32")

    again = resolve_model("acme/tiny-qa", task="question-answering")
    assert again.how == CACHED and again.path == qa.resolved.path and not again.validated
    assert resolve_model(str(bundle)).how == LOCAL


def test_offline_with_nothing_cached_says_what_to_do(hub_cache: Path) -> None:
    with pytest.raises(HubUnreachableError) as caught:
        pipeline("question-answering", "acme/absent-model", provider="cpu")
    message = str(caught.value)
    assert "acme/absent-model" in message and "HF_HUB_OFFLINE" in message
    assert os.environ["DISTILRT_CACHE_DIR"] in message and "huggingface-cli download acme/absent-model" in message


def test_checkpoint_without_onnx_is_exported_on_demand(make_checkpoint, make_bundle, hub_cache: Path) -> None:
    checkpoint = make_checkpoint("distilbert-mlm-uncased")
    populate_hub_cache(hub_cache, "acme/tiny-mlm", checkpoint)
    text = "Paris is the [MASK] of France."
    fill = pipeline("fill-mask", "acme/tiny-mlm", precision="fp32", provider="cpu")
    assert fill.resolved.how == EXPORTED and fill.resolved.validated
    manifest = Manifest.read(fill.resolved.path)
    assert manifest.source["model"] == "acme/tiny-mlm" and manifest.variants["fp32"].parity  # validated at export
    direct = pipeline("fill-mask", str(make_bundle("distilbert-mlm-uncased")), precision="fp32", provider="cpu")
    assert [p["token"] for p in fill(text)] == [p["token"] for p in direct(text)]
    assert resolve_model("acme/tiny-mlm", task="fill-mask").how == CACHED
    # a local checkpoint directory goes the same way, into the cache keyed by its path
    assert resolve_model(str(checkpoint), task="fill-mask").how in (EXPORTED, CACHED)


def test_without_a_registered_exporter_the_error_names_the_export_command(make_checkpoint, hub_cache: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from distilrt.runtime import ExporterMissingError
    from distilrt.runtime import resolve

    checkpoint = make_checkpoint("distilbert-mlm-uncased")
    monkeypatch.setattr(resolve, "find_exporter", lambda: None)
    with pytest.raises(ExporterMissingError) as caught:
        pipeline("fill-mask", str(checkpoint), provider="cpu")
    assert f"`distilrt export {checkpoint} --output DIR --task fill-mask`" in str(caught.value)


def test_info_shows_how_a_model_id_was_resolved(make_bundle, hub_cache: Path, tmp_path: Path, capsys) -> None:
    from distilrt.runtime.cli import main

    populate_hub_cache(hub_cache, "acme/tiny-qa", onnx_repo(make_bundle("distilbert-qa-uncased"), tmp_path / "repo"))
    assert main(["info", "acme/tiny-qa"]) == 0
    out = capsys.readouterr().out
    assert "hub ONNX repository" in out and "not validated" in out
    assert main(["qa", "acme/tiny-qa", "--question", SQUAD_QUESTION, "--context", SQUAD_CONTEXT]) == 0
    assert set(json.loads(capsys.readouterr().out.splitlines()[-1])) == {"score", "start", "end", "answer"}


# The model cards' usage, exactly as published, but for the import line.
README_QA = '''\
from distilrt.runtime import pipeline
question_answerer = pipeline("question-answering", model='distilbert-base-uncased-distilled-squad')

context = r"""
Extractive Question Answering is the task of extracting an answer from a text given a question. An example     of a
question answering dataset is the SQuAD dataset, which is entirely based on that task. If you would like to fine-tune
a model on a SQuAD task, you may leverage the examples/pytorch/question-answering/run_squad.py script.
"""

result = question_answerer(question="What is a good example of a question answering dataset?",     context=context)
print(
f"Answer: '{result['answer']}', score: {round(result['score'], 4)}, start: {result['start']}, end: {result['end']}"
)
'''
README_FILL_MASK = '''\
>>> from distilrt.runtime import pipeline
>>> unmasker = pipeline('fill-mask', model='distilbert-base-uncased')
>>> unmasker("Hello I'm a [MASK] model.")
'''
#: Runs a card's lines as Python runs them: a script as a script, ``>>>`` lines as the REPL (echoing values).
RUNNER = textwrap.dedent('''\
    import ast, json, sys
    for source in json.loads(sys.argv[1]):
        if source.startswith(">>> "):
            source = "\\n".join(line[4:] for line in source.splitlines())
            for node in ast.parse(source).body:
                exec(compile(ast.Interactive(body=[node]), "<card>", "single"))
        else:
            exec(compile(source, "<card>", "exec"))
        print("--- end of card", flush=True)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "optimum"})
    print("heavy:", ",".join(heavy), flush=True)
''')


def test_model_card_lines_run_with_only_the_import_changed(make_bundle, make_checkpoint, tmp_path: Path) -> None:
    repos = {
        "distilbert-base-uncased-distilled-squad": onnx_repo(make_bundle("distilbert-qa-uncased"), tmp_path / "qa"),
        "distilbert-base-uncased": onnx_repo(make_bundle("distilbert-mlm-uncased"), tmp_path / "mlm", layout="root"),
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "DISTILRT_CACHE_DIR": str(tmp_path / "distilrt"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    with FakeHub(repos) as hub:
        env["HF_ENDPOINT"] = hub.url
        done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps([README_QA, README_FILL_MASK])], env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(r.startswith("GET /distilbert-base-uncased/resolve/") for r in hub.requests)
    qa_out, mask_out, tail = done.stdout.split("--- end of card\n")
    assert tail.strip() == "heavy:", tail  # a model id resolves without torch or transformers

    # transformers on the PyTorch checkpoints the tiny bundles were exported from, formatted as the card does
    context = ast.literal_eval(README_QA.split("context = ", 1)[1].split('\n"""', 1)[0] + '\n"""')
    ref = reference_pipeline("question-answering", str(make_checkpoint("distilbert-qa-uncased")))
    result = ref(question="What is a good example of a question answering dataset?", context=context)
    ours = qa_out.strip().removeprefix("Answer: ")
    assert ours.split(", score:")[0] == f"'{result['answer']}'"
    assert ours.endswith(f"start: {result['start']}, end: {result['end']}")
    assert abs(float(ours.split("score: ")[1].split(",")[0]) - result["score"]) <= 1e-4 + 5e-5
    reference = reference_pipeline("fill-mask", str(make_checkpoint("distilbert-mlm-uncased")))("Hello I'm a [MASK] model.")
    shown = ast.literal_eval(mask_out.strip())
    assert [p["token"] for p in shown] == [p["token"] for p in reference]
    assert [p["sequence"] for p in shown] == [p["sequence"] for p in reference]
