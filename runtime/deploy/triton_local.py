"""Run a real ``tritonserver`` on this machine from the ``nvidia-pytriton`` wheel, on loopback.

The wheel ships Triton's server binary, its python backend and one python-backend stub per Python
version; its Python API (PyTriton) is not used.  What the binary needs, and this module sets up:

- ``LD_LIBRARY_PATH``: the wheel's bundled libraries and the directory of this interpreter's libpython
  (the stub embeds Python; without it the stub may pick up another Python 3.x build of the system);
- a backend directory holding the python backend and the stub for *this* Python's version;
- a Python environment for the stub: the stub finds its interpreter through ``PATH``, so a small venv
  is created whose site-packages adds this interpreter's site-packages (distilrt, onnxruntime,
  tokenizers).  The wheel's stub is built against NumPy 1.x and corrupts tensors under NumPy 2 (both
  BYTES and numeric, measured), so when this environment has NumPy 2 the stub's venv gets a NumPy 1.x
  from ``DISTILRT_TRITON_STUB_SITE`` or ``<venv>/triton-stub-site`` (``make install`` puts it there:
  ``pip install --target .venv/triton-stub-site 'numpy<2'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import MissingDependencyError, TritonServerError
from ..readiness import wait_until_ok

logger = logging.getLogger(__name__)

STUB_SITE_ENV = "DISTILRT_TRITON_STUB_SITE"
STUB_SITE_DIR = "triton-stub-site"


@dataclass(frozen=True)
class TritonDistribution:
    """Where the wheel keeps the server binary, the python backend, the stub and the bundled libraries."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "tritonserver" / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "tritonserver" / "backends" / "python"

    @property
    def libs(self) -> Path:
        return self.root.parent / "nvidia_pytriton.libs"

    def stub(self, version: str | None = None) -> Path:
        version = version or f"{sys.version_info[0]}.{sys.version_info[1]}"
        return self.root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"


def find_distribution() -> TritonDistribution:
    """The installed ``nvidia-pytriton`` wheel's server files (found without importing PyTriton)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("a local Triton server needs the nvidia-pytriton wheel (it ships tritonserver); "
                                     "install it with: pip install --no-deps nvidia-pytriton")
    dist = TritonDistribution(Path(list(spec.submodule_search_locations)[0]))
    for path in (dist.binary, dist.python_backend / "libtriton_python.so", dist.stub()):
        if not path.exists():
            raise TritonServerError(f"{path} is missing from the nvidia-pytriton install (Python "
                                    f"{sys.version_info[0]}.{sys.version_info[1]}); reinstall nvidia-pytriton")
    return dist


def numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def find_stub_site() -> Path | None:
    """A directory holding NumPy 1.x for the stub, if one was installed."""
    candidates = []
    if os.environ.get(STUB_SITE_ENV):
        candidates.append(Path(os.environ[STUB_SITE_ENV]))
    candidates.append(Path(sys.prefix) / STUB_SITE_DIR)
    for entry in sys.path:  # venvs whose packages come from another venv through a .pth file
        path = Path(entry)
        if path.name == "site-packages" and len(path.parents) > 3:
            candidates.append(path.parents[2] / STUB_SITE_DIR)
    for candidate in candidates:
        if (candidate / "numpy").is_dir():
            return candidate
    return None


def make_stub_environment(target: Path) -> Path:
    """A venv for the python-backend stub that sees this interpreter's packages; returns its bin dir."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(target)
    site_dir = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    if numpy_major() >= 2:
        numpy1 = find_stub_site()
        if numpy1 is None:
            raise TritonServerError(
                "the nvidia-pytriton python-backend stub needs NumPy 1.x and this environment has NumPy 2; install "
                f"one beside it with: pip install --target {Path(sys.prefix) / STUB_SITE_DIR} 'numpy<2' "
                f"(or point {STUB_SITE_ENV} at a directory holding it)")
        for entry in numpy1.iterdir():
            if entry.name.startswith("numpy"):
                (site_dir / entry.name).symlink_to(entry)
    lines = [f"import site; site.addsitedir({str(p)!r})" for p in _site_dirs()]
    (site_dir / "_distilrt_parent_env.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target / "bin"


def _site_dirs() -> list[str]:
    import site

    dirs = [p for p in site.getsitepackages() if Path(p).is_dir()]
    return dirs or [sysconfig.get_path("purelib")]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalTriton:
    """A ``tritonserver`` child process serving ``repository`` on 127.0.0.1 (a context manager)."""

    repository: Path
    workdir: Path
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def command(self, dist: TritonDistribution, backends: Path) -> list[str]:
        return [str(dist.binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}", "--allow-metrics=true",
                "--allow-gpu-metrics=false", "--exit-timeout-secs=5", "--log-info=true", *self.extra_args]

    def start(self, *, timeout_s: float = 120.0) -> "LocalTriton":
        dist = find_distribution()
        self.workdir.mkdir(parents=True, exist_ok=True)
        backends = self.workdir / "backends"
        python_dir = backends / "python"
        if backends.exists():
            shutil.rmtree(backends)
        python_dir.mkdir(parents=True)
        for entry in dist.python_backend.iterdir():
            (python_dir / entry.name).symlink_to(entry)
        shutil.copy2(dist.stub(), python_dir / "triton_python_backend_stub")
        bin_dir = make_stub_environment(self.workdir / "stub-env")
        for name in ("http_port", "grpc_port", "metrics_port"):
            if not getattr(self, name):
                setattr(self, name, free_port())
        env = dict(os.environ)
        libdirs = [str(dist.libs), str(sysconfig.get_config_var("LIBDIR") or "")]
        env["LD_LIBRARY_PATH"] = ":".join([d for d in libdirs if d] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
        env.pop("PYTHONHOME", None)
        log = open(self.log_path, "wb")
        logger.info("starting %s on %s", dist.binary, self.http_url)
        self.process = subprocess.Popen(self.command(dist, backends), stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=self.workdir, start_new_session=True)
        log.close()
        self.wait_ready(timeout_s=timeout_s)
        return self

    def wait_ready(self, *, timeout_s: float) -> None:
        def check_alive() -> None:
            if self.process is not None and self.process.poll() is not None:
                raise TritonServerError(f"tritonserver exited with code {self.process.returncode}; its log:\n"
                                        + self.log_tail())

        if wait_until_ok(f"http://{self.http_url}/v2/health/ready", timeout_s=timeout_s, interval_s=0.2,
                         check_alive=check_alive):
            return
        raise TritonServerError(f"tritonserver was not ready after {timeout_s:.0f}s; its log:\n" + self.log_tail())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait for Triton to unload its models, SIGKILL if it does not; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def __enter__(self) -> "LocalTriton":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_triton(repository: Path, workdir: Path, *, timeout_s: float = 120.0) -> Iterator[LocalTriton]:
    """Start Triton on ``repository``, yield it ready, stop it."""
    server = LocalTriton(Path(repository).resolve(), Path(workdir).resolve())
    server.start(timeout_s=timeout_s)
    try:
        yield server
    finally:
        server.stop()
