"""Stand-ins for the Hugging Face hub, offline: a fake hub on loopback and a pre-populated hub cache.

``FakeHub`` answers the three requests huggingface_hub's ``snapshot_download`` makes (repository info,
then HEAD and GET of each file under ``/<repo>/resolve/<commit>/<file>``), for repositories given as
local folders; point a process at it with ``HF_ENDPOINT``.  ``populate_hub_cache`` lays a folder out
the way huggingface_hub caches a download, for tests that run with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

#: The files of an exported bundle that a published ONNX repository holds too (the manifest is distilrt's own).
ONNX_REPO_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt")


def onnx_repo(bundle: Path, target: Path, *, layout: str = "onnx") -> Path:
    """A repository folder in the optimum / transformers.js layout made from a bundle's files.

    ``layout="onnx"``: ``onnx/model.onnx`` and ``onnx/model_quantized.onnx``; ``"root"``: one
    ``model.onnx`` at the top, as optimum's ``save_pretrained`` writes it.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in ONNX_REPO_FILES:
        if (bundle / name).is_file():
            shutil.copyfile(bundle / name, target / name)
    if layout == "onnx":
        (target / "onnx").mkdir(exist_ok=True)
        for name in ("model.onnx", "model_quantized.onnx"):
            shutil.copyfile(bundle / "onnx" / name, target / "onnx" / name)
    else:
        shutil.copyfile(bundle / "onnx" / "model.onnx", target / "model.onnx")
    return target


def commit_of(folder: Path) -> str:
    """A stable 40-hex "commit" for a folder's content."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha1(path.read_bytes()).digest())
    return digest.hexdigest()


def populate_hub_cache(cache: Path, repo_id: str, folder: Path, *, revision: str = "main") -> Path:
    """Put ``folder`` into a Hugging Face hub cache as ``repo_id`` at ``revision``; return the snapshot."""
    commit = commit_of(folder)
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


class FakeHub:
    """A minimal hub on 127.0.0.1 serving ``{repo_id: folder}``; records every request path."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo_id: (Path(folder), commit_of(Path(folder))) for repo_id, folder in repos.items()}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, *, body: bool) -> None:
                path = unquote(self.path.split("?", 1)[0])
                hub.requests.append(f"{self.command} {path}")
                found = hub.route(path)
                if found is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound" if "/api/" in path else "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, headers = found
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, path: str) -> tuple[bytes, dict[str, str]] | None:
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo_id, _, _revision = rest.partition("/revision/")
            if repo_id not in self.repos:
                return None
            folder, commit = self.repos[repo_id]
            siblings = [{"rfilename": str(p.relative_to(folder))} for p in sorted(folder.rglob("*")) if p.is_file()]
            info = {"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings, "private": False}
            return json.dumps(info).encode(), {"Content-Type": "application/json"}
        for repo_id, (folder, commit) in self.repos.items():
            prefix = f"/{repo_id}/resolve/"
            if path.startswith(prefix):
                _revision, _, filename = path[len(prefix):].partition("/")
                file = folder / filename
                if not file.is_file():
                    return None
                data = file.read_bytes()
                return data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                              "Content-Type": "application/octet-stream"}
        return None

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
