"""Cutout cost versus mosaic size: time and memory of open + cutout + render.

What it measures
    For a large (default 16384², 1 GiB on disk) and a small (default 1024²) float32 FITS mosaic
    with a celestial TAN WCS (1.5"/px near RA 205°, Dec +55°) and a beam (BMAJ/BMIN/BPA), the
    wall time of

        RadioImage.open(path) → cutout_sky(centre, 256 px worth of arcsec) → render(cutout, "radio-llava")

    at ``--repeats`` seeded random centres inside each mosaic, each in a fresh ``RadioImage.open``
    (opening is part of the cost), and again with the file already open (cutout + render only).
    Medians are reported. For the large mosaic it also measures how much the process's resident
    memory grows: VmRSS from ``/proc/self/status`` before the mosaic is opened, against the peak
    (VmHWM, reset just before via ``/proc/self/clear_refs``) and the VmRSS after all its cutouts,
    with the last image still open. Each mosaic is measured in its own subprocess (this script
    with a hidden ``--_worker`` flag), so file creation and the other mosaic do not pollute the
    numbers; imports are warmed up on a tiny in-memory image before measuring.

    The large mosaic is written without ever holding it in memory: the header is written with
    astropy, the file is extended to its full size (sparse), and a few stripes of noise with
    Gaussian sources are filled through a memmap; random centres are drawn inside those stripes.
    By default the page cache is left as it is (the stripes were just written, so they are warm);
    ``--cold`` evicts each mosaic from the page cache before it is measured.

How to run
    python benchmarks/perf/cutout.py [--workdir DIR] [--repeats N] [--size-large 16384]
                                     [--size-small 1024] [--seed S] [--keep] [--cold]

    Without ``--workdir`` the mosaics go to a temporary folder that is removed at the end (unless
    ``--keep``); with ``--workdir`` they are cached there and reused by later runs.
    It prints a short table, then as its last line one JSON object (see ``summarise``).

What the targets mean
    ratio_large_vs_small ≤ 2: the cost of a cutout is independent of the mosaic's size (up to
        noise); a cutout reads only its own pixels, never the whole mosaic.
    rss_increase_mb < 100 (large mosaic): opening and cutting never reads the whole mosaic
        (1 GiB) into memory, neither into arrays nor into memory-mapped pages.
    The JSON splits the growth at the end into rss_anon_increase_mb (arrays the process holds)
    and rss_file_increase_mb (pages of the memory-mapped file it has touched). The second grows
    with the number of distinct rows cut from one open image: the kernel maps a whole 64 KiB
    window around every touched page (fault-around), and a row of the 16384² mosaic is 64 KiB,
    so one 256² cutout maps up to 16 MiB of the file while the image stays alive.

JSON keys
    median_s_large / median_s_small: open + cutout + render, fresh open each time.
    median_s_open_large / median_s_open_small: cutout + render with the file already open.
    ratio_large_vs_small (fresh opens), ratio_open_large_vs_small (already open),
    rss_increase_mb (peak, as rss_method says), rss_end_increase_mb, rss_anon/file_increase_mb,
    cutout_px, mosaic_px_large, mosaic_px_small, repeats, cold_cache, total_s, targets_met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CUTOUT_PX = 256
PIXEL_ARCSEC = 1.5
CENTRE_DEG = (205.0, 55.0)
BEAM_ARCSEC = (6.0, 5.0, 30.0)        # BMAJ, BMIN (FWHM, arcsec), BPA (deg)
NOISE_JY = 5e-5                       # rms of the image noise, Jy/beam
BAND_ROWS = 2 * CUTOUT_PX             # height of each filled stripe in a large mosaic
N_BANDS = 4
SOURCES_PER_BAND = 25
FULL_FILL_MAX_PX = 2048               # mosaics up to this size are filled entirely
PROFILE = "radio-llava"
RATIO_TARGET = 2.0
RSS_TARGET_MB = 100.0
FITS_BLOCK = 2880


# ---------------------------------------------------------------------------- the mosaics
def mosaic_header(n: int):
    """Primary header of an n×n float32 mosaic: TAN WCS (1.5"/px), beam, Jy/beam."""
    from astropy.io import fits

    deg = PIXEL_ARCSEC / 3600.0
    bmaj, bmin, bpa = BEAM_ARCSEC
    return fits.Header([
        ("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", n), ("NAXIS2", n),
        ("BUNIT", "Jy/beam"),
        ("CTYPE1", "RA---TAN"), ("CRVAL1", CENTRE_DEG[0]), ("CRPIX1", n / 2 + 0.5),
        ("CDELT1", -deg), ("CUNIT1", "deg"),
        ("CTYPE2", "DEC--TAN"), ("CRVAL2", CENTRE_DEG[1]), ("CRPIX2", n / 2 + 0.5),
        ("CDELT2", deg), ("CUNIT2", "deg"),
        ("RADESYS", "ICRS"), ("EQUINOX", 2000.0),
        ("BMAJ", bmaj / 3600.0), ("BMIN", bmin / 3600.0), ("BPA", bpa),
        ("OBJECT", "synthetic perf mosaic"),
    ])


def data_bytes(n: int) -> int:
    """Size of the data unit of an n×n float32 image, padded to whole FITS blocks."""
    raw = n * n * 4
    return -(-raw // FITS_BLOCK) * FITS_BLOCK


def data_bands(n: int) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) that hold data (the rest of a large mosaic stays zero)."""
    if n <= FULL_FILL_MAX_PX:
        return [(0, n)]
    centres = [int(n * (k + 0.5) / N_BANDS) for k in range(N_BANDS)]
    return [(c - BAND_ROWS // 2, c + BAND_ROWS // 2) for c in centres]


def fill_noise(data, rows: tuple[int, int], rng, chunk: int = 64) -> None:
    """Write Gaussian noise into ``data[r0:r1]``, a few rows at a time."""
    r0, r1 = rows
    nx = data.shape[1]
    for start in range(r0, r1, chunk):
        stop = min(start + chunk, r1)
        data[start:stop] = rng.standard_normal((stop - start, nx), dtype=np.float32) * NOISE_JY


def add_sources(data, rows: tuple[int, int], count: int, rng) -> None:
    """Add ``count`` beam-shaped Gaussian sources (1–50 mJy) inside ``rows``."""
    fwhm_px = BEAM_ARCSEC[0] / PIXEL_ARCSEC
    sigma = fwhm_px / (2 * np.sqrt(2 * np.log(2)))
    half = int(np.ceil(5 * sigma))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2)).astype(np.float32)
    r0, r1 = rows
    nx = data.shape[1]
    for _ in range(count):
        y = int(rng.integers(r0 + half, r1 - half))
        x = int(rng.integers(half, nx - half))
        flux = np.float32(rng.uniform(1e-3, 5e-2))
        box = (slice(y - half, y + half + 1), slice(x - half, x + half + 1))
        data[box] = data[box] + flux * kernel


def fill_bands(data, n: int, rng) -> None:
    """Noise and sources in every data band of ``data`` (an array or a memmap)."""
    for rows in data_bands(n):
        fill_noise(data, rows, rng)
        add_sources(data, rows, SOURCES_PER_BAND, rng)


def write_small_mosaic(path: Path, n: int, rng) -> None:
    """Build the whole image in memory and write it (fine for small mosaics)."""
    from astropy.io import fits

    data = np.zeros((n, n), dtype=">f4")
    fill_bands(data, n, rng)
    fits.PrimaryHDU(data, header=mosaic_header(n)).writeto(path, overwrite=True)


def write_large_mosaic(path: Path, n: int, rng) -> None:
    """Header with astropy, extend the file to full size (sparse), fill stripes via a memmap.

    The technique of the astropy docs ("creating a very large FITS file"): the mosaic is never
    held in memory, and untouched pixels are zero.
    """
    header = mosaic_header(n)
    header.tofile(path, overwrite=True)
    header_bytes = path.stat().st_size
    with open(path, "rb+") as fobj:
        fobj.truncate(header_bytes + data_bytes(n))
    data = np.memmap(path, dtype=">f4", mode="r+", offset=header_bytes, shape=(n, n))
    fill_bands(data, n, rng)
    data.flush()
    del data


def ensure_mosaic(workdir: Path, n: int, seed: int) -> Path:
    """The n×n mosaic in ``workdir``, created unless a complete one is already there."""
    path = workdir / f"mosaic_{n}.fits"
    expected = len(mosaic_header(n).tostring()) + data_bytes(n)
    if path.is_file() and path.stat().st_size == expected:
        return path
    partial = path.with_suffix(".fits.partial")
    rng = np.random.default_rng(seed + n)
    write = write_small_mosaic if n <= FULL_FILL_MAX_PX else write_large_mosaic
    write(partial, n, rng)
    partial.replace(path)  # only complete files carry the final name
    return path


def evict_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop the file's cached pages (cold-cache measurement)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- measuring
def random_centres(n: int, count: int, seed: int) -> list[tuple[float, float]]:
    """Pixel centres (x, y) whose whole cutout box lies inside a data band of the mosaic."""
    rng = np.random.default_rng(seed)
    half = CUTOUT_PX // 2
    bands = data_bands(n)
    centres = []
    for _ in range(count):
        r0, r1 = bands[int(rng.integers(len(bands)))]
        y = rng.uniform(r0 + half, r1 - half - 1)
        x = rng.uniform(half, n - half - 1)
        centres.append((float(x), float(y)))
    return centres


def sky_centres(path: Path, pixels: list[tuple[float, float]]):
    """SkyCoords of pixel centres, from the file's header only."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from glue_radiollava.core.transform import pixel_to_sky

    wcs = WCS(fits.getheader(path))
    return [pixel_to_sky(wcs, x, y) for x, y in pixels]


def cutout_size():
    """The angular size of CUTOUT_PX pixels."""
    import astropy.units as u

    return CUTOUT_PX * PIXEL_ARCSEC * u.arcsec


def proc_status_mb() -> dict[str, float]:
    """The memory fields of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile, ...), in MB."""
    fields = {}
    with open("/proc/self/status") as fobj:
        for line in fobj:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0]) / 1024.0  # kB → MB
    return fields


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fobj:
            fobj.write("5")
        return True
    except OSError:
        return False


