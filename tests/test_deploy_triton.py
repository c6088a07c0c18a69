"""``distilrt deploy triton`` (python backend) against a real tritonserver from the nvidia-pytriton wheel.

The server runs on 127.0.0.1 with ephemeral ports; 64 concurrent clients send a bounded workload (four
requests each) with dynamic batching on; every answer must equal the direct pipeline's.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy_fixtures import PRECISION, TASK_BUNDLES, assert_same, bodies, expected_answer
from distilrt.runtime.deploy.triton import TritonOptions, write_triton_repository
from distilrt.runtime.errors import BundleError, OutputExistsError

CLIENTS = 64
REQUESTS_PER_CLIENT = 4


@pytest.fixture(scope="module")
def triton_server(task_bundles, tmp_path_factory):
    from distilrt.runtime.deploy import triton_local
    from distilrt.runtime.errors import MissingDependencyError

    try:
        triton_local.find_distribution()
    except MissingDependencyError as exc:
        pytest.skip(f"no tritonserver here: {exc}")
    pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed (pip install 'distilrt[triton]')")
    root = tmp_path_factory.mktemp("triton")
    options = TritonOptions(max_batch_size=16, max_queue_delay_us=5000, threads=1, precision=PRECISION)
    models = write_triton_repository(list(task_bundles.values()), root / "repo", options=options)
    names = {task: m.name for task, m in zip(task_bundles, models)}
    with triton_local.local_triton(root / "repo", root / "work", timeout_s=180) as server:
        yield server, names


def _request(client: Any, model: str, body: dict[str, Any]) -> Any:
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput("REQUEST", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[json.dumps(body).encode()]], dtype=np.object_))
    result = client.infer(model, [tensor], outputs=[httpclient.InferRequestedOutput("RESPONSE", binary_data=True)])
    return json.loads(result.as_numpy("RESPONSE")[0][0])


def test_repository_layout_and_config_parse(task_bundles, tmp_path) -> None:
    models = write_triton_repository([task_bundles["fill-mask"]], tmp_path / "repo",
                                     options=TritonOptions(max_batch_size=8, instances=2, max_queue_delay_us=100))
    model_dir = models[0]
    assert (model_dir / "1" / "model.py").is_file() and (model_dir / "1" / "bundle" / "manifest.json").is_file()
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.backend == "python" and config.max_batch_size == 8
    assert [i.name for i in config.input] == ["REQUEST"] and config.input[0].data_type == model_config_pb2.TYPE_STRING
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.instance_group[0].count == 2
    with pytest.raises(OutputExistsError, match="--force"):
        write_triton_repository([task_bundles["fill-mask"]], tmp_path / "repo")


def test_changed_bundle_is_refused_at_load(task_bundles, tmp_path) -> None:
    from distilrt.runtime.deploy.triton_model import TritonPythonModel

    model_dir = write_triton_repository([task_bundles["text-classification"]], tmp_path / "repo")[0]
    manifest = model_dir / "1" / "bundle" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"task"', '"task" ', 1))
    config = json.dumps({"name": model_dir.name, "parameters": _parameters(model_dir)})
    with pytest.raises(BundleError, match="changed after"):
        TritonPythonModel().initialize({"model_config": config, "model_repository": str(model_dir), "model_version": "1"})


def _parameters(model_dir: Path) -> dict[str, Any]:
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import json_format, text_format

    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return json.loads(json_format.MessageToJson(config, preserving_proto_field_name=True))["parameters"]


def test_health_ready_and_metrics(triton_server) -> None:
    server, names = triton_server
    with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{names['fill-mask']}/ready", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(server.metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    assert "nv_inference_request_success" in text


def test_answers_equal_direct_pipeline_under_64_clients(triton_server, task_bundles) -> None:
    import tritonclient.http as httpclient

    server, names = triton_server
    work = [(task, body) for task in TASK_BUNDLES for body in bodies(task)]
    expected = {(task, i): expected_answer(task_bundles[task], task, body)
                for task in TASK_BUNDLES for i, body in enumerate(bodies(task))}
    plan = [[work[(c * REQUESTS_PER_CLIENT + k) % len(work)] for k in range(REQUESTS_PER_CLIENT)] for c in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)

    def client_run(requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any], Any]]:
        client = httpclient.InferenceServerClient(server.http_url, connection_timeout=60, network_timeout=120)
        try:
            barrier.wait(timeout=60)
            return [(task, body, _request(client, names[task], body)) for task, body in requests]
        finally:
            client.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for rs in pool.map(client_run, plan) for r in rs]
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    for task, body, answer in results:
        i = bodies(task).index(body)
        assert_same(answer, expected[(task, i)], f"{task} {body}")
    # dynamic batching on: fewer model executions than requests for at least one model
    stats_client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = stats_client.get_inference_statistics()["model_stats"]
    finally:
        stats_client.close()
    batched = {s["name"]: (s["inference_count"], s["execution_count"]) for s in stats}
    assert sum(i for i, _ in batched.values()) >= CLIENTS * REQUESTS_PER_CLIENT
    assert any(e < i for i, e in batched.values()), f"no model saw a batch of several requests: {batched}"


def test_grpc_answers_and_bad_input_errors(triton_server, task_bundles) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    server, names = triton_server
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        body = bodies("question-answering")[0]
        tensor = grpcclient.InferInput("REQUEST", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[json.dumps(body).encode()]], dtype=np.object_))
        answer = json.loads(client.infer(names["question-answering"], [tensor]).as_numpy("RESPONSE")[0][0])
        assert_same(answer, expected_answer(task_bundles["question-answering"], "question-answering", body))
        bad = grpcclient.InferInput("REQUEST", [1, 1], "BYTES")
        bad.set_data_from_numpy(np.array([[json.dumps({"inputs": 3}).encode()]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match=r"422 invalid_input: inputs must be a string"):
            client.infer(names["fill-mask"], [bad])
    finally:
        client.close()


def test_cli_writes_repository_and_refuses_bad_input(task_bundles, tmp_path, capsys) -> None:
    from distilrt.runtime.cli import main

    bundle = str(task_bundles["question-answering"])
    assert main(["deploy", "triton", bundle, "--output", str(tmp_path / "repo"), "--instances", "2", "--threads", "1"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert "config.pbtxt" in line["files"] and "1/model.py" in line["files"]
    assert "count: 2 kind: KIND_CPU" in (tmp_path / "repo" / line["model"] / "config.pbtxt").read_text()
    assert main(["deploy", "triton", bundle, "--output", str(tmp_path / "repo")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["deploy", "triton", str(tmp_path / "missing"), "--output", str(tmp_path / "repo2")]) == 2
