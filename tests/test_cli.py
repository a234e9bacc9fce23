"""The `radiollava` command: ask / regions / tasks / model tiny, JSON output and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from regions import Regions

from glue_radiollava.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_tasks_lists_the_catalogue(capsys):
    code, out, _ = run(capsys, "tasks")
    assert code == 0 and "b2-source-morphology" in out and "1C-2P" in out
    code, out, _ = run(capsys, "tasks", "--json")
    names = [t["name"] for t in json.loads(out)]
    assert names[:7] == ["describe"] + [n for n in names if n.startswith("b")][:6]


def test_ask_json_with_the_tiny_model(capsys, tiny_model_dir, data_dir, tmp_path):
    code, out, err = run(capsys, "ask", data_dir / "lotss_dr1/P205+55-mosaic.fits", "--center", "205.05 54.9",
                         "--size", "2arcmin", "--task", "boxes-compact", "--model", tiny_model_dir,
                         "--max-new-tokens", "12", "--json", "--regions-out", tmp_path / "r.reg")
    assert code == 0, err
    d = json.loads(out)
    assert {"question", "task", "answer", "labels", "boxes", "model", "preprocessing", "timings",
            "warnings"} <= set(d)
    assert d["task"] == "boxes-compact" and d["model"]["family"] == "llava_onevision"
    assert len(d["model"]["sha256"]) == 64 and d["preprocessing"]["profile"] == "radio-llava"
    assert {"load_s", "render_s", "generate_s", "new_tokens"} <= set(d["timings"])
    assert d["region"]["ra"] == pytest.approx(205.05, abs=0.01)
    assert (tmp_path / "r.reg").exists()                # written even with no boxes


def test_regions_command_maps_boxes_to_the_sky(capsys, data_dir, tmp_path):
    image = data_dir / "lotss_dr1/P205+55-mosaic.fits"
    code, out, err = run(capsys, "regions", image, "--box", 100, 100, 180, 180, "--boxes",
                         "[0.5, 0.5, 0.25, 0.25], [0.1, 0.2, 0.05, nan]", "--label", "EXTENDED",
                         "--out", tmp_path / "b.crtf", "--json")
    assert code == 0, err
    d = json.loads(out)
    (box,) = d["boxes"]
    assert box["pixel_box"] == pytest.approx([129.5, 129.5, 149.5, 149.5])
    assert box["width_arcsec"] == pytest.approx(30, rel=1e-3) and "NaN" in d["warnings"][0]
    from glue_radiollava.core.image import RadioImage

    wcs = RadioImage.open(image).wcs
    centre = Regions.read(tmp_path / "b.crtf")[0].to_pixel(wcs).center
    assert (centre.x, centre.y) == pytest.approx((139.5, 139.5), abs=0.01)


def test_model_tiny_builds_a_loadable_model(capsys, tmp_path):
    code, out, _ = run(capsys, "model", "tiny", tmp_path / "m")
    assert code == 0 and (tmp_path / "m" / "config.json").exists()


@pytest.mark.parametrize("args, message", [
    (["ask", "{fits}", "--center", "205.05 54.9", "--size", "2arcmin"], "give --task NAME or --question"),
    (["ask", "{fits}", "--center", "205.05 54.9", "--size", "2", "--task", "describe"], "has no unit"),
    (["ask", "{fits}", "--center", "205.05 54.9", "--task", "describe"], "--center needs --size"),
    (["ask", "{fits}", "--box", "0", "0", "0", "10", "--task", "nope"], "unknown task 'nope'"),
    (["ask", "{fits}", "--box", "900", "900", "990", "990", "--task", "describe", "--model", "{model}"], "outside"),
    (["ask", "{txt}", "--box", "0", "0", "10", "10", "--task", "describe"], "not a readable FITS"),
    (["ask", "{fits}", "--box", "0", "0", "10", "10", "--task", "describe", "--model", "{tmp}"], "no config.json"),
    (["regions", "{fits}", "--box", "0", "0", "10", "10", "--boxes", "hello"], "--boxes"),
])
def test_bad_input_is_one_line_and_exit_1(capsys, tmp_path, data_dir, tiny_model_dir, args, message):
    (tmp_path / "a.txt").write_text("hello\n" * 200)
    fill = {"fits": data_dir / "lotss_dr1/P205+55-mosaic.fits", "txt": tmp_path / "a.txt",
            "tmp": tmp_path, "model": tiny_model_dir}
    code, out, err = run(capsys, *[a.format(**{k: str(v) for k, v in fill.items()}) for a in args])
    assert code == 1 and message in err
    assert err.count("\n") == 1 and err.startswith("radiollava: error: ")


def test_no_traceback_from_the_installed_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "glue_radiollava.cli", "ask", str(tmp_path / "none.fits"),
                             "--box", "0", "0", "5", "5", "--task", "describe"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "no such file" in result.stderr