def warm_up() -> None:
    """Import and exercise the whole path on a tiny in-memory image, so imports are not timed."""
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.profiles import render
    from glue_radiollava.core.transform import pixel_to_sky

    n = 2 * CUTOUT_PX
    data = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    image = RadioImage.from_array(data, mosaic_header(n))
    render(image.cutout_sky(pixel_to_sky(image.wcs, n / 2, n / 2), cutout_size()), PROFILE)


def time_fresh_opens(path: Path, centres, size) -> tuple[list[float], tuple[int, int]]:
    """Seconds for open + cutout_sky + render, a fresh RadioImage.open per centre."""
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.profiles import render

    times, shape = [], None
    for centre in centres:
        start = time.perf_counter()
        image = RadioImage.open(path)
        cut = image.cutout_sky(centre, size)
        render(cut, PROFILE)
        times.append(time.perf_counter() - start)
        shape = cut.shape
        image.close()
        del image, cut  # unmap now, not inside the next iteration's timing
    return times, shape


def time_already_open(image, centres, size) -> list[float]:
    """Seconds for cutout_sky + render on an image that is already open."""
    from glue_radiollava.core.profiles import render

    times = []
    for centre in centres:
        start = time.perf_counter()
        render(image.cutout_sky(centre, size), PROFILE)
        times.append(time.perf_counter() - start)
    return times


