"""Core stays a library: ``src/labelgate`` imports no SDK, no Flask and no adapter package.

Two independent checks: a static walk of every import statement in the source (function-level
and ``importlib.import_module("...")`` included), and a subprocess that imports every core
module and then looks at ``sys.modules`` (catching what a dependency pulls in transitively).
Adapters reach core through entry points, never the other way round.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import labelgate

CORE = Path(labelgate.__file__).resolve().parent
#: Top-level packages core must never import.
FORBIDDEN = (
    "cvat_sdk",
    "label_studio_sdk",
    "flask",
    "werkzeug",
    "labelgate_cvat",
    "labelgate_labelstudio",
    "labelgate_webhook",
)


def imports_of(source: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, at any nesting depth.

    Relative imports stay inside the package and are skipped; ``importlib.import_module`` and
    ``__import__`` calls with a literal name count as imports.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                yield node.lineno, arg.value


def forbidden_imports(root: Path) -> list[str]:
    """``file:line: module`` for every forbidden import under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, module in imports_of(path.read_text(encoding="utf-8")):
            if module.split(".")[0] in FORBIDDEN:
                found.append(f"{path.relative_to(root.parent)}:{line}: {module}")
    return found


def test_the_walker_finds_every_kind_of_import() -> None:
    src = (
        "import os\n"
        "import flask as f\n"
        "from cvat_sdk.api_client import ApiClient\n"
        "from . import sibling\n"
        "def late():\n"
        "    import labelgate_cvat.cli\n"
        "    class C:\n"
        "        def m(self):\n"
        "            from werkzeug import exceptions\n"
        "import importlib\n"
        "mod = importlib.import_module('label_studio_sdk.client')\n"
        "other = __import__('labelgate_webhook')\n"
        "dynamic = importlib.import_module(name)\n"
    )
    assert sorted(imports_of(src)) == [
        (1, "os"),
        (2, "flask"),
        (3, "cvat_sdk.api_client"),
        (6, "labelgate_cvat.cli"),
        (9, "werkzeug"),
        (10, "importlib"),
        (11, "label_studio_sdk.client"),
        (12, "labelgate_webhook"),
    ]


def test_forbidden_imports_are_reported_with_file_and_line(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "ok.py").write_text("import numpy\nfrom labelgate.errors import FormatError\n")
    (pkg / "sub" / "bad.py").write_text("import json\n\ndef f():\n    from flask import Flask\n")
    assert forbidden_imports(pkg) == ["pkg/sub/bad.py:4: flask"]


def test_core_source_imports_no_sdk_flask_or_adapter() -> None:
    files = list(CORE.rglob("*.py"))
    # A walk that sees nothing would pass vacuously: core has dozens of modules, and the CLI
    # package imports click.
    assert len(files) > 50
    cli = (CORE / "cli" / "__init__.py").read_text(encoding="utf-8")
    assert any(m == "click" for _, m in imports_of(cli))
    assert forbidden_imports(CORE) == []


_PROBE = """
import importlib, json, pkgutil, sys
import labelgate
for info in pkgutil.walk_packages(labelgate.__path__, "labelgate."):
    if info.name.rsplit(".", 1)[-1] != "__main__":  # __main__ runs the CLI
        importlib.import_module(info.name)
names = [m for m in sys.modules if m.startswith("labelgate.")]
print(json.dumps({"modules": len(names), "loaded": sorted(sys.modules)}))
"""


def test_importing_all_of_core_loads_no_sdk_flask_or_adapter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["modules"] > 50
    leaked = [m for m in out["loaded"] if m.split(".")[0] in FORBIDDEN]
    assert leaked == []
