"""Transform round trips, the preprocessing profiles, and boxes → sky on real LoTSS sources."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage, parse_size
from glue_radiollava.core.parsing import format_yolo_boxes, parse_boxes
from glue_radiollava.core.profiles import (Profile, get_profile, load_profile, render, render_array,
                                           save_profile)
from glue_radiollava.core.skyregions import map_boxes
from glue_radiollava.core.transform import Transform


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("size", [None, 64, 100])
def test_round_trip_within_1e6_px(synthetic_fits, flip, size):
    image = RadioImage.open(synthetic_fits())
    cut = image.cutout_pixels(-7, 150, 53, 190)           # 60×40, partly off the image
    profile = get_profile("radio-llava").with_options(north_up=flip, size=size)
    t = render(cut, profile).transform
    rng = np.random.default_rng(0)
    p, q = rng.uniform(-3, 70, 200), rng.uniform(-3, 70, 200)
    X, Y = t.picture_to_mosaic(p, q)
    assert np.abs(np.subtract(t.mosaic_to_picture(X, Y), (p, q))).max() < 1e-6
    x, y = t.picture_to_cutout(p, q)
    assert np.abs(np.subtract(t.cutout_to_picture(x, y), (p, q))).max() < 1e-6
    assert np.abs(np.subtract(t.sky_to_picture(t.picture_to_sky(p, q)), (p, q))).max() < 1e-6
    box = t.box_to_mosaic(0.1, 0.2, 0.4, 0.9)
    assert np.allclose(t.mosaic_box_to_normalised(*box), (0.1, 0.2, 0.4, 0.9), atol=1e-9)


def test_transform_picture_edges_are_cutout_edges():
    t = Transform(60, 40, 100, 100, x0=10, y0=20, scale_x=100 / 60, scale_y=100 / 60, pad_x=0,
                  pad_y=(100 - 40 * 100 / 60) / 2, flip_y=True)
    # the whole content area of the picture maps to the cutout's outer pixel edges
    top = t.pad_y / t.picture_height
    X0, Y0, X1, Y1 = t.box_to_mosaic(0.0, top, 1.0, 1 - top)
    assert np.allclose((X0, Y0, X1, Y1), (10 - 0.5, 20 - 0.5, 10 + 59.5, 20 + 39.5))
    # north up: the picture's top row is the cutout's last row
    assert np.isclose(t.picture_to_cutout(0, t.pad_y - 0.5 + 0.5 * t.scale_y)[1], 39)


def test_radio_llava_profile_is_the_reference_rendering():
    data = np.zeros((4, 6), np.float32)
    data[0, 0] = 10.0          # FITS row 0 = picture top (north down)
    data[3, 5] = np.nan        # NaN → 0, i.e. background grey after min/max
    data[1, 2] = -10.0
    rgb, t = render_array(data, "radio-llava")
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb[0, 0, 0] == 255 and rgb[1, 2, 0] == 0
    assert rgb[3, 5, 0] == rgb[2, 2, 0] == 127                # int(127.5): truncation, not rounding
    assert not t.flip_y


def test_sky_view_profile_is_north_up_and_blanks_black():
    data = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    data[0, 0], data[7, 7] = 50.0, np.nan
    rgb, t = render_array(data, "sky-view")
    assert t.flip_y and rgb[7, 0, 0] == 255                   # FITS row 0 at the bottom
    assert rgb[0, 7, 0] == 0


def test_zscale_and_resize_onto_padded_square():
    data = np.random.default_rng(0).normal(size=(30, 60)).astype(np.float32)
    data[10, 10] = 1000.0
    rgb_mm, _ = render_array(data, "radio-llava")
    rgb_z, _ = render_array(data, "radio-llava-zscale")
    assert rgb_z[..., 0].std() > 2 * rgb_mm[..., 0].std()    # zscale lifts the noise out of black
    rgb, t = render_array(data, get_profile("radio-llava").with_options(size=90))
    assert rgb.shape == (90, 90, 3) and (t.pad_x, t.pad_y) == (0, 22)
    assert (rgb[:22] == rgb[0, 0]).all() and (rgb[-23:] == rgb[-1, -1]).all()   # padded rows


def test_profile_saved_beside_the_model(tmp_path):
    prof = get_profile("radio-llava").with_options(size=224, stretch="zscale")
    save_profile(prof, tmp_path)
    assert load_profile(tmp_path) == prof
    assert load_profile(tmp_path / "nowhere").name == "radio-llava"
    (tmp_path / "preprocessing.json").write_text(json.dumps({"name": "x", "colour": "red"}))
    with pytest.raises(RadioLlavaError, match="unknown keys"):
        load_profile(tmp_path)
    with pytest.raises(RadioLlavaError, match="unknown preprocessing profile"):
        get_profile("nope")
    assert Profile.from_dict(prof.to_dict()) == prof


def _lotss_sources(data_dir, mosaic="P205+55"):
    with open(data_dir / "lotss_dr1/lotss_dr1_sources_near_cutouts.csv") as f:
        return [r for r in csv.DictReader(f) if r["Mosaic_ID"] == mosaic]


@pytest.mark.parametrize("profile", ["radio-llava", "sky-view", "radio-llava@224"])
def test_box_on_lotss_source_maps_to_its_sky_position(data_dir, profile):
    """A model-convention box centred on a catalogued source lands on the source within 1 pixel."""
    name, _, size = profile.partition("@")
    prof = get_profile(name).with_options(size=int(size) if size else None)
    image = RadioImage.open(data_dir / "lotss_dr1/P205+55-mosaic.fits")
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    checked = 0
    for src in _lotss_sources(data_dir):
        coord = SkyCoord(float(src["RA"]), float(src["DEC"]), unit="deg")
        X, Y = image.wcs.world_to_pixel(coord)
        if not (40 < X < 360 and 40 < Y < 360):
            continue
        offset = image.wcs.pixel_to_world(X + 7, Y - 5)      # the region is not centred on it
        view = render(image.cutout_sky(offset, parse_size("90arcsec")), prof)
        u0, v0, u1, v1 = view.transform.mosaic_box_to_normalised(X - 4, Y - 4, X + 4, Y + 4)
        text = format_yolo_boxes([[(u0 + u1) / 2, (v0 + v1) / 2, u1 - u0, v1 - v0]])  # 2 decimals
        parsed = parse_boxes(text)
        (box,), warnings = map_boxes(parsed.boxes, view.transform)
        assert not warnings
        centre = SkyCoord(box.ra * u.deg, box.dec * u.deg, frame=box.frame)
        assert centre.separation(coord).arcsec < 1.5, (src["Source_Name"], text)
        checked += 1
    assert checked >= 5


def test_wcs_calls_live_only_in_the_geometry_modules():
    """The design's key rule: only the geometry modules ask a WCS; everything else goes through
    ``core.transform`` (pixel_to_sky, sky_to_pixel, radec_to_pixel, Transform) and ``skyregions``."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    allowed = {"glue_radiollava/core/transform.py", "glue_radiollava/core/skyregions.py"}
    pattern = re.compile(r"\b(?:all_|wcs_)?(?:pixel_to_world|world_to_pixel)(?:_values)?\b|"
                         r"\b(?:all|wcs)_(?:pix2world|world2pix)\b|angular_separation")
    offenders = []
    for folder in ("glue_radiollava", "training", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in allowed:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
