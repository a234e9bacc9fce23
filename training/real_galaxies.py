"""Real FIRST and NVSS radio galaxies for training (``shared/data/train_real``: MiraBest, FRDEEP).

The folder's ``labels.csv`` becomes the reference label JSON the dataset builder reads (``--from
labels --scheme fr``). HYBRID sources are neither FR-I nor FR-II and are left out. Many galaxies
appear twice (FRDEEP's FIRST and NVSS images are the same objects; some are in MiraBest and FRDEEP),
so the validation split is drawn by sky position: files whose centres lie within ``GROUP_ARCMIN`` of
each other go to the same side.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

FOLDER = "train_real"
GROUP_ARCMIN = 2.0


def read_train_real(root: Path, limit: int | None = None, seed: int = 0) -> list[dict]:
    """Rows of ``root/labels.csv`` with an FR label, each with its file's sky centre (ra, dec)."""
    from astropy.io import fits

    path = root / "labels.csv"
    if not path.is_file():
        raise RadioLlavaError(f"{path} not found; the recipe's real galaxies live in shared/data/{FOLDER}")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("FR-I", "FR-II")]
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    out = []
    for row in sorted(rows, key=lambda r: r["file"]):
        file = root / row["file"]
        with fits.open(file) as hdul:
            header = next(h.header for h in hdul if h.data is not None)
        out.append({**row, "path": str(file), "sname": f"{row['survey'].lower()}-{Path(row['file']).stem}",
                    "ra": float(header["CRVAL1"]), "dec": float(header["CRVAL2"])})
    return out


def sky_groups(rows: list[dict], arcmin: float = GROUP_ARCMIN) -> list[int]:
    """A group number per row: rows closer than ``arcmin`` (directly or through others) share one."""
    import numpy as np
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    ra, dec = np.radians([r["ra"] for r in rows]), np.radians([r["dec"] for r in rows])
    xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], 1)
    pairs = cKDTree(xyz).query_pairs(2 * np.sin(np.radians(arcmin / 60) / 2), output_type="ndarray")
    from scipy.sparse import coo_matrix

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(rows), len(rows)))
    return connected_components(graph, directed=False)[1].tolist()


def zoomed_out(path: str, factor: float, seed: int, out: Path) -> Path:
    """The image set in a field ``factor`` times wider, filled with noise like its own (robust rms,
    correlated on the beam's scale): the galaxy as it looks in a wider cutout a person selects."""
    import numpy as np
    from astropy.io import fits
    from scipy.ndimage import gaussian_filter

    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        data, header = hdu.data.astype(np.float32), hdu.header.copy()
    h, w = data.shape
    H, W = int(round(h * factor)), int(round(w * factor))
    finite = data[np.isfinite(data)]
    rms = 1.4826 * np.median(np.abs(finite - np.median(finite)))
    beam_px = float(header.get("BMAJ", 0)) / abs(float(header.get("CDELT2", 1))) or 2.0
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.standard_normal((H, W)), beam_px / 2.355)
    field = (noise * rms / noise.std()).astype(np.float32)
    y0, x0 = (H - h) // 2, (W - w) // 2
    field[y0:y0 + h, x0:x0 + w] = data
    header["CRPIX1"] = float(header["CRPIX1"]) + x0
    header["CRPIX2"] = float(header["CRPIX2"]) + y0
    header["HISTORY"] = f"glue-radiollava: {Path(path).name} set in a {factor:g}x wider field of matching noise"
    out.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(field, fits.Header([c for c in header.cards if c.keyword not in
                                        ("XTENSION", "PCOUNT", "GCOUNT", "NAXIS1", "NAXIS2")])).writeto(
        out, overwrite=True)
    return out


def write_references(rows: list[dict], out: Path, val_fraction: float, seed: int,
                     zoom_out: tuple = ()) -> tuple[Path, Path]:
    """Reference label JSON for the training and the validation galaxies (split by sky group).

    ``zoom_out``: (factor, share) pairs; that share of the galaxies is also written set in a field
    ``factor`` times wider (``zoomed_out``), on the same side of the split as the original."""
    rng = random.Random(seed + 1)
    extra = []
    for factor, share in zoom_out:
        for i, r in enumerate(rows):
            if rng.random() < share:
                path = zoomed_out(r["path"], factor, seed + i, out / "real_zoomed" / f"{r['sname']}-x{factor:g}.fits")
                extra.append({**r, "path": str(path), "sname": f"{r['sname']}-x{factor:g}"})
    rows = rows + extra
    groups = sky_groups(rows)
    ids = sorted(set(groups))
    random.Random(seed).shuffle(ids)
    held = set(ids[:max(1, round(len(ids) * val_fraction))])
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, keep in (("real_train", lambda g: g not in held), ("real_val", lambda g: g in held)):
        items = [{"sname": r["sname"], "filepaths": [r["path"]], "label": r["label"], "survey": r["survey"]}
                 for r, g in zip(rows, groups) if keep(g)]
        path = out / f"{name}.reference.json"
        path.write_text(json.dumps({"data": items}))
        paths.append(path)
    return paths[0], paths[1]
