"""The house's dependency rules, checked: the core imports neither Qt, glue nor torch; the command
line's help imports no torch; the core exports the flow's main objects."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "qtpy", "PyQt5", "PyQt6", "PySide6", "glue", "glue_qt")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_importing_the_core_loads_no_qt_glue_or_torch():
    code = "\n".join(f"import glue_radiollava.core.{m}" for m in (
        "image", "profiles", "transform", "models", "assistant", "tasks", "parsing", "skyregions", "scan",
        "similar", "stats", "files", "batching", "finders", "transcript"))
    assert _loaded_after(code + "\nfrom glue_radiollava.core import Assistant, RadioImage, write_regions") == []


def test_the_command_line_help_imports_no_torch():
    code = ("from glue_radiollava.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert [m for m in _loaded_after(code) if m in ("torch", "transformers")] == []


def test_the_core_exports_the_flow():
    import glue_radiollava.core as core

    for name in ("RadioImage", "Cutout", "Transform", "Assistant", "Answer", "write_regions", "SkyBox",
                 "ModelView", "Task", "parse_answer"):
        obj = getattr(core, name)
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
    assert set(core.__all__) <= set(dir(core))


def test_ask_accepts_the_benchmark_codes():
    import pytest

    from glue_radiollava.core.errors import RadioLlavaError
    from glue_radiollava.core.tasks import get_task

    assert get_task("B3").name == "b3-radio-galaxy" and get_task("b6").name == "b6-fr-class"
    with pytest.raises(RadioLlavaError, match="B7 asks: boxes-compact"):
        get_task("B7")


def _import_graph():
    """module → the project modules it imports (at any depth in the file: lazy imports count too)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = {}
    for pkg in ("glue_radiollava", "training", "benchmarks"):
        for path in (root / pkg).rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                candidates = subs or [target]          # `from . import glue_data` imports the module only
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            edges |= {c for c in candidates if c in modules and c != name}
        graph[name] = edges
    return graph


def test_no_import_circles():
    """assistant⇄batching, panel⇄scan_panel, benchmarks data⇄runner and cli⇄cli_survey were circles."""
    graph = _import_graph()
    pairs = sorted(f"{a} ⇄ {b}" for a in graph for b in graph[a] if a < b and a in graph.get(b, set()))
    assert pairs == []
