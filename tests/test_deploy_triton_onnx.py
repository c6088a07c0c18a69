"""``distilrt deploy triton --backend onnxruntime``: validated structurally, not run.

The nvidia-pytriton server has no onnxruntime backend, so the repository is checked against Triton's
model-config protobuf and the ONNX graphs; the python model's BLS path is exercised with a stand-in for
``triton_python_backend_utils`` whose BLS call runs the repository's ``model.onnx`` with onnxruntime.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy_fixtures import PRECISION, TASK_BUNDLES, assert_same, bodies, expected_answer
from distilrt.runtime.deploy.triton import TritonOptions, write_triton_repository
from distilrt.runtime.deploy.triton_onnx import validate_repository

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is not installed")


@pytest.fixture(scope="module")
def onnx_repo(make_bundle, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    bundles = {task: make_bundle(name) for task, name in TASK_BUNDLES.items()}
    repo = tmp_path_factory.mktemp("onnx-repo") / "repo"
    write_triton_repository(list(bundles.values()), repo,
                            options=TritonOptions(backend="onnxruntime", precision=PRECISION, max_batch_size=8))
    return repo, bundles


def test_repository_validates_against_protobuf_and_graphs(onnx_repo) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    repo, bundles = onnx_repo
    assert validate_repository(repo) == []
    assert len(list(repo.glob("*/config.pbtxt"))) == 2 * len(bundles)
    for config_path in repo.glob("*_onnx/config.pbtxt"):
        config = text_format.Parse(config_path.read_text(), model_config_pb2.ModelConfig())
        assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
        assert all(t.data_type == model_config_pb2.TYPE_INT64 and list(t.dims) == [-1] for t in config.input)
        assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert not list(repo.glob("*[!x]/1/bundle/onnx/*.onnx")), "the python models must not carry the ONNX files"


def test_validation_names_each_mismatch(onnx_repo, tmp_path) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(onnx_repo[0], repo)
    onnx_config = next(repo.glob("*_onnx/config.pbtxt"))
    onnx_config.write_text(onnx_config.read_text().replace("TYPE_INT64 dims: [ -1 ]", "TYPE_INT32 dims: [ -1, 4 ]", 1))
    python_config = repo / onnx_config.parent.name[:-len("_onnx")] / "config.pbtxt"
    python_config.write_text(python_config.read_text().replace("input_ids,", "token_ids,"))
    problems = validate_repository(repo)
    assert any("TYPE_INT32, graph has tensor(int64)" in p for p in problems), problems
    assert any("dims [-1, 4] != graph [-1]" in p for p in problems), problems
    assert any("sends token_ids" in p for p in problems), problems


class _Tensor:
    def __init__(self, name: str, value: np.ndarray) -> None:
        self._name, self._value = name, value

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._value


class _Response:
    def __init__(self, output_tensors: list[_Tensor] | None = None, error: Any = None) -> None:
        self.output_tensors, self._error = output_tensors or [], error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> Any:
        return self._error


def _stand_in_utils(repo: Path) -> types.ModuleType:
    """triton_python_backend_utils with BLS calls answered by onnxruntime on the repository's model.onnx."""
    import onnxruntime as ort

    sessions: dict[str, Any] = {}
    module = types.ModuleType("triton_python_backend_utils")

    class InferenceRequest:
        def __init__(self, model_name: str, requested_output_names: list[str], inputs: list[_Tensor]) -> None:
            self.model_name, self.outputs, self.inputs = model_name, requested_output_names, inputs

        def exec(self) -> _Response:
            if self.model_name not in sessions:
                sessions[self.model_name] = ort.InferenceSession(str(repo / self.model_name / "1" / "model.onnx"),
                                                                 providers=["CPUExecutionProvider"])
            values = sessions[self.model_name].run(self.outputs, {t.name(): t.as_numpy() for t in self.inputs})
            return _Response([_Tensor(n, v) for n, v in zip(self.outputs, values)])

    class TritonError(Exception):
        INVALID_ARG = "INVALID_ARG"

        def __init__(self, message: str, code: Any = None) -> None:
            super().__init__(message)
            self.code = code

    module.Tensor = _Tensor
    module.InferenceRequest = InferenceRequest
    module.InferenceResponse = _Response
    module.TritonError = TritonError
    module.get_output_tensor_by_name = lambda r, n: next(t for t in r.output_tensors if t.name() == n)
    module.get_input_tensor_by_name = lambda r, n: next((t for t in r if t.name() == n), None)
    return module


def test_python_model_answers_through_bls_like_the_pipeline(onnx_repo, monkeypatch) -> None:
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    from distilrt.runtime.deploy.triton_model import TritonPythonModel
    from distilrt.runtime.manifest import Manifest

    repo, bundles = onnx_repo
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _stand_in_utils(repo))
    for task, bundle in bundles.items():
        model_dir = repo / Manifest.read(bundle).name
        config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        model = TritonPythonModel()
        model.initialize({"model_config": json_format.MessageToJson(config, preserving_proto_field_name=True),
                          "model_repository": str(model_dir), "model_version": "1"})
        requests = [[_Tensor("REQUEST", np.array([[json.dumps(b).encode()]], dtype=np.object_))] for b in bodies(task)]
        responses = model.execute(requests + [[_Tensor("REQUEST", np.array([[b'{"inputs": 3}']], dtype=np.object_))]])
        for body, response in zip(bodies(task), responses):
            assert not response.has_error(), response.error()
            answer = json.loads(response.output_tensors[0].as_numpy()[0][0])
            assert_same(answer, expected_answer(bundle, task, body), f"{task} {body}")
        assert responses[-1].has_error() and str(responses[-1].error()).startswith("422 invalid_input")
