"""Which way imports point: runtime <- export <- benchmarks <- research, read from the source (no imports run).

The runtime's library code imports nothing from the exporter or the benchmarks, not even inside a function,
and names none of their modules (no ``importlib`` detours); ``pipeline(model_id)`` reaches the exporter through
the ``distilrt.exporters`` entry point.  Only the CLI layer (``runtime/cli.py``, ``runtime/commands/``) reaches
them, inside the function of the subcommand that needs them (``distilrt export``, ``distilrt bench``).
Shipped modules import each other as modules: no ``sys.path`` edits, no loading a module from a file path.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: folder -> top-level names its modules must never import.
FORBIDDEN = {
    "runtime": ("distilrt.export", "distilrt.benchmarks", "research"),
    "export": ("distilrt.benchmarks", "research"),
    "benchmarks": ("research",),
}
#: The CLI layer: may import the exporter and the benchmarks inside a function only (the front door, one
#: subcommand per function).  Everything else in runtime/ is library code and never does.
CLI = ("runtime/cli.py", "runtime/commands/")


def _imports(tree: ast.Module, *, module_level_only: bool) -> list[tuple[int, str]]:
    if module_level_only:  # imports under `if TYPE_CHECKING:` / try blocks at module level count too
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(top)]
    else:
        nodes = list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _named_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """String constants that could name a module for ``importlib`` or an entry point ("pkg.mod" or "pkg.mod:fn")."""
    return [(node.lineno, node.value.split(":")[0]) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " not in node.value]


def _violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        lenient = relative.startswith(CLI)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        found = _imports(tree, module_level_only=lenient) + ([] if lenient else _named_modules(tree))
        for line, name in found:
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{relative}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_one_way(folder: str) -> None:
    assert _violations(folder) == []


def test_the_check_sees_imports_inside_functions_only_where_asked() -> None:
    tree = ast.parse("import os\n\ndef run():\n    from distilrt.export import export_model\n")
    assert (4, "distilrt.export") in _imports(tree, module_level_only=False)
    assert _imports(tree, module_level_only=True) == [(1, "os")]


def test_library_code_may_not_import_inside_functions_or_by_name(tmp_path: Path, monkeypatch) -> None:
    library = tmp_path / "runtime"
    (library / "commands").mkdir(parents=True)
    (library / "lazy.py").write_text("def run():\n    from distilrt.export import export_model\n")
    (library / "named.py").write_text("import importlib\nimportlib.import_module('distilrt.benchmarks.runner')\n")
    (library / "commands" / "bench.py").write_text("def run(args):\n    from distilrt.benchmarks import runner\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("runtime") == ["runtime/lazy.py:2 imports distilrt.export",
                                      "runtime/named.py:2 imports distilrt.benchmarks.runner"]


#: Ways of reaching code other than importing it as a module.
PATH_HACKS = ("sys.path.insert", "sys.path.append", "sys.path[", "spec_from_file_location", "SourceFileLoader")


def test_shipped_modules_import_modules_not_paths() -> None:
    bad = [f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}"
           for folder in FORBIDDEN for path in sorted((ROOT / folder).rglob("*.py"))
           for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
           if any(hack in line for hack in PATH_HACKS) and not line.lstrip().startswith("#")]
    assert bad == []
