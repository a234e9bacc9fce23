"""Find more like this (core/similar.py, `radiollava similar`): the tile index, its cache, text search."""

from __future__ import annotations

import os

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core import similar
from glue_radiollava.core.similar import build_index, search_text, similar_to


@pytest.fixture(scope="module")
def nano():
    from glue_radiollava.core.assistant import Assistant

    return Assistant("nano")


def _holds(tile, o, margin=8):
    X0, Y0, X1, Y1 = o["pixel_box"]
    return X0 >= tile.x0 - margin and Y0 >= tile.y0 - margin and X1 <= tile.x1 + margin and Y1 <= tile.y1 + margin


def _near(tile, o, margin=16):
    return tile.x0 - margin < o["x"] < tile.x1 + margin and tile.y0 - margin < o["y"] < tile.y1 + margin


@pytest.mark.parametrize("cls", ["EXTENDED", "COMPACT"])
def test_tiles_with_the_same_source_type_rank_above_blank_sky(sim_mosaic, nano, tmp_path, cls):
    path, truth = sim_mosaic
    image = RadioImage.open(path)
    index = build_index(image, nano, 64, 0.5, cache_dir=tmp_path)
    query = max((o for o in truth if o["class"] == cls), key=lambda o: o["peak_snr"])
    x, y = int(query["x"]), int(query["y"])
    cutout = image.cutout_pixels(x - 32, y - 32, x + 32, y + 32)
    ranked = similar_to(index, nano, cutout, top=len(index.tiles))
    by_box = {(t.x0 - 0.5, t.y0 - 0.5): t for t in index.tiles}
    order = [by_box[(b.pixel_box[0], b.pixel_box[1])] for b in ranked]
    assert [b.score for b in ranked] == sorted((b.score for b in ranked), reverse=True)
    qx0, qy0 = x - 32, y - 32                                    # the query itself is left out: no tile
    overlap = [max(0, min(t.x1, qx0 + 64) - max(t.x0, qx0)) * max(0, min(t.y1, qy0 + 64) - max(t.y0, qy0))
               / (64 * 64) for t in order]                       # covered more than half by it is ranked
    assert max(overlap) <= 0.5
    same = [r for r, t in enumerate(order) if any(o["class"] == cls and o is not query and _holds(t, o) for o in truth)]
    blank = [r for r, t in enumerate(order) if not any(_near(t, o) for o in truth)]
    assert same and len(blank) > 20
    assert np.median(same) < np.median(blank)                   # same type ranks above blank sky …
    assert np.mean([min(same) < r for r in blank]) > 0.9         # … its best tile above 90 % of blank tiles


def test_index_is_cached_and_rebuilt_when_the_image_or_model_changes(sim_mosaic, nano, tiny_loaded, tmp_path,
                                                                     monkeypatch):
    import shutil

    from glue_radiollava.core.assistant import Assistant

    src, _ = sim_mosaic
    path = tmp_path / "mosaic.fits"
    shutil.copy(src, path)
    calls = []
    real = similar.embed_cutouts
    monkeypatch.setattr(similar, "embed_cutouts", lambda a, cuts, batch_size=32: calls.append(len(cuts)) or
                        real(a, cuts, batch_size))
    cache = tmp_path / "cache"
    first = build_index(RadioImage.open(path), nano, 128, 0.25, cache_dir=cache)
    n = sum(calls)
    assert not first.from_cache and n == len(first.tiles) and first.path.exists()

    again = build_index(RadioImage.open(path), nano, 128, 0.25, cache_dir=cache)
    assert again.from_cache and sum(calls) == n and np.array_equal(again.vectors, first.vectors)

    st = path.stat()                                  # the mosaic changed on disk: rebuilt
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = build_index(RadioImage.open(path), nano, 128, 0.25, cache_dir=cache)
    assert not changed.from_cache and changed.path != first.path and sum(calls) == 2 * n

    other = build_index(RadioImage.open(path), Assistant(tiny_loaded), 128, 0.25, cache_dir=cache)
    assert not other.from_cache and other.path not in (first.path, changed.path)   # another model

    first.path.write_bytes(b"damaged")                # a damaged cache file is rebuilt, not trusted
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not build_index(RadioImage.open(path), nano, 128, 0.25, cache_dir=cache).from_cache


def test_text_search_ranks_by_the_probability_of_yes(sim_mosaic, tiny_loaded):
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.scan import plan_tiles, read_tile

    path, _ = sim_mosaic
    image = RadioImage.open(path)
    assistant = Assistant(tiny_loaded)
    found = search_text(image, assistant, "an extended radio galaxy with bent jets", tile=128, top=5)
    assert len(found) == 5 and all(0 <= b.score <= 1 for b in found) and found[0].label == "text"
    assert [b.score for b in found] == sorted((b.score for b in found), reverse=True)
    tiles = {(t.x0 - 0.5, t.y0 - 0.5): t for t in plan_tiles(image.shape, 128, 0.25)}
    best = tiles[(found[0].pixel_box[0], found[0].pixel_box[1])]
    view = assistant.view(read_tile(image, best))
    single = assistant.score(view, ["Yes", "No"],
                             question="Does this image contain an extended radio galaxy with bent jets? Answer Yes or No.")
    assert single.probs[0] == pytest.approx(found[0].score, abs=1e-4)
    with pytest.raises(RadioLlavaError, match="give a description"):
        search_text(image, assistant, "  ?")


def test_similar_command_writes_regions_and_tables(sim_mosaic, tiny_model_dir, tmp_path, capsys):
    from astropy.table import Table
    from regions import Regions

    from glue_radiollava.cli import main

    path, truth = sim_mosaic
    o = truth[0]
    base = ["similar", str(path), "--model", str(tiny_model_dir), "--tile", "64", "--top", "4",
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(base + ["--center", f"{o['ra']} {o['dec']}", "--size", "90arcsec", "--out", str(tmp_path / "m.reg")]) == 0
    assert "(built)" in capsys.readouterr().out
    assert len(Regions.read(tmp_path / "m.reg", format="ds9")) == 4
    assert main(base + ["--box", "100", "100", "164", "164", "--out", str(tmp_path / "m.ecsv")]) == 0
    assert "(cached)" in capsys.readouterr().out
    table = Table.read(tmp_path / "m.ecsv")
    assert list(table["rank"]) == [1, 2, 3, 4] and list(table["class"]) == ["similar"] * 4
    assert main(base + ["--text", "a bright compact source", "--out", str(tmp_path / "t.ecsv")]) == 0
    assert list(Table.read(tmp_path / "t.ecsv")["class"]) == ["text"] * 4


@pytest.mark.parametrize("extra, message", [
    (["--center", "10 10", "--out", "x.reg"], "--center needs --size"),
    (["--text", "x", "--out", "x.txt"], "--out x.txt: use regions"),
    (["--text", "x", "--tile", "9999", "--out", "x.reg"], "tile size 9999 px is larger than the image"),
    (["--center", "10 10", "--size", "1arcmin", "--out", "x.reg"], "lies outside"),
])
def test_similar_bad_input_is_one_line(sim_mosaic, tiny_model_dir, tmp_path, capsys, extra, message):
    from glue_radiollava.cli import main

    code = main(["similar", str(sim_mosaic[0]), "--model", str(tiny_model_dir), "--cache-dir", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
