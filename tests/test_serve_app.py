"""The service against stand-in pipelines: real clients, error statuses, auth, limits, probes.

A live uvicorn server on 127.0.0.1 (ephemeral port), driven by huggingface_hub.InferenceClient, the openai
client and plain HTTP.  The pipelines are stand-ins with the runtime's call shapes; test_serve_e2e.py
runs the same routes on real bundles.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from distilrt.runtime.serve.config import ServeSettings

from serve_fixtures import (
    FakeClassifier,
    FakeFeatures,
    FakeFillMask,
    FakeQA,
    LiveServer,
    fake_model,
    loopback_hub_session,
)

API_KEY = "s3cret-token"


def _models():
    return [fake_model("qa", "question-answering"), fake_model("mlm", "fill-mask"),
            fake_model("emb", "feature-extraction", pooling={"mode": "mean", "normalize": True}),
            fake_model("clf", "text-classification")]


@pytest.fixture(scope="module", autouse=True)
def _hub_reaches_loopback():
    with loopback_hub_session():
        yield


@pytest.fixture(scope="module")
def server():
    settings = ServeSettings(port=0, max_body_bytes=4096, max_inputs_per_request=8, max_wait_ms=2)
    with LiveServer(_models(), settings) as live:
        yield live


@pytest.fixture(scope="module")
def auth_server():
    with LiveServer([fake_model("clf", "text-classification")], ServeSettings(port=0, api_key=API_KEY)) as live:
        yield live


def _hf(server, name: str, **kwargs):
    from huggingface_hub import InferenceClient

    return InferenceClient(model=f"{server.url}/models/{name}", **kwargs)


def test_inference_client_question_answering(server) -> None:
    ctx = "Paris is the capital of France"
    got = _hf(server, "qa").question_answering(question="What is the capital?", context=ctx)
    want = FakeQA()(question="What is the capital?", context=ctx)
    assert (got.answer, got.start, got.end) == (want["answer"], want["start"], want["end"])
    assert got.score == pytest.approx(want["score"], abs=0)
    several = _hf(server, "qa").question_answering(question="Q?", context=ctx, top_k=3)
    assert [a.answer for a in several] == ["Paris", "is", "the"]


def test_inference_client_fill_mask(server) -> None:
    got = _hf(server, "mlm").fill_mask("The sky is [MASK].", top_k=3)
    want = FakeFillMask()("The sky is [MASK].", top_k=3)
    assert [(g.token, g.token_str, g.sequence, g.score) for g in got] == \
        [(w["token"], w["token_str"], w["sequence"], w["score"]) for w in want]
    targeted = _hf(server, "mlm").fill_mask("The sky is [MASK].", targets=["blue", "red"], top_k=2)
    assert [g.token_str for g in targeted] == ["blue", "red"]


def test_inference_client_feature_extraction(server) -> None:
    got = _hf(server, "emb").feature_extraction("hello world")
    want = FakeFeatures()("hello world", pooling="auto", return_tensors=True)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    normalized = _hf(server, "emb").feature_extraction("hello world", normalize=True)
    assert np.linalg.norm(normalized) == pytest.approx(1.0, abs=1e-6)


def test_token_level_features_and_batches_of_texts(server) -> None:
    response = _post(server, "/models/emb", {"inputs": ["abc", "abcdef"], "parameters": {"pooling": "none"}})
    want = [w[0] for w in FakeFeatures()(["abc", "abcdef"], pooling="none", return_tensors=True)]  # [tokens, hidden]
    assert response.status_code == 200
    got = response.json()
    assert [np.asarray(g, dtype=np.float32).shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g, dtype=np.float32), w)


def test_inference_client_text_classification(server) -> None:
    got = _hf(server, "clf").text_classification("I like it")
    want = FakeClassifier()("I like it", top_k=None)
    assert [(g.label, g.score) for g in got] == [(w["label"], w["score"]) for w in want]
    assert len(_hf(server, "clf").text_classification("I like it", top_k=1)) == 1


def test_openai_client_embeddings_and_models(server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    texts = ["first text", "a second, longer text"]
    want = FakeFeatures()(texts, pooling="auto")
    for kwargs in ({}, {"encoding_format": "float"}, {"encoding_format": "base64"}):
        response = client.embeddings.create(model="emb", input=texts, **kwargs)
        assert [d.index for d in response.data] == [0, 1]
        if kwargs.get("encoding_format") == "base64":
            import base64

            got = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in response.data])
        else:
            got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
        np.testing.assert_array_equal(got, want)
    single = client.embeddings.create(model="emb", input="first text")
    np.testing.assert_array_equal(np.asarray(single.data[0].embedding, dtype=np.float32), want[0])
    assert sorted(m.id for m in client.models.list()) == ["clf", "emb", "mlm", "qa"]


def test_openai_client_errors(server) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="feature-extraction"):
        client.embeddings.create(model="qa", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="token-id"):
        client.embeddings.create(model="emb", input=[[1, 2, 3]])


def _post(server, path: str, body, headers=None) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + path, data=data, headers=headers or {"Content-Type": "application/json"},
                         timeout=10)


@pytest.mark.parametrize("path, body, status, needle", [
    ("/models/qa", b"{not json", 400, "not valid JSON"),
    ("/models/qa", b"", 400, "empty"),
    ("/models/qa", b"[1, 2]", 400, "JSON object"),
    ("/models/qa", {"parameters": {}}, 422, "missing the field 'inputs'"),
    ("/models/qa", {"inputs": {"question": "Q?"}}, 422, "missing the field 'context'"),
    ("/models/qa", {"inputs": {"question": 3, "context": "c"}}, 422, "must be a string, got integer"),
    ("/models/qa", {"inputs": {"question": "  ", "context": "c"}}, 422, "empty or whitespace-only"),
    ("/models/qa", {"inputs": "just text"}, 422, "question"),
    ("/models/qa", {"inputs": {"question": "Q", "context": "c"}, "parameters": {"top_k": 0}}, 422, ">= 1"),
    ("/models/qa", {"inputs": {"question": "Q", "context": "c"}, "parameters": {"top_k": "3"}}, 422, "integer"),
    ("/models/qa", {"inputs": {"question": "Q", "context": "c"}, "parameters": {"max_seq_len": 100000}}, 422,
     "max_sequence_length"),
    ("/models/qa", {"inputs": {"question": "Q", "context": "c"}, "parameters": {"bogus": 1}}, 422, "unsupported"),
    ("/models/mlm", {"inputs": ""}, 422, "empty"),
    ("/models/mlm", {"inputs": []}, 422, "empty array"),
    ("/models/mlm", {"inputs": ["ok [MASK]", 5]}, 422, "inputs[1] must be a string"),
    ("/models/mlm", {"inputs": ["a [MASK]"] * 9}, 422, "at most 8 inputs"),
    ("/models/mlm", {"inputs": "no mask here"}, 422, "[MASK]"),
    ("/models/clf", {"inputs": "x", "parameters": {"function_to_apply": "tanh"}}, 422, "function_to_apply"),
    ("/models/emb", {"inputs": "x", "truncate": "yes"}, 422, "truncate must be true or false"),
    ("/models/emb", {"inputs": "x", "truncation_direction": "Left", "truncate": True}, 422, "Right"),
    ("/models/emb", {"inputs": "x", "parameters": {"pooling": "median"}}, 422, "pooling"),
    ("/models/emb", {"inputs": "x", "prompt_name": "query"}, 422, "unsupported"),
    ("/models/unknown", {"inputs": "x"}, 404, "not served here"),
    ("/models/..%2F..%2Fetc%2Fpasswd", {"inputs": "x"}, 404, "not served here"),
    ("/v1/embeddings", {"input": "x"}, 422, "'model'"),
    ("/v1/embeddings", {"model": "emb", "input": ""}, 422, "empty"),
    ("/v1/embeddings", {"model": "emb", "input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": 4}, 422, "dimensions"),
])
def test_bad_requests_get_readable_4xx(server, path, body, status, needle) -> None:
    response = _post(server, path, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert needle in message
    # and the server keeps serving
    assert _post(server, "/models/clf", {"inputs": "still fine"}).status_code == 200


def test_oversize_body_gets_413(server) -> None:
    response = _post(server, "/models/clf", {"inputs": "x" * 5000})
    assert response.status_code == 413 and "at most 4096 bytes" in response.json()["error"]

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(10):
            yield b"x" * 1000

    streamed = requests.post(server.url + "/models/clf", data=chunks(), timeout=10)
    assert streamed.status_code == 413
    assert _post(server, "/models/clf", {"inputs": "after"}).status_code == 200


def test_one_bad_request_in_a_list_fails_alone(server) -> None:
    ok = _post(server, "/models/clf", {"inputs": ["good one", "another"]})
    assert ok.status_code == 200 and len(ok.json()) == 2
    bad = _post(server, "/models/clf", {"inputs": ["good one", "BAD one"]})
    assert bad.status_code == 422 and "BAD" in bad.json()["error"]


def test_probes_metrics_and_unknown_routes(server) -> None:
    assert requests.get(server.url + "/health", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/ready", timeout=5).json()
    assert ready["status"] == "ready" and set(ready["models"]) == {"qa", "mlm", "emb", "clf"}
    metrics = requests.get(server.url + "/metrics", timeout=5)
    assert metrics.headers["content-type"].startswith("text/plain")
    for family in ("distilrt_requests_total", "distilrt_request_errors_total", "distilrt_request_duration_seconds",
                   "distilrt_batch_size", "distilrt_queue_depth", "distilrt_model_ready"):
        assert f"# TYPE {family} " in metrics.text
    assert 'distilrt_model_ready{model="qa"} 1' in metrics.text
    assert requests.get(server.url + "/nowhere", timeout=5).status_code == 404
    assert requests.get(server.url + "/models/qa", timeout=5).status_code == 405


def test_auth_required_when_configured(auth_server) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    url = auth_server.url + "/models/clf"
    assert requests.post(url, json={"inputs": "x"}, timeout=5).status_code == 401
    wrong = requests.post(url, json={"inputs": "x"}, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert requests.get(auth_server.url + "/metrics", timeout=5).status_code == 401
    assert requests.get(auth_server.url + "/health", timeout=5).status_code == 200
    assert requests.get(auth_server.url + "/ready", timeout=5).status_code == 200
    with pytest.raises(HfHubHTTPError):
        _hf(auth_server, "clf", token="wrong").text_classification("x")
    assert _hf(auth_server, "clf", token=API_KEY).text_classification("x")[0].label in ("POSITIVE", "NEGATIVE")
