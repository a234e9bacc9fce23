"""The README's Python code blocks run as written (each in a fresh folder, as a new user would)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _cli(*argv, cwd):
    from glue_radiollava.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        assert main(list(argv)) == 0
    finally:
        os.chdir(old)


def _block(word: str) -> str:
    found = [b for b in python_blocks() if word in b]
    assert len(found) == 1, f"one README Python block with {word!r}"
    return found[0]


def test_every_other_python_block_runs(tmp_path):
    others = [b for b in python_blocks() if "Assistant(" not in b and "train(" not in b]
    assert others
    for block in others:
        done = _run(block, tmp_path)
        assert done.returncode == 0, block + done.stderr[-2000:]


def test_the_flow_example_runs_and_writes_its_regions(tmp_path):
    done = _run(_block("Assistant("), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"^\d+ boxes:", out, flags=re.M), out
    assert (tmp_path / "boxes.reg").read_text().startswith("# Region file format: DS9")
    assert "'FR-I':" in out and "'FR-II':" in out


@pytest.mark.filterwarnings("ignore")
def test_the_training_example_runs_after_the_dataset_commands(tmp_path):
    """The README's own commands, smaller: simulate → dataset build → the Python block."""
    (tmp_path / "resources").symlink_to(ROOT / "resources")      # "from the repository's root"
    _cli("simulate", "--out", "sim", "--n", "6", "--scene", "mixed", "--seed", "1", cwd=tmp_path)
    (tmp_path / "data").mkdir()                                     # `mkdir -p data`
    _cli("dataset", "build", "--from", "sim", "sim", "--out", "data/sim.json", "--split", "0.5,0.5,0", cwd=tmp_path)
    done = _run(_block("train("), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any((tmp_path / "runs" / "lora2").rglob("adapter_config.json")), done.stdout[-2000:]
