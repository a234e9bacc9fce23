"""Bad values get one line naming the value (exit 1) before any model loads; nothing is written."""

from __future__ import annotations

import os

import pytest

from glue_radiollava.cli import main

ASK = ["ask", "{img}", "--box", "0", "0", "64", "64", "--task", "b3-radio-galaxy", "--model", "{nomodel}"]


def _ask(*extra, box=None):
    argv = list(ASK)
    if box:
        argv[3:7] = box
    return argv + list(extra)


CASES = [
    (_ask("--max-new-tokens", "0"), "--max-new-tokens 0"),
    (_ask("--max-new-tokens", "-1"), "--max-new-tokens -1"),
    (_ask("--device", "tpu9"), "--device tpu9"),
    (_ask(box=["nan", "0", "100", "100"]), "finite"),
    (_ask(box=["0", "0", "inf", "100"]), "finite"),
    (_ask("--temperature", "-1"), "--temperature"),
    (_ask("--temperature", "nan"), "--temperature"),
    (_ask("--temperature", "1e9"), "--temperature"),
    (["ask", "{img}", "--center", "205.0 55.0", "--size", "10deg", "--task", "b3-radio-galaxy", "--model",
      "{nomodel}"], "at most 8192 pixels"),
    (["regions", "{img}", "--box", "0", "0", "30000", "100", "--boxes", "[0.5, 0.5, 0.1, 0.1]"], "at most 8192"),
    (["scan", "{img}", "--task", "boxes-compact", "--model", "{nomodel}", "--batch-size", "0", "--out",
      "{tmp}/s.ecsv"], "--batch-size 0"),
    (["similar", "{img}", "--box", "0", "0", "64", "64", "--top", "0", "--model", "{nomodel}", "--out",
      "{tmp}/s.reg"], "--top 0"),
]


@pytest.mark.parametrize("argv, word", CASES, ids=[" ".join(c[0][-3:]) for c in CASES])
def test_bad_values_give_one_line(argv, word, synthetic_fits, tmp_path, capsys):
    image = synthetic_fits()
    names = sorted(os.listdir(tmp_path))
    filled = [a.format(img=image, nomodel=tmp_path / "no-such-model", tmp=tmp_path) for a in argv]
    assert main(filled) == 1
    err = capsys.readouterr().err
    assert word in err and "no-such-model" not in err, err           # refused before the model loads
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == names


@pytest.mark.parametrize("command", [
    ["ask", "{img}", "--box", "0", "0", "64", "64", "--task", "b3-radio-galaxy", "--model", "{nomodel}"],
    ["regions", "{img}", "--box", "0", "0", "64", "64", "--boxes", "[0.5, 0.5, 0.1, 0.1]"],
    ["scan", "{img}", "--task", "boxes-compact", "--model", "{nomodel}", "--out", "{tmp}/s.ecsv"],
], ids=["ask", "regions", "scan"])
def test_a_truncated_fits_is_named(command, synthetic_fits, tmp_path, capsys):
    image = synthetic_fits(shape=(300, 300))
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(image.read_bytes()[:5000])
    names = sorted(os.listdir(tmp_path))
    filled = [a.format(img=truncated, nomodel=tmp_path / "no-such-model", tmp=tmp_path) for a in command]
    assert main(filled) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and str(truncated) in err and len(err.strip().splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == names


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_weight_file_is_named(damage, tiny_model_dir, tmp_path, synthetic_fits, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 100)
    assert main(["ask", str(synthetic_fits()), "--box", "0", "0", "64", "64", "--task", "b3-radio-galaxy",
                 "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert "cannot load the model weights" in err and len(err.strip().splitlines()) == 1, err


def test_a_question_longer_than_the_context_is_refused(tiny_model_dir, synthetic_fits, capsys):
    question = "Is there a radio galaxy? " * 2000                       # ~14,000 tokens, the model holds 4096
    assert main(["ask", str(synthetic_fits()), "--box", "0", "0", "64", "64", "--question", question,
                 "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert "the model holds at most 4096" in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in: ``chattr +i`` for root (who ignores modes), else mode 0555."""
    import shutil
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode:
            pytest.skip("running as root without chattr +i: no folder here is read-only")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = None
    yield folder
    if undo:
        subprocess.run(undo, check=True)
    else:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", [
    ["regions", "{img}", "--box", "0", "0", "64", "64", "--boxes", "[0.5, 0.5, 0.1, 0.1]", "--out", "{ro}/b.reg"],
    ["ask", "{img}", "--box", "0", "0", "64", "64", "--task", "b3-radio-galaxy", "--model", "{nomodel}",
     "--regions-out", "{ro}/a.reg"],
    ["scan", "{img}", "--task", "boxes-compact", "--model", "{nomodel}", "--out", "{ro}/s.ecsv"],
], ids=["regions", "ask", "scan"])
def test_a_read_only_output_folder_is_refused_first(command, read_only_folder, synthetic_fits, tmp_path, capsys):
    image = synthetic_fits()
    filled = [a.format(img=image, nomodel=tmp_path / "no-such-model", ro=read_only_folder) for a in command]
    assert main(filled) == 1
    err = capsys.readouterr().err
    assert "is not writable" in err and "no-such-model" not in err, err        # before the model loads
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert os.listdir(read_only_folder) == []


def test_a_folder_turning_read_only_after_the_check_gives_one_error(read_only_folder):
    """The write itself (not only the check before the work) turns the OS's refusal into one line."""
    from glue_radiollava.core.errors import RadioLlavaError
    from glue_radiollava.core.files import atomic_write_text

    with pytest.raises(RadioLlavaError, match="cannot write in folder"):
        atomic_write_text(read_only_folder / "late.txt", "text")
    assert os.listdir(read_only_folder) == []