def run_worker(path: Path, n: int, repeats: int, seed: int) -> dict:
    """Measure one mosaic in this (fresh) process; memory is measured around the mosaic only."""
    from glue_radiollava.core.image import RadioImage

    warm_up()
    size = cutout_size()
    fresh_centres = sky_centres(path, random_centres(n, repeats, seed))
    open_centres = sky_centres(path, random_centres(n, repeats, seed + 1))
    peak_reset = reset_peak_rss()
    before = proc_status_mb()

    fresh, shape = time_fresh_opens(path, fresh_centres, size)
    image = RadioImage.open(path)
    already_open = time_already_open(image, open_centres, size)
    after = proc_status_mb()   # the last image is still open and mapped
    image.close()

    increase_end = after["VmRSS"] - before["VmRSS"]
    increase_peak = after["VmHWM"] - before["VmRSS"] if peak_reset else increase_end
    return {
        "mosaic_px": n,
        "cutout_shape": list(shape),
        "fresh_s": fresh,
        "already_open_s": already_open,
        "rss_before_mb": before["VmRSS"],
        "rss_increase_mb": max(increase_peak, increase_end),
        "rss_end_increase_mb": increase_end,
        # where the growth lives: private arrays (anon) or mapped pages of the file (file)
        "rss_anon_increase_mb": after.get("RssAnon", 0.0) - before.get("RssAnon", 0.0),
        "rss_file_increase_mb": after.get("RssFile", 0.0) - before.get("RssFile", 0.0),
        "rss_method": ("/proc/self/status: VmHWM (peak, reset via clear_refs) - VmRSS before"
                       if peak_reset else "/proc/self/status: VmRSS after - VmRSS before"),
    }


