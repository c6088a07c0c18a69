"""The serve command stays out of the way: no web stack at ``distilrt --help`` time, no torch/transformers/
optimum in the server, and a clear install hint when the serve extra is missing."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
{setup}
bad = sorted(m for m in {forbidden!r} if m in sys.modules)
print(",".join(bad))
"""


def _loaded(setup: str, forbidden: tuple[str, ...]) -> str:
    code = CHECK.format(setup=setup, forbidden=forbidden)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def test_cli_parser_does_not_import_the_web_stack() -> None:
    setup = "from distilrt.runtime.cli import build_parser\nbuild_parser().parse_args(['serve', 'b', '--port', '1'])"
    assert _loaded(setup, ("fastapi", "uvicorn", "starlette", "torch", "transformers")) == ""


def test_server_never_imports_torch_transformers_optimum() -> None:
    setup = ("import distilrt.runtime.serve.app, distilrt.runtime.serve.server, distilrt.runtime.serve.routes\n"
             "from distilrt.runtime import pipeline")
    assert _loaded(setup, ("torch", "transformers", "optimum")) == ""


def test_missing_serve_extra_names_the_install_command() -> None:
    code = ("import sys\nsys.modules['fastapi'] = None\n"
            "from distilrt.runtime.cli import main\nsys.exit(main(['serve', 'some-bundle']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install 'distilrt[serve]'" in result.stderr
