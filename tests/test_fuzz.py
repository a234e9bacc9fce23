"""Fuzzing the parsers (Hypothesis): any input gives a result or a RadioLlavaError, never another
exception: box text, sizes, sky centres, region files and transcript JSON."""

from __future__ import annotations

import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from glue_radiollava.core.errors import RadioLlavaError  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
BOXISH = st.lists(st.one_of(st.sampled_from(["[", "]", "(", ")", ",", " ", "-", ".", "e", "nan", "inf"]),
                            NUMBER.map(str)), max_size=30).map("".join)


def _either(call):
    try:
        return call()
    except RadioLlavaError:
        return None


@FAST
@given(text=st.one_of(st.text(max_size=200), BOXISH), convention=st.sampled_from(["yolo", "qwen", "pixels"]))
def test_box_text(text, convention):
    from glue_radiollava.core.parsing import parse_boxes

    parsed = _either(lambda: parse_boxes(text, convention, picture_size=(64, 64)))
    if parsed is not None and parsed.parsed:
        for box in parsed.boxes:              # what parses unflagged is finite (a flagged box says why)
            assert box.problem or all(v == v and abs(v) != float("inf") for v in box.to_yolo())


@FAST
@given(text=st.one_of(st.text(max_size=40), st.tuples(NUMBER, st.sampled_from(["deg", "arcmin", "arcsec", "'",
                                                                               '"', "px", ""])).map(
    lambda t: f"{t[0]}{t[1]}")))
def test_sizes(text):
    from glue_radiollava.core.image import parse_size

    _either(lambda: parse_size(text))


@FAST
@given(text=st.one_of(st.text(max_size=40), st.tuples(NUMBER, NUMBER).map(lambda t: f"{t[0]} {t[1]}")))
def test_centres(text):
    from glue_radiollava.core.image import parse_center

    _either(lambda: parse_center(text))


REGION_LINES = st.sampled_from([
    "# Region file format: DS9", "fk5", "icrs", "image", "global coord=J2000", "#CRTFv0",
    "box(205.0,55.0,20\",20\",0)", "circle(10,10,5)", "point(205,55)", "text(1,1,{hi})",
    "box[[205deg, 55deg], [20arcsec, 20arcsec], 0deg]", "polygon(1,1,2,2,3,1)", "ellipse(5,5,2,1,30)",
    "box(nan,1,2,3,0)", "circle(1e308,1e308,1e308)", "garbage ((", ""])


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    import numpy as np
    from astropy.io import fits
    from astropy.wcs import WCS

    from glue_radiollava.core.image import RadioImage

    header = WCS({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 50.5, "CRPIX2": 50.5, "CRVAL1": 205.0,
                  "CRVAL2": 55.0, "CDELT1": -1.5 / 3600, "CDELT2": 1.5 / 3600}).to_header()
    path = tmp_path_factory.mktemp("img") / "img.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(100, 100)).astype(np.float32), header).writeto(path)
    return RadioImage.open(path)


@FAST
@given(lines=st.lists(st.one_of(REGION_LINES, st.text(max_size=30)), max_size=6),
       suffix=st.sampled_from([".reg", ".crtf"]))
def test_region_files(lines, suffix, image, tmp_path_factory):
    path = tmp_path_factory.mktemp("reg") / f"r{suffix}"
    path.write_text("\n".join(lines) + "\n")
    _either(lambda: image.cutout_region(path))


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), NUMBER, st.text(max_size=10)),
                       lambda kids: st.one_of(st.lists(kids, max_size=4),
                                              st.dictionaries(st.text(max_size=12), kids, max_size=5)),
                       max_leaves=20)
BOX = st.fixed_dictionaries({"label": st.one_of(st.none(), st.text(max_size=8)),
                             "picture_box": st.lists(NUMBER, min_size=0, max_size=5),
                             "pixel_box": st.lists(NUMBER, min_size=0, max_size=5),
                             "ra": NUMBER, "dec": NUMBER, "width_arcsec": NUMBER, "height_arcsec": NUMBER})


@FAST
@given(version=st.one_of(st.integers(-2, 3), st.text(max_size=3), st.none()),
       entries=st.one_of(JSONISH, st.lists(st.fixed_dictionaries({"question": st.text(max_size=10),
                                                                  "boxes": st.one_of(st.lists(BOX, max_size=3),
                                                                                     JSONISH)}), max_size=3)))
def test_transcripts(version, entries, tmp_path_factory):
    from glue_radiollava.core.transcript import load_transcript

    path = tmp_path_factory.mktemp("t") / "t.json"
    path.write_text(json.dumps({"format": "radiollava-transcript", "version": version, "entries": entries}))
    loaded = _either(lambda: load_transcript(path))
    if loaded is not None:
        for entry in loaded[1]:
            for box in entry["boxes"]:
                assert -90 <= box.dec <= 90 and box.width_arcsec > 0
