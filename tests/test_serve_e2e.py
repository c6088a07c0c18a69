"""The service on real bundles: real clients get what direct ``pipeline()`` calls on the same bundle give.

Bundles are the tiny seeded checkpoints from conftest (plus the real all-MiniLM-L6-v2 for embeddings),
served at fp32 so that answers do not depend on which other requests share a batch (int8 dynamic
quantisation scales activations per batch, so its scores can move slightly with the batch mates).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from distilrt.runtime import pipeline
from distilrt.runtime.manifest import Manifest
from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.server import bundle_model

from serve_fixtures import LiveServer, loopback_hub_session

PRECISION = "fp32"
LONG_CONTEXT = " ".join(f"Sentence {i} says that item {i} is kept in room {i * 7 % 13}." for i in range(120))


@pytest.fixture(scope="module")
def bundles(make_bundle, minilm_bundle):
    return {"qa": make_bundle("distilbert-qa-uncased"), "mlm": make_bundle("distilbert-mlm-uncased"),
            "clf": make_bundle("distilbert-classifier"), "emb": minilm_bundle}


@pytest.fixture(scope="module")
def direct(bundles):
    return {key: pipeline(None, model=path, precision=PRECISION, provider="cpu") for key, path in bundles.items()}


@pytest.fixture(scope="module")
def server(bundles):
    models = [bundle_model(path, precision=PRECISION, provider="cpu") for path in bundles.values()]
    settings = ServeSettings(port=0, max_batch_size=16, max_wait_ms=5)
    with loopback_hub_session(), LiveServer(models, settings) as live:
        live.names = {key: m.name for key, m in zip(bundles, models)}
        yield live


def _client(server, key):
    from huggingface_hub import InferenceClient

    return InferenceClient(model=f"{server.url}/models/{server.names[key]}")


def _same_answer(got, want) -> None:
    assert (got.answer, got.start, got.end) == (want["answer"], want["start"], want["end"])
    assert got.score == pytest.approx(want["score"], abs=1e-5)


def test_question_answering_matches_pipeline(server, direct) -> None:
    question = "Where is item 97 kept?"
    for context in ("Jim Henson was a nice puppet maker from Mississippi.", LONG_CONTEXT):
        _same_answer(_client(server, "qa").question_answering(question=question, context=context),
                     direct["qa"](question=question, context=context))
    got = _client(server, "qa").question_answering(question=question, context=LONG_CONTEXT, top_k=3, doc_stride=32)
    want = direct["qa"](question=question, context=LONG_CONTEXT, top_k=3, doc_stride=32)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        _same_answer(g, w)


def test_fill_mask_matches_pipeline(server, direct) -> None:
    text = "the capital of france is [MASK]."
    got = _client(server, "mlm").fill_mask(text, top_k=4)
    want = direct["mlm"](text, top_k=4)
    assert [(g.token, g.token_str, g.sequence) for g in got] == [(w["token"], w["token_str"], w["sequence"]) for w in want]
    np.testing.assert_allclose([g.score for g in got], [w["score"] for w in want], atol=1e-5)


def test_feature_extraction_matches_pipeline(server, direct) -> None:
    text = "A man is eating food."
    got = _client(server, "emb").feature_extraction(text)
    want = np.asarray(direct["emb"](text, pooling="auto", return_tensors=True))
    assert got.shape == want.shape == (384,)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_text_classification_matches_pipeline(server, direct) -> None:
    text = "this is a wonderful library"
    got = _client(server, "clf").text_classification(text)
    want = direct["clf"](text, top_k=None)
    assert [g.label for g in got] == [w["label"] for w in want]
    np.testing.assert_allclose([g.score for g in got], [w["score"] for w in want], atol=1e-5)


def test_text_classification_options_pass_through(server, direct) -> None:
    text = "this is a wonderful library"
    got = _client(server, "clf").text_classification(text, top_k=1, function_to_apply="sigmoid")
    want = direct["clf"](text, top_k=1, function_to_apply="sigmoid")
    assert [(g.label, round(g.score, 5)) for g in got] == [(w["label"], round(w["score"], 5)) for w in want]


def test_openai_embeddings_match_pipeline(server, direct) -> None:
    from openai import OpenAI

    texts = ["A man is eating food.", "A man is riding a horse on a beach at sunset, far away."]
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    response = client.embeddings.create(model=server.names["emb"], input=texts)
    got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, np.asarray(direct["emb"](texts, pooling="auto", return_tensors=True)), atol=1e-5)
    assert response.usage.prompt_tokens > len(texts)


def test_inputs_over_the_model_limit_get_422_naming_it(server) -> None:
    url = f"{server.url}/models/{server.names['clf']}"
    response = requests.post(url, json={"inputs": ["short", "word " * 600]}, timeout=30)
    assert response.status_code == 422
    assert "inputs[1]" in response.json()["error"] and "max_sequence_length" in response.json()["error"]
    cut = requests.post(f"{server.url}/models/{server.names['emb']}", json={"inputs": "word " * 600, "truncate": True},
                        timeout=30)
    assert cut.status_code == 200 and len(cut.json()) == 384  # truncate=true cuts instead of refusing
    qa = requests.post(f"{server.url}/models/{server.names['qa']}",
                       json={"inputs": {"question": "Where?", "context": LONG_CONTEXT * 3}}, timeout=60)
    assert qa.status_code == 200  # QA contexts are windowed, never refused for length


def test_concurrent_real_requests_are_not_mixed(server, direct) -> None:
    cases = []
    for i in range(160):
        words = " ".join(f"item{i % 17} room{k}" for k in range(1 + (i * 5) % 40))
        if i % 2:
            cases.append(("clf", {"inputs": words}, direct["clf"](words, top_k=None)))
        else:
            q = f"Where is item{i % 17}?"
            cases.append(("qa", {"inputs": {"question": q, "context": words}}, direct["qa"](question=q, context=words)))
    local = threading.local()

    def send(case):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        key, body, _ = case
        return local.session.post(f"{server.url}/models/{server.names[key]}", json=body, timeout=120)

    with ThreadPoolExecutor(max_workers=48) as pool:
        responses = list(pool.map(send, cases))
    for (key, body, want), response in zip(cases, responses):
        assert response.status_code == 200, response.text
        got = response.json()
        if key == "clf":
            assert [g["label"] for g in got[0]] == [w["label"] for w in want]
            np.testing.assert_allclose([g["score"] for g in got[0]], [w["score"] for w in want], atol=1e-5)
        else:
            assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)
    for key in ("clf", "qa"):
        name = server.names[key]
        calls = server.metric(f'distilrt_batch_requests_count{{model="{name}"}}')
        singles = server.metric(f'distilrt_batch_requests_bucket{{model="{name}",le="1"}}')
        assert singles < calls <= 81  # some calls carried several requests


def test_cli_serves_a_bundle_and_stops_on_sigterm(bundles) -> None:
    env = dict(os.environ, DISTILRT_TEST_KEY="k-123")
    cmd = [sys.executable, "-m", "distilrt.runtime.cli", "serve", str(bundles["clf"]), "--port", "0",
           "--precision", PRECISION, "--provider", "cpu", "--api-key-env", "DISTILRT_TEST_KEY"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = ""
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        while not url and time.monotonic() < deadline:
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", proc.stderr.readline())
            url = match.group(1) if match else ""
        assert url, "server did not start"
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
        while requests.get(url + "/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        name = Manifest.read(bundles["clf"]).name
        assert requests.post(f"{url}/models/{name}", json={"inputs": "x"}, timeout=10).status_code == 401
        ok = requests.post(f"{url}/models/{name}", json={"inputs": "x"}, headers={"Authorization": "Bearer k-123"},
                           timeout=10)
        assert ok.status_code == 200 and len(ok.json()[0]) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
