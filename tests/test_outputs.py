"""Outputs never replace a file unasked, never an input, and two outputs never share a path; the
check comes before any model loads. Replaced files keep their mode; links are written through."""

from __future__ import annotations

import os

import pytest

from glue_radiollava.cli import main

BOXES = "[0.5, 0.5, 0.2, 0.2]"


@pytest.fixture()
def mosaic(synthetic_fits):
    return synthetic_fits()


def _regions(mosaic, *extra):
    return ["regions", str(mosaic), "--box", "50", "50", "150", "150", "--boxes", BOXES, *extra]


@pytest.mark.parametrize("case, argv, word", [
    ("output is the input", lambda m, t: _regions(m, "--out", str(m)), "input"),
    ("output is the input, even with --overwrite", lambda m, t: _regions(m, "--out", str(m), "--overwrite"),
     "input"),
    ("existing region file", lambda m, t: _regions(m, "--out", str(t / "old.reg")), "--overwrite"),
    ("two outputs on one path", lambda m, t: _regions(m, "--out", str(t / "new.ecsv"), "--catalogue-out",
                                                      str(t / "new.ecsv")), "same file"),
    ("ask: existing catalogue, refused before the model loads",
     lambda m, t: ["ask", str(m), "--box", "50", "50", "150", "150", "--task", "boxes-compact", "--model",
                   str(t / "no-such-model"), "--catalogue-out", str(t / "old.reg")], "--overwrite"),
    ("scan: output is the input", lambda m, t: ["scan", str(m), "--task", "boxes-compact", "--model",
                                                str(t / "no-such-model"), "--out", str(m)], "input"),
    ("similar: existing output", lambda m, t: ["similar", str(m), "--box", "0", "0", "64", "64", "--model",
                                               str(t / "no-such-model"), "--out", str(t / "old.reg")], "--overwrite"),
    ("missing folder", lambda m, t: _regions(m, "--out", str(t / "nowhere" / "x.reg")), "does not exist"),
])
def test_outputs_are_refused_and_nothing_changes(case, argv, word, mosaic, tmp_path, capsys):
    (tmp_path / "old.reg").write_text("# region file of a person\n")
    before = {p: p.read_bytes() for p in (mosaic, tmp_path / "old.reg")}
    names = sorted(os.listdir(tmp_path))
    assert main(argv(mosaic, tmp_path)) == 1, case
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in before} == before            # byte-identical afterwards
    assert sorted(os.listdir(tmp_path)) == names                    # nothing new written


def test_overwrite_replaces_keeping_mode_and_link(mosaic, tmp_path, capsys):
    target = tmp_path / "kept.reg"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.reg"
    link.symlink_to(target)
    assert main(_regions(mosaic, "--out", str(link), "--overwrite")) == 0
    assert link.is_symlink() and "box" in target.read_text()       # written through the link
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    fresh = tmp_path / "fresh.ecsv"
    assert main(_regions(mosaic, "--catalogue-out", str(fresh))) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask           # not mkstemp's 0600


def test_galactic_images_print_l_and_b(synthetic_fits, capsys):
    image = synthetic_fits(ctype=("GLON-TAN", "GLAT-TAN"), crval=(120.0, 3.0))
    assert main(_regions(image)) == 0
    out = capsys.readouterr().out
    assert out.startswith("box: l 1") and " b +" in out and "RA" not in out


def test_a_cube_says_which_plane_it_uses(tmp_path, capsys):
    import json

    import numpy as np
    from astropy.io import fits

    cube = np.random.default_rng(0).normal(size=(5, 64, 64)).astype(np.float32)
    cube[3, 30:34, 30:34] += 50
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "FREQ", "CRVAL1": 205.0,
                          "CRVAL2": 55.0, "CRVAL3": 1.4e9, "CRPIX1": 32.5, "CRPIX2": 32.5, "CRPIX3": 1,
                          "CDELT1": -4e-4, "CDELT2": 4e-4, "CDELT3": 1e6})
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube, header).writeto(path)
    argv = ["regions", str(path), "--box", "0", "0", "64", "64", "--boxes", BOXES, "--json"]
    assert main(argv) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("5 planes" in w and "plane 0" in w and "--plane" in w for w in warnings)
    assert main(argv + ["--plane", "3"]) == 0
    assert any("using plane 3" in w for w in json.loads(capsys.readouterr().out)["warnings"])
    from glue_radiollava.core.image import RadioImage

    assert RadioImage.open(path, plane=3).cutout_pixels(0, 0, 64, 64).data.max() > 40   # that plane's pixels
    assert main(argv + ["--plane", "7"]) == 1 and "give 0 to 4" in capsys.readouterr().err


