"""Simulator realism: pixel statistics of simulated and real radio images, and a contact sheet.

What it compares
    For each survey preset with real data in ``../shared/data`` (or ``$RADIOLLAVA_DATA``):

    - ``lotss``: 128² tiles of the LoTSS-DR1 mosaics (``lotss_dr1/*.fits``, 1.5"/px, 6" beam)
      against simulated ``--scene field`` cutouts with the ``lotss`` preset;
    - ``first``: the central 150² of the VLA FIRST cutouts of MiraBest radio galaxies
      (``mirabest_first/*.fits``, 1.8"/px, 5.4" beam) against simulated ``--scene galaxy`` cutouts
      with the ``first`` preset.

    Per image: the noise rms (median absolute deviation × 1.4826), the pixel distribution in units
    of that rms (fractions within ±1σ, below −3σ, below −5σ, above +5σ), the noise correlation
    length (half-maximum width of the autocorrelation of source-free pixels, in beam FWHM; white
    noise convolved with a Gaussian beam gives √2 ≈ 1.41), and the dynamic range (peak / rms). Over
    all images: islands (4-connected pixels > 3σ holding a pixel > 5σ) per image and their sizes in
    beams (largest extent / beam FWHM; √(area / beam area)). Medians and 10–90 % ranges are printed.

    The contact sheet renders real (top row of each pair) and simulated (bottom row) images with the
    core's ``radio-llava-zscale`` profile, i.e. as a model using that profile would see them.

How to run
    python benchmarks/perf/sim_realism.py [--n 200] [--seed 0] [--sheet out/sim_realism.png] [--data DIR]

    The last line printed is one JSON object: for each survey, ``real`` and ``sim`` summaries and
    ``ratio`` (sim / real) of the headline numbers, plus ``sheet`` (the PNG path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

DATA = Path(os.environ.get("RADIOLLAVA_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _robust(d: np.ndarray) -> tuple[float, float]:
    d = d[np.isfinite(d)]
    med = float(np.median(d))
    return med, 1.4826 * float(np.median(np.abs(d - med)))


def _acf_width(z: np.ndarray) -> float:
    """Half-maximum width (px, FWHM-like) of the autocorrelation of source-free pixels."""
    mask = np.isfinite(z) & (np.abs(z) < 4)
    v = np.where(mask, z, 0.0)
    f = np.fft.rfft2(v, s=(2 * v.shape[0], 2 * v.shape[1]))
    m = np.fft.rfft2(mask.astype(float), s=(2 * v.shape[0], 2 * v.shape[1]))
    acf = np.fft.irfft2(np.abs(f) ** 2)[:16, :16] / np.maximum(np.fft.irfft2(np.abs(m) ** 2)[:16, :16], 1)
    acf = acf / acf[0, 0]
    prof = 0.5 * (acf[0, :] + acf[:, 0])             # along x and y
    below = np.flatnonzero(prof < 0.5)
    if below.size == 0:
        return float("nan")
    k = below[0]                                     # interpolate the half-maximum crossing
    x = k - 1 + (prof[k - 1] - 0.5) / (prof[k - 1] - prof[k])
    return 2 * float(x)


def image_stats(d: np.ndarray, beam_px: float) -> dict:
    from scipy import ndimage

    med, rms = _robust(d)
    z = (d - med) / rms
    f = z[np.isfinite(z)]
    snr = np.where(np.isfinite(z), z, 0)
    lab, n = ndimage.label(snr > 3)
    sizes, extents = [], []
    if n:
        peaks = ndimage.maximum(snr, lab, np.arange(1, n + 1))
        areas = ndimage.sum(np.ones_like(snr), lab, np.arange(1, n + 1))
        slices = ndimage.find_objects(lab)
        beam_area = np.pi / (4 * np.log(2)) * beam_px ** 2
        for i in np.flatnonzero(np.asarray(peaks) >= 5):
            sl = slices[i]
            extents.append(max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) / beam_px)
            sizes.append(float(np.sqrt(areas[i] / beam_area)))
    return {"rms": rms, "within_1": float(np.mean(np.abs(f) < 1)), "below_-3": float(np.mean(f < -3)),
            "below_-5": float(np.mean(f < -5)), "above_5": float(np.mean(f > 5)),
            "acf_beams": _acf_width(z) / beam_px, "dynamic_range": float(np.nanmax(d) / rms),
            "islands": len(sizes), "extents": extents, "sizes": sizes}


def summarise(stats: list[dict]) -> dict:
    def pct(values, digits=4):
        v = np.asarray([x for x in values if np.isfinite(x)], float)
        if v.size == 0:
            return None
        return [round(float(np.percentile(v, q)), digits) for q in (10, 50, 90)]

    extents = [e for s in stats for e in s["extents"]]
    sizes = [e for s in stats for e in s["sizes"]]
    return {
        "images": len(stats),
        "rms_jy": pct([s["rms"] for s in stats], 7),
        "within_1sigma": pct([s["within_1"] for s in stats]),
        "below_-3sigma": pct([s["below_-3"] for s in stats], 5),
        "below_-5sigma": pct([s["below_-5"] for s in stats], 6),
        "above_5sigma": pct([s["above_5"] for s in stats], 5),
        "noise_acf_fwhm_beams": pct([s["acf_beams"] for s in stats], 3),
        "dynamic_range": pct([s["dynamic_range"] for s in stats], 1),
        "islands_per_image": pct([s["islands"] for s in stats], 2),
        "island_extent_beams": pct(extents, 2),
        "island_size_beams": pct(sizes, 2),
        "islands": len(extents),
    }


def _real_lotss(data: Path, size=128):
    from astropy.io import fits

    out = []
    for path in sorted((data / "lotss_dr1").glob("*.fits")):
        d = np.squeeze(fits.getdata(path)).astype(np.float32)
        for y in range(0, d.shape[0] - size + 1, size):
            for x in range(0, d.shape[1] - size + 1, size):
                out.append(d[y:y + size, x:x + size])
    return out


def _real_first(data: Path, size=150):
    from astropy.io import fits

    out = []
    for path in sorted((data / "mirabest_first").glob("*.fits")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = np.squeeze(fits.getdata(path)).astype(np.float32)
        y0, x0 = (d.shape[0] - size) // 2, (d.shape[1] - size) // 2
        out.append(d[y0:y0 + size, x0:x0 + size])
    return out


SETS = {  # survey preset → (real images loader, simulated scene, cutout size)
    "lotss": (_real_lotss, "field", 128),
    "first": (_real_first, "galaxy", 150),
}


def contact_sheet(pairs: dict, path: Path, per_row: int = 6) -> Path:
    from PIL import Image, ImageDraw

    from glue_radiollava.core.profiles import render_array

    tile, pad, label_h = 128, 4, 14
    rows = []
    for name, (real, sim) in pairs.items():
        for kind, images in (("real", real), ("simulated", sim)):
            rows.append((f"{name} {kind}", images[:per_row]))
    width = per_row * (tile + pad) + pad
    sheet = Image.new("RGB", (width, len(rows) * (tile + pad + label_h) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for label, images in rows:
        draw.text((pad, y), label, fill=(0, 0, 0))
        y += label_h
        for i, d in enumerate(images):
            rgb, _ = render_array(d, "radio-llava-zscale")
            pic = Image.fromarray(rgb).resize((tile, tile), Image.NEAREST)
            sheet.paste(pic, (pad + i * (tile + pad), y))
        y += tile + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="simulated images per survey (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", default="out/sim_realism.png", help="contact sheet PNG path")
    p.add_argument("--data", default=str(DATA), help="the shared real-data folder")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"real data not found at {data}; give --data or set RADIOLLAVA_DATA")

    from training.simulate import SURVEYS, config_for, make_image

    result, pairs = {}, {}
    for name, (loader, scene, size) in SETS.items():
        survey = SURVEYS[name]
        beam_px = survey.bmaj_arcsec / survey.pixel_arcsec
        real = loader(data, size)
        cfg = config_for(size, scene, name)
        sim = [make_image(args.seed, i, cfg).data for i in range(args.n)]
        r = summarise([image_stats(d, beam_px) for d in real])
        s = summarise([image_stats(d, beam_px) for d in sim])
        ratio = {k: round(s[k][1] / r[k][1], 3) for k in ("rms_jy", "noise_acf_fwhm_beams", "dynamic_range",
                                                          "island_extent_beams", "above_5sigma")
                 if r[k] and s[k] and r[k][1]}
        result[name] = {"scene": scene, "size": size, "real": r, "sim": s, "ratio_sim_to_real": ratio}
        pairs[name] = (real, sim)
        print(f"\n{name}: {r['images']} real vs {s['images']} simulated images of {size}² px "
              f"(simulated scene: {scene}); median [10%, 90%]")
        for key in ("rms_jy", "within_1sigma", "below_-3sigma", "below_-5sigma", "above_5sigma",
                    "noise_acf_fwhm_beams", "dynamic_range", "islands_per_image", "island_extent_beams",
                    "island_size_beams"):
            fmt = lambda v: "—" if v is None else f"{v[1]:.4g} [{v[0]:.4g}, {v[2]:.4g}]"  # noqa: E731
            print(f"  {key:<22} real {fmt(r[key]):<34} sim {fmt(s[key])}")
    sheet = contact_sheet(pairs, Path(args.sheet))
    result["sheet"] = str(sheet)
    print(f"\ncontact sheet: {sheet}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
