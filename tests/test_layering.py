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
    with pytest.raises(RadioLlavaError, match="B7 asks every box task"):
        get_task("B7")