@pytest.mark.parametrize("lines, outcome", [
    (["fk5", "point(205.0,55.0)", "# text(205.0,55.0) text={hi}"], "no area"),
    (["this is not", "a region file"], "2 lines could not be read"),
    (["fk5", "point(205.0,55.0)", "box(205.0,55.0,60\",60\",0)", "circle(205.0,55.0,20\")"],
     "using the first with an area"),
])
def test_region_files_say_what_was_read(lines, outcome, mosaic, tmp_path, capsys):
    import json

    reg = tmp_path / "r.reg"
    reg.write_text("# Region file format: DS9\n" + "\n".join(lines) + "\n")
    code = main(["regions", str(mosaic), "--region", str(reg), "--boxes", BOXES, "--json"])
    captured = capsys.readouterr()
    if code == 0:
        assert any(outcome in w for w in json.loads(captured.out)["warnings"])
    else:
        assert outcome in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err


def test_a_crtf_without_coord_is_read_in_the_images_frame(mosaic, tmp_path, capsys):
    """regions would read a CRTF without ``coord=`` as pixels; CASA reads it in the image's frame."""
    import json

    shape = "box[[205.01deg, 54.99deg], [204.99deg, 55.01deg]]\n"
    (tmp_path / "bare.crtf").write_text("#CRTFv0\n" + shape)
    (tmp_path / "full.crtf").write_text("#CRTFv0 CASA Region Text Format version 0\nglobal coord=ICRS\n" + shape)
    docs = []
    for name in ("bare.crtf", "full.crtf"):                      # the test image is ICRS
        assert main(["regions", str(mosaic), "--region", str(tmp_path / name), "--boxes", BOXES, "--json"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[0]["boxes"][0]["pixel_box"] == docs[1]["boxes"][0]["pixel_box"]
    assert any("names no coord=" in w and "(ICRS)" in w for w in docs[0]["warnings"])
    assert not any("coord=" in w for w in docs[1]["warnings"])


@pytest.mark.parametrize("suffix", [".reg", ".crtf"])
def test_no_boxes_still_give_a_valid_region_file(suffix, mosaic, tmp_path, capsys):
    from regions import Regions

    out = tmp_path / f"none{suffix}"
    assert main(["regions", str(mosaic), "--box", "0", "0", "64", "64", "--boxes", "none", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.strip() and ("DS9" in text or "CRTF" in text)            # a header, not 0 bytes
    assert len(Regions.read(str(out), format="ds9" if suffix == ".reg" else "crtf")) == 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_an_empty_scan_catalogue_keeps_its_column_types(mosaic, tmp_path):
    from astropy.table import Table

    from glue_radiollava.core.scan import ScanResult, write_outputs
    from glue_radiollava.core.image import RadioImage

    image = RadioImage.open(mosaic)
    empty = ScanResult([], 0, 4, 4, 0, 0.1, True)
    out, = write_outputs(empty, tmp_path / "scan.ecsv", None, image.wcs)
    table = Table.read(out)
    assert len(table) == 0
    assert table["task"].dtype.kind == "U" and table["tile"].dtype.kind == "i"
    assert table["cut_by_tile"].dtype.kind == "b" and table["class"].dtype.kind == "U"


@pytest.mark.parametrize("umask, mode", [("022", 0o644), ("077", 0o600)])
def test_new_files_get_the_modes_a_plain_open_gives(umask, mode, mosaic, tmp_path):
    """Under the user's umask (set before the program starts, as a shell does), not mkstemp's 0600."""
    import subprocess
    import sys

    code = ("import sys; from glue_radiollava.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = _regions(mosaic, "--out", str(tmp_path / "b.reg"), "--catalogue-out", str(tmp_path / "b.ecsv"))
    done = subprocess.run(["sh", "-c", f'umask {umask} && exec "$0" "$@"', sys.executable, "-c", code, *argv],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("b.reg", "b.ecsv"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == oct(mode)


def test_jsonl_files_survive_a_torn_last_line_and_name_a_damaged_one(tmp_path):
    """The one reader/appender of scan journals and benchmark predictions."""
    from glue_radiollava.core.errors import RadioLlavaError
    from glue_radiollava.core.files import JsonlAppender, read_jsonl

    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as f:
        f.write({"n": 1}, {"n": 2})
    path.write_text(path.read_text() + '{"n": 3, "cut sho')          # a crash mid-line
    assert read_jsonl(path) == [{"n": 1}, {"n": 2}]                    # the torn record is redone
    with JsonlAppender(path) as f:
        f.write({"n": 3})
    assert read_jsonl(path) == [{"n": 1}, {"n": 2}, {"n": 3}] and path.read_text().endswith("}\n")
    path.write_text('{"n": 1}\nnot json\n{"n": 3}\n')
    with pytest.raises(RadioLlavaError, match="line 2 is not JSON"):
        read_jsonl(path)
