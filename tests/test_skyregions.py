"""Sky regions and catalogues: DS9/CRTF/FITS regions and ECSV/CSV/FITS tables, written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from regions import Regions

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.parsing import parse_boxes
from glue_radiollava.core.profiles import render
from glue_radiollava.core.skyregions import SkyBox, map_boxes, write_catalogue, write_regions


@pytest.fixture()
def mapped(synthetic_fits):
    image = RadioImage.open(synthetic_fits())
    view = render(image.cutout_pixels(100, 60, 140, 100), "radio-llava")
    parsed = parse_boxes("[0.5, 0.5, 0.25, 0.5], [0.1, 0.1, 0.1, 0.1], [0.5, 1.7, 0.1, 0.1]", label="COMPACT")
    boxes, warnings = map_boxes(parsed.boxes, view.transform)
    return image, boxes, warnings


def test_boxes_map_to_pixels_and_sky(mapped):
    image, boxes, warnings = mapped
    assert len(boxes) == 2 and len(warnings) == 1 and "out of range" in warnings[0]
    b = boxes[0]
    # picture 40×40 px = cutout; centre 0.5 → cutout edge 20 → mosaic 100 + 19.5
    assert np.allclose(b.pixel_box, (100 + 15 - 0.5, 60 + 10 - 0.5, 100 + 25 - 0.5, 60 + 30 - 0.5))
    assert b.width_arcsec == pytest.approx(10 * 1.5, rel=1e-3)
    assert b.height_arcsec == pytest.approx(20 * 1.5, rel=1e-3)
    centre = image.wcs.pixel_to_world(119.5, 79.5)
    assert centre.ra.deg == pytest.approx(b.ra, abs=1e-9) and centre.dec.deg == pytest.approx(b.dec, abs=1e-9)
    assert SkyBox.from_dict(b.to_dict()).pixel_box == pytest.approx(b.pixel_box, abs=1e-4)


@pytest.mark.parametrize("suffix", [".reg", ".crtf", ".fits"])
def test_region_files_round_trip(tmp_path, mapped, suffix):
    image, boxes, _ = mapped
    path = write_regions(tmp_path / f"boxes{suffix}", boxes, image.wcs)
    back = Regions.read(path)
    assert len(back) == 2
    first = back[0].to_pixel(image.wcs) if hasattr(back[0], "to_pixel") else back[0]  # FITS: pixels
    assert first.center.x == pytest.approx(119.5, abs=0.01) and first.center.y == pytest.approx(79.5, abs=0.01)
    assert first.width == pytest.approx(10, abs=0.01) and first.height == pytest.approx(20, abs=0.01)
    if suffix == ".reg":
        text = path.read_text()
        assert "COMPACT #1 (radio-llava)" in text and "color=cyan" in text and "icrs" in text


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits"])
def test_catalogue_round_trip(tmp_path, mapped, suffix):
    _, boxes, _ = mapped
    table = Table.read(write_catalogue(tmp_path / f"cat{suffix}", boxes))
    assert len(table) == 2 and list(table["class"]) == ["COMPACT", "COMPACT"]
    assert table["ra"][0] == pytest.approx(boxes[0].ra) and table["width"][0] == pytest.approx(15, rel=1e-3)


def test_bad_outputs_leave_nothing_half_written(tmp_path, mapped):
    image, boxes, _ = mapped
    with pytest.raises(RadioLlavaError, match="unknown region format"):
        write_regions(tmp_path / "boxes.txt", boxes, image.wcs)
    with pytest.raises(RadioLlavaError, match="does not exist"):
        write_catalogue(tmp_path / "missing" / "cat.ecsv", boxes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth.fits"]