def measure_in_subprocess(path: Path, n: int, repeats: int, seed: int) -> dict:
    """Run this script's hidden worker on one mosaic and return its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", str(path),
           "--_worker-px", str(n), "--repeats", str(repeats), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker for {path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- reporting
def summarise(small: dict, large: dict, repeats: int, total_s: float, cold: bool) -> dict:
    """The JSON result: medians, the large/small ratio, the memory growth, the verdict."""
    med = {name: statistics.median(r["fresh_s"]) for name, r in (("small", small), ("large", large))}
    med_open = {name: statistics.median(r["already_open_s"])
                for name, r in (("small", small), ("large", large))}
    ratio = med["large"] / med["small"]
    rss = large["rss_increase_mb"]
    return {
        "ratio_large_vs_small": round(ratio, 3),
        "ratio_open_large_vs_small": round(med_open["large"] / med_open["small"], 3),
        "rss_increase_mb": round(rss, 1),
        "rss_end_increase_mb": round(large["rss_end_increase_mb"], 1),
        "rss_anon_increase_mb": round(large["rss_anon_increase_mb"], 1),
        "rss_file_increase_mb": round(large["rss_file_increase_mb"], 1),
        "rss_method": large["rss_method"],
        "median_s_large": round(med["large"], 5),
        "median_s_small": round(med["small"], 5),
        "median_s_open_large": round(med_open["large"], 5),
        "median_s_open_small": round(med_open["small"], 5),
        "cutout_px": large["cutout_shape"][0],
        "mosaic_px_large": large["mosaic_px"],
        "mosaic_px_small": small["mosaic_px"],
        "repeats": repeats,
        "cold_cache": cold,
        "total_s": round(total_s, 1),
        "targets_met": bool(ratio <= RATIO_TARGET and rss < RSS_TARGET_MB),
    }


def print_table(s: dict) -> None:
    """A short human-readable table of the summary."""
    print(f"cutout {s['cutout_px']}² px, profile {PROFILE}, median of {s['repeats']} "
          f"({'cold' if s['cold_cache'] else 'warm'} page cache)")
    print(f"{'mosaic':>14}  {'open+cut+render':>16}  {'cut+render (open)':>18}")
    for key in ("small", "large"):
        n = s[f"mosaic_px_{key}"]
        print(f"{f'{n}×{n}':>14}  {s[f'median_s_{key}'] * 1e3:13.1f} ms  "
              f"{s[f'median_s_open_{key}'] * 1e3:15.1f} ms")
    print(f"ratio large/small: {s['ratio_large_vs_small']:.2f} (target ≤ {RATIO_TARGET:g}); "
          f"already open: {s['ratio_open_large_vs_small']:.2f}")
    print(f"RSS increase, large: {s['rss_increase_mb']:.1f} MB peak, {s['rss_end_increase_mb']:.1f} MB "
          f"at the end (target < {RSS_TARGET_MB:g} MB); of it at the end "
          f"{s['rss_anon_increase_mb']:.1f} MB arrays, {s['rss_file_increase_mb']:.1f} MB mapped file pages")
    print(f"targets met: {s['targets_met']}   total {s['total_s']:.1f} s")


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, help="folder that caches the mosaics (default: a temp dir)")
    p.add_argument("--repeats", type=int, default=20, help="cutouts per mosaic (default 20)")
    p.add_argument("--size-large", type=int, default=16384, help="side of the large mosaic, px")
    p.add_argument("--size-small", type=int, default=1024, help="side of the small mosaic, px")
    p.add_argument("--seed", type=int, default=1, help="seed of the random centres and data")
    p.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    p.add_argument("--cold", action="store_true", help="evict each mosaic from the page cache first")
    p.add_argument("--_worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_worker-px", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1 or min(args.size_small, args.size_large) < 2 * CUTOUT_PX:
        p.error(f"--repeats must be ≥ 1 and mosaics at least {2 * CUTOUT_PX} px")
    return args


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    start = time.perf_counter()
    results = {}
    for key, n in (("small", args.size_small), ("large", args.size_large)):
        path = ensure_mosaic(workdir, n, args.seed)
        if args.cold:
            evict_from_page_cache(path)
        results[key] = measure_in_subprocess(path, n, args.repeats, args.seed)
    return summarise(results["small"], results["large"], args.repeats,
                     time.perf_counter() - start, args.cold)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker is not None:
        print(json.dumps(run_worker(args._worker, args._worker_px, args.repeats, args.seed)))
        return 0
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="radiollava-perf-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        summary = run_benchmark(args, workdir)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif temporary:
            print(f"mosaics kept in {workdir}", file=sys.stderr)
    print_table(summary)
    print(json.dumps(summary))
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
