"""One reader for the labelled-data files: the dataset builder (training) and the benchmarks read
the same records, with the same image paths, from the same reference JSON or objects.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import data as bdata
from glue_radiollava.core.labels import canonical_label
from training import readers


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    from training.simulate import config_for, write_simulation

    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, 4, seed=3, cfg=config_for(size=64), progress=False, overwrite=True)
    return folder


def test_a_simulator_folder_gives_the_same_images_and_boxes_to_both(sim_folder):
    recs = [r for r in readers.read_sim(sim_folder) if isinstance(r, readers.Record)]
    (ds,) = bdata.load(str(sim_folder / "objects.json"), ["B7"])
    assert [r.id for r in recs] == [s.id for s in ds.samples]
    assert [str(r.image) for r in recs] == [s.path for s in ds.samples]
    for rec, sample in zip(recs, ds.samples):
        mine = sorted((c, tuple(s.box)) for s in rec.sources for c in s.classes)
        theirs = sorted((b.label, tuple(b.box)) for b in sample.boxes)
        assert mine == theirs


def test_a_reference_json_points_to_the_same_images_for_both(sim_folder, tmp_path, monkeypatch):
    """Paths beside the JSON, and paths from the working folder (the reference JSONs' habit)."""
    images = sorted((sim_folder / "images").glob("*.fits"))[:3]
    listing = tmp_path / "listing"
    listing.mkdir()
    beside = listing / "beside.fits"
    beside.write_bytes(images[0].read_bytes())
    monkeypatch.chdir(sim_folder)                       # "images/..." exists from here, not beside
    doc = {"data": [{"sname": "a", "filepaths": ["beside.fits"], "label": ["EXTENDED"]},
                    {"sname": "b", "filepaths": [f"images/{images[1].name}"], "label": ["diffuse_large"]},
                    {"sname": "c", "filepaths": [str(images[2])], "label": ["COMPACT"]}]}
    ref = listing / "labels.json"
    ref.write_text(json.dumps(doc))
    recs = [r for r in readers.read_labels(ref) if isinstance(r, readers.Record)]
    (ds,) = bdata.load(str(ref), ["B1"])
    expected = [beside, (sim_folder / "images" / images[1].name).resolve(), images[2]]
    assert [Path(r.image) for r in recs] == expected == [Path(s.path) for s in ds.samples]
    assert recs[1].labels == ("DIFFUSE-LARGE",) and ds.samples[1].truth == ("DIFFUSE-LARGE",)
    assert os.path.samefile(ds.samples[0].path, beside)


@pytest.mark.parametrize("written, canonical", [
    ("FRI", "FR-I"), ("fr2", "FR-II"), ("Fr-1", "FR-I"), ("artefact", "ARTIFACT"), ("Radio Galaxy", "RADIO-GALAXY"),
    ("diffuse_large", "DIFFUSE-LARGE"), ("DiffuseLarge", "DIFFUSE-LARGE"), ("1c2p", "1C-2P"), ("2C-3P", "2C-3P"),
    ("extended multisland", "EXTENDED-MULTISLAND"), ("COMPACT", "COMPACT")])
def test_one_canonical_spelling_of_a_label(written, canonical):
    assert canonical_label(written) == canonical
