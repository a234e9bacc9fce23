"""The radio sky simulator: seeded, deterministic cutouts and mosaics with exact ground truth.

Each image depends only on ``(seed, index)`` and the configuration, so the same call writes the
same bytes, in any order and in any number of processes. An image is correlated noise (white
noise convolved with the beam) scaled by an rms map (mosaicking patterns, noisier coverage
edges), sources rendered as noise-free beam-convolved stamps (``sky_models``), and NaN where the
coverage ends. The ground truth of every object is measured on its own noise-free stamp with the
usual source-finder rule: an island is a group of 4-connected pixels above 3σ that holds a pixel
above 5σ; peaks are local maxima (within a beam) above 3σ inside the islands. Objects with no
island are invisible and left out of the truth; boxes are the bounding boxes of the islands.

Outputs of :func:`write_simulation` (``DIR``):

- ``images/NAME.fits``: float32, BUNIT JY/BEAM, a celestial SIN WCS, BMAJ/BMIN/BPA;
- ``labels.json``: the reference coarse-label JSON, radioimg-multilabel scheme
  ``{"data": [{"sname", "filepaths", "label": [...]}]}``; ``peculiarity.json`` (B5 classes),
  ``smorph.json`` (rgz-smorph classes, images where one source dominates) and ``frclass.json``
  (FR-I/FR-II, images where one radio galaxy dominates) in the same format;
- ``objects.json``: everything per image and per object (pixel and sky boxes, classes, counts);
- mosaics: ``NAME.ecsv``, a source catalogue (RA, DEC, Maj, Min, PA, fluxes, class, boxes).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import atomic_write, atomic_write_bytes
from glue_radiollava.core.labels import FR, MULTILABELS, SIMULATED_BOX_CLASSES, peculiarity_of
from glue_radiollava.core.transform import pixel_to_sky

from . import sky_models as sm

SIM_VERSION = 1
FR_CLASSES = FR
BOX_CLASSES = SIMULATED_BOX_CLASSES
SCENES = ("field", "source", "galaxy", "mixed")
ISLAND_SNR, SEED_SNR = 3.0, 5.0


@dataclass(frozen=True)
class Survey:
    """Observing setup: pixel size and beam in arcsec, noise rms in Jy/beam, frequency in Hz."""

    name: str
    pixel_arcsec: float
    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float
    rms: float
    freq_hz: float
    telescope: str
    noise_kernel: float = 1.0       # FWHM of the noise correlation kernel, in beams (measured on real maps)
    sidelobes: str = "ripples"      # texture of residual sidelobes in the noise: ripples | streaks
    sidelobe_level: float = 0.35    # its share of the noise rms


SURVEYS = {
    "lotss": Survey("lotss", 1.5, 6.0, 6.0, 0.0, 6.1e-5, 144e6, "LOFAR", 0.6, "ripples", 0.35),
    "first": Survey("first", 1.8, 5.4, 5.4, 0.0, 1.65e-4, 1.4e9, "VLA", 0.85, "streaks", 0.3),
    "emu": Survey("emu", 2.0, 15.0, 15.0, 0.0, 3e-5, 944e6, "ASKAP", 0.8, "ripples", 0.3),
}

# Expected number of each kind of object per 1024 beam areas (about a 128² LoTSS-like cutout).
DEFAULT_RATES = {
    "extended": 0.22, "multi": 0.14, "fr1": 0.09, "fr2": 0.11, "diffuse": 0.11,
    "diffuse-large": 0.09, "filament": 0.07, "peculiar": 0.08, "artefact": 0.13,
}


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``scene``: field (survey-like cutouts, radioimg-multilabel), source (one
    centred source of an rgz-smorph class), galaxy (one centred FR-I/FR-II), mixed (60/20/20)."""

    size: int = 128
    scene: str = "field"
    survey: str = "lotss"
    mosaic: bool = False
    compact_density: float = 800.0      # compact sources per deg² above ~5σ
    p_border: float = 0.08              # cutouts: chance of a blank (NaN) border
    p_mosaicking: float = 0.07          # cutouts: chance of a visible mosaicking pattern
    p_background: float = 0.04          # cutouts: chance of no source at all
    mosaic_rate_scale: float = 0.35     # mosaics: fewer extended objects per area than the cutouts
    rates: dict = field(default_factory=lambda: dict(DEFAULT_RATES))

    def check(self) -> "SimConfig":
        if self.scene not in SCENES:
            raise RadioLlavaError(f"unknown scene {self.scene!r}; use one of {', '.join(SCENES)}")
        if self.survey not in SURVEYS:
            raise RadioLlavaError(f"unknown survey preset {self.survey!r}; use one of {', '.join(SURVEYS)}")
        if not 32 <= int(self.size) <= 16384:
            raise RadioLlavaError(f"size {self.size} px is out of range; use 32 to 16384")
        if self.mosaic and self.scene != "field":
            raise RadioLlavaError("mosaics are survey fields: use --scene field with --mosaic")
        survey = SURVEYS[self.survey]
        beams = self.size * survey.pixel_arcsec / survey.bmaj_arcsec
        if self.scene != "field" and beams < 12:
            need = math.ceil(12 * survey.bmaj_arcsec / survey.pixel_arcsec)
            raise RadioLlavaError(f"--scene {self.scene}: {self.size} px is only {beams:.1f} beams of the "
                                  f"{self.survey} preset; use --size {need} or more")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SimImage:
    """One simulated image: pixels (float32, NaN where blank), FITS header cards, ground truth."""

    name: str
    data: np.ndarray
    cards: list
    truth: dict
    catalogue_rows: list = field(default_factory=list)
    rms: np.ndarray | None = None       # the noise rms map (Jy/beam); not written to the FITS file


@dataclass
class _Planned:
    kind: str
    label: str
    x: float
    y: float
    blobs: sm.Blobs | None = None
    stamp: tuple | None = None            # (array, x0, y0) for fields
    radio_galaxy: bool = False
    peculiar: bool = False
    fr_class: str | None = None
    signed: bool = False


# ------------------------------------------------------------------ measuring the truth
@dataclass
class Measured:
    box: tuple[float, float, float, float]   # pixel edges x0, y0, x1, y1 (pixel i spans i±0.5)
    n_islands: int
    n_peaks: int
    peak_snr: float
    peak_jy: float
    area_px: int
    moments: tuple[float, float, float]      # FWHM major, minor (px) and PA (deg) of the islands
    centroid: tuple[float, float]            # intensity-weighted centre (image pixels)


def measure(stamp: np.ndarray, x0: int, y0: int, rms: np.ndarray, finite: np.ndarray,
            beam: sm.PixelBeam, signed: bool = False) -> Measured | None:
    """Islands, peaks and box of one object's noise-free stamp, on the finite pixels only.

    ``rms`` and ``finite`` are the image-sized rms map and finite mask.
    """
    from scipy import ndimage

    ny, nx = stamp.shape
    win = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    value = np.abs(stamp) if signed else stamp
    snr = np.where(finite[win], value / rms[win], 0.0)
    above = snr > ISLAND_SNR
    if not above.any():
        return None
    lab, n = ndimage.label(above)                      # default structure: 4-connectivity
    peaks = ndimage.maximum(snr, lab, np.arange(1, n + 1))
    keep = np.flatnonzero(np.asarray(peaks) >= SEED_SNR) + 1
    if keep.size == 0:
        return None
    mask = np.isin(lab, keep)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (x0 + cols[0] - 0.5, y0 + rows[0] - 0.5, x0 + cols[-1] + 0.5, y0 + rows[-1] + 0.5)
    size = max(3, int(round(beam.size)) | 1)
    local = (ndimage.maximum_filter(snr, size=size, mode="constant") == snr) & mask
    i = int(np.argmax(np.where(mask, snr, -np.inf)))
    mx, my, *shape = _moments(np.where(mask, value, 0.0))
    return Measured(box, int(keep.size), int(local.sum()), float(snr.flat[i]), float(stamp.flat[i]),
                    int(mask.sum()), tuple(shape), (x0 + mx, y0 + my))


def _moments(w: np.ndarray) -> tuple[float, float, float, float, float]:
    """Centre (px), FWHM major/minor (px) and position angle (deg, east of north) from moments."""
    total = w.sum()
    yy, xx = np.indices(w.shape)
    if total <= 0:
        return float(w.shape[1] / 2), float(w.shape[0] / 2), 0.0, 0.0, 0.0
    mx, my = (w * xx).sum() / total, (w * yy).sum() / total
    cxx = (w * (xx - mx) ** 2).sum() / total
    cyy = (w * (yy - my) ** 2).sum() / total
    cxy = (w * (xx - mx) * (yy - my)).sum() / total
    evals, evecs = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
    major, minor = sm.FWHM * math.sqrt(max(evals[1], 0)), sm.FWHM * math.sqrt(max(evals[0], 0))
    vx, vy = evecs[:, 1]
    pa = math.degrees(math.atan2(-vx, vy)) % 180.0     # north = +y, east = -x
    return float(mx), float(my), major, minor, pa


def smorph_of(n_islands: int, n_peaks: int) -> str | None:
    """The rgz-smorph class for counts of islands (components) and peaks, or None."""
    name = f"{n_islands}C-{n_peaks}P"
    return name if name in sm.SMORPH_CLASSES else None


# ------------------------------------------------------------------ backgrounds
def _survey_beam(survey: Survey) -> sm.PixelBeam:
    return sm.PixelBeam(survey.bmaj_arcsec / survey.pixel_arcsec, survey.bmin_arcsec / survey.pixel_arcsec,
                        survey.bpa_deg)


def _cutout_background(rng, shape, cfg: SimConfig, survey: Survey):
    """rms map, finite mask and the image labels they carry (MOSAICKING, BORDER) for a cutout."""
    ny, nx = shape
    rms = np.full(shape, survey.rms)
    finite = np.ones(shape, bool)
    labels = set()
    yy, xx = np.mgrid[0:ny, 0:nx]
    if rng.random() < cfg.p_mosaicking:
        labels.add("MOSAICKING")
        for _ in range(int(rng.integers(1, 3))):          # seams between observations
            a = rng.uniform(0, math.pi)
            d = rng.uniform(-0.3, 0.3) * min(nx, ny)
            side = (xx - nx / 2) * math.cos(a) + (yy - ny / 2) * math.sin(a) > d
            rms = np.where(side, rms * rng.uniform(1.7, 2.6), rms)
        spacing = min(nx, ny) * rng.uniform(0.35, 0.6)    # pointing-pattern ripple
        a = rng.uniform(0, math.pi)
        u = (xx * math.cos(a) + yy * math.sin(a)) / spacing
        v = (-xx * math.sin(a) + yy * math.cos(a)) / spacing
        rms = rms * (1 + 0.35 * (np.cos(2 * math.pi * u) * np.cos(2 * math.pi * v)) ** 2)
    if rng.random() < cfg.p_border:
        labels.add("BORDER")
        frac = rng.uniform(0.05, 0.4)
        if rng.random() < 0.5:                             # a straight coverage edge
            a = rng.uniform(0, 2 * math.pi)
            proj = (xx - nx / 2) * math.cos(a) + (yy - ny / 2) * math.sin(a)
        else:                                              # a curved one (a big circle)
            R = min(nx, ny) * rng.uniform(1.0, 3.0)
            a = rng.uniform(0, 2 * math.pi)
            cx, cy = nx / 2 - R * math.cos(a), ny / 2 - R * math.sin(a)
            proj = np.hypot(xx - cx, yy - cy)
        edge = np.quantile(proj, 1 - frac)
        finite = proj < edge
        dist = edge - proj
        rms = rms * (1 + 1.5 * np.exp(-np.clip(dist, 0, None) / (0.08 * min(nx, ny))))
    return rms, finite, labels


def _mosaic_background(rng, shape, survey: Survey):
    """A mosaic of pointings on a hexagonal grid: primary-beam weighted noise, two observing
    blocks of different depth, and no data outside the coverage."""
    ny, nx = shape
    spacing = max(min(nx, ny) * 0.3, 64.0)
    fwhm = 1.25 * spacing
    cov = np.zeros(shape)
    weight = np.zeros(shape)
    block_angle = rng.uniform(0, math.pi)
    depth = (1.0, rng.uniform(1.3, 1.8))
    yy, xx = np.mgrid[0:ny, 0:nx]
    rows = int(ny / (spacing * 0.866)) + 1
    for r in range(rows):
        py = spacing * 0.5 + r * spacing * 0.866
        for c in range(int(nx / spacing) + 1):
            px = spacing * 0.5 + c * spacing + (spacing / 2 if r % 2 else 0)
            block = ((px - nx / 2) * math.cos(block_angle) + (py - ny / 2) * math.sin(block_angle)) > 0
            pb2 = np.exp(-4 * math.log(2) * ((xx - px) ** 2 + (yy - py) ** 2) / fwhm ** 2) ** 2
            cov += pb2
            weight += pb2 / depth[int(block)] ** 2
    weight /= weight.max()
    finite = np.sqrt(cov / cov.max()) > 0.3
    rms = survey.rms / np.sqrt(np.maximum(weight, 1e-6))
    return rms, finite, {"MOSAICKING", "BORDER"} if not finite.all() else {"MOSAICKING"}


def _noise(rng, shape, beam: sm.PixelBeam, survey: Survey) -> np.ndarray:
    """Unit-rms noise: white noise correlated on ``noise_kernel`` beams plus sidelobe texture."""
    kernel = sm.PixelBeam(beam.major * survey.noise_kernel, beam.minor * survey.noise_kernel, beam.pa_deg)
    noise = sm.correlated_noise(rng, shape, kernel)
    if survey.sidelobe_level > 0:
        a = survey.sidelobe_level
        noise = math.sqrt(1 - a * a) * noise + a * sm.sidelobe_pattern(rng, shape, beam, survey.sidelobes)
    return noise


# ------------------------------------------------------------------ planning a scene
def _snr_compact(rng) -> float:
    """Peak signal-to-noise of a compact source: N(>S) ∝ S^-1.3 above 4σ (near-Euclidean counts at
    a few σ), capped at 3000."""
    return float(min(4.0 * rng.random() ** (-1 / 1.3), 3000.0))


def _plan_field(rng, cfg: SimConfig, shape, beam: sm.PixelBeam, sigma: float, pix: float):
    ny, nx = shape
    b = beam.size
    bounds = (0, 0, nx, ny)
    n_beams = nx * ny / beam.area
    scale = n_beams / 1024.0 * (cfg.mosaic_rate_scale if cfg.mosaic else 1.0)
    area_deg2 = nx * ny * (pix / 3600.0) ** 2
    plan: list[_Planned] = []
    size_lim = min(nx, ny, 256)           # objects stay cutout-sized in a mosaic
    taken: list[tuple[float, float, float]] = []

    def place(radius, margin=0.1):
        for _ in range(12):
            x = rng.uniform(margin * nx, (1 - margin) * nx)
            y = rng.uniform(margin * ny, (1 - margin) * ny)
            if all(math.hypot(x - tx, y - ty) > 0.8 * (radius + tr) for tx, ty, tr in taken):
                break
        taken.append((x, y, radius))
        return x, y

    count = lambda kind: int(rng.poisson(cfg.rates.get(kind, 0.0) * scale))  # noqa: E731
    for _ in range(count("extended")):
        ext = min(0.5 * size_lim, 30 * b)
        x, y = place(ext / 2)
        cls = str(rng.choice(sm.SMORPH_CLASSES[:3]))
        plan.append(_Planned("extended", "EXTENDED", x, y, sm.smorph_source(rng, cls, x, y, beam, sigma, ext),
                             radio_galaxy=cls != "1C-1P"))
    for _ in range(count("multi")):
        ext = min(0.6 * size_lim, 36 * b)
        x, y = place(ext / 2)
        cls = str(rng.choice(sm.SMORPH_CLASSES[3:]))
        plan.append(_Planned("multi", "EXTENDED", x, y, sm.smorph_source(rng, cls, x, y, beam, sigma, ext),
                             radio_galaxy=True))
    for kind, fn, fr in (("fr1", sm.fr1, "FR-I"), ("fr2", sm.fr2, "FR-II")):
        for _ in range(count(kind)):
            ext = min(0.7 * size_lim, 40 * b)
            x, y = place(ext / 2)
            plan.append(_Planned(kind, "EXTENDED", x, y, fn(rng, x, y, beam, sigma, ext),
                                 radio_galaxy=True, fr_class=fr))
    for _ in range(count("diffuse")):
        size = min(0.4 * size_lim, b * rng.uniform(5, 14))
        x, y = place(size / 2)
        plan.append(_Planned("diffuse", "DIFFUSE", x, y, sm.diffuse(rng, x, y, beam, sigma, size)))
    for _ in range(count("diffuse-large")):
        radius = rng.uniform(0.3, 0.5) * min(size_lim, 160 * b)
        x, y = place(radius, margin=0.25)
        plan.append(_Planned("diffuse-large", "DIFFUSE-LARGE", x, y,
                             stamp=sm.diffuse_large(rng, x, y, beam, sigma, radius, bounds)))
    for _ in range(count("filament")):
        length = rng.uniform(0.5, 0.9) * min(size_lim, 80 * b)
        x, y = place(length / 3, margin=0.3)
        plan.append(_Planned("filament", "FILAMENT", x, y, sm.filament(rng, x, y, beam, sigma, length)))
    for _ in range(count("peculiar")):
        what = str(rng.choice(["ring", "x-shaped", "irregular"]))
        ext = min(0.6 * size_lim, 36 * b)
        x, y = place(ext / 2)
        if what == "ring":
            blobs = sm.ring(rng, x, y, beam, sigma, min(ext / 2, b * rng.uniform(4, 9)))
        elif what == "x-shaped":
            blobs = sm.x_shaped(rng, x, y, beam, sigma, ext)
        else:
            blobs = sm.irregular(rng, x, y, beam, sigma, min(ext, b * rng.uniform(6, 14)))
        plan.append(_Planned(what, "EXTENDED", x, y, blobs, radio_galaxy=what == "x-shaped", peculiar=True))
    for _ in range(count("artefact")):
        level = rng.uniform(5, 14)
        x, y = place(b * 3, margin=0.15)
        snr = max(level * rng.uniform(25, 70), 200.0)
        plan.append(_Planned("compact", "COMPACT", x, y, sm.compact(rng, x, y, beam, sigma, snr)))
        radius = min(0.6 * size_lim, b * rng.uniform(8, 20))
        kind = str(rng.choice(["ring", "spokes"]))
        plan.append(_Planned(f"artefact-{kind}", "ARTIFACT", x, y, signed=True,
                             stamp=sm.artefact(rng, x, y, beam, sigma, level, radius, kind, bounds)))
    n_compact = int(rng.poisson(cfg.compact_density * area_deg2 * rng.uniform(0.5, 2.0)))
    for _ in range(n_compact):
        x, y = rng.uniform(-0.5, nx - 0.5), rng.uniform(-0.5, ny - 0.5)
        blobs = sm.compact(rng, x, y, beam, sigma, _snr_compact(rng))
        plan.append(_Planned("compact", "COMPACT", x, y, blobs))
    return plan


def _render(p: _Planned, beam: sm.PixelBeam, bounds):
    if p.stamp is not None:
        return p.stamp
    return sm.render_blobs(p.blobs, beam, bounds)


def _faint_population(rng, data, beam, sigma, area_deg2, density):
    """Sources below the detection limit (not in the truth): they make the noise a little skewed."""
    ny, nx = data.shape
    n = int(rng.poisson(3 * density * area_deg2))
    if n == 0:
        return
    blobs = sm.Blobs()
    for _ in range(n):
        blobs.add(rng.uniform(0, nx), rng.uniform(0, ny), rng.uniform(0.5, 2.5) * sigma)
    out = sm.render_blobs(blobs, beam, (0, 0, nx, ny))
    if out is not None:
        s, x0, y0 = out
        data[y0:y0 + s.shape[0], x0:x0 + s.shape[1]] += s


# ------------------------------------------------------------------ one image
def make_image(seed: int, index: int, cfg: SimConfig) -> SimImage:
    """Simulate image ``index`` of the series ``seed`` (deterministic)."""
    cfg = cfg.check()
    rng = np.random.default_rng([int(seed), int(index), SIM_VERSION])
    survey = SURVEYS[cfg.survey]
    beam = _survey_beam(survey)
    n = int(cfg.size)
    shape = (n, n)
    bounds = (0, 0, n, n)
    name = f"{'mosaic' if cfg.mosaic else 'sim'}_{index:06d}"
    scene = cfg.scene
    if scene == "mixed":
        scene = str(rng.choice(["field", "source", "galaxy"], p=[0.6, 0.2, 0.2]))
    if cfg.mosaic:
        rms, finite, bg_labels = _mosaic_background(rng, shape, survey)
    elif scene == "field":
        rms, finite, bg_labels = _cutout_background(rng, shape, cfg, survey)
    else:
        rms, finite, bg_labels = np.full(shape, survey.rms), np.ones(shape, bool), set()
    sigma = survey.rms
    data = _noise(rng, shape, beam, survey) * rms
    area_deg2 = n * n * (survey.pixel_arcsec / 3600.0) ** 2
    _faint_population(rng, data, beam, sigma, area_deg2, cfg.compact_density)

    measured: list[tuple[_Planned, Measured, tuple]] = []
    if scene == "field":
        empty = not cfg.mosaic and rng.random() < cfg.p_background
        plan = [] if empty else _plan_field(rng, cfg, shape, beam, sigma, survey.pixel_arcsec)
        for p in plan:
            out = _render(p, beam, bounds)
            if out is None:
                continue
            stamp, x0, y0 = out
            data[y0:y0 + stamp.shape[0], x0:x0 + stamp.shape[1]] += stamp
            m = measure(stamp, x0, y0, rms, finite, beam, p.signed)
            if m is not None:
                measured.append((p, m, out))
    else:
        main = _centred_source(rng, scene, n, beam, sigma, rms, finite, bounds)
        for p, out in main:
            stamp, x0, y0 = out
            data[y0:y0 + stamp.shape[0], x0:x0 + stamp.shape[1]] += stamp
            m = measure(stamp, x0, y0, rms, finite, beam, p.signed)
            if m is not None:
                measured.append((p, m, out))

    data[~finite] = np.nan
    center = _sky_centre(rng)
    wcs = _wcs(center, n, n, survey.pixel_arcsec)
    skies = sky_boxes(wcs, np.array([m.box for _, m, _ in measured]))
    cen = np.array([m.centroid for _, m, _ in measured]).reshape(-1, 2)
    centres = pixel_to_sky(wcs, cen[:, 0], cen[:, 1])
    ras, decs = centres.spherical.lon.deg, centres.spherical.lat.deg
    objects = [_object_truth(f"{name}-{k:03d}", p, m, sky, (ra, dec), survey)
               for k, ((p, m, _), sky, ra, dec) in enumerate(zip(measured, skies, ras, decs))]
    truth = _image_truth(name, scene, objects, bg_labels, finite, survey, center, shape, cfg)
    cards = _fits_cards(name, survey, center, n, n, seed, index)
    rows = [_catalogue_row(o) for o in objects] if cfg.mosaic else []
    return SimImage(name, data.astype(np.float32), cards, truth, rows, rms.astype(np.float32))


def _centred_source(rng, scene, n, beam, sigma, rms, finite, bounds):
    """The one dominant source of a 'source' or 'galaxy' scene (plus a few faint compacts for
    'galaxy'), redrawn until its measured islands/peaks match the class aimed at."""
    out = []
    b = beam.size
    if scene == "source":
        target = str(rng.choice(sm.SMORPH_CLASSES))
        for attempt in range(40):
            x, y = n / 2 + rng.normal(0, n * 0.03), n / 2 + rng.normal(0, n * 0.03)
            zoom = rng.uniform(1.0, 2.5) if attempt < 30 else 1.0
            blobs = sm.smorph_source(rng, target, x, y, beam, sigma, 0.6 * n, zoom=zoom)
            stamp = sm.render_blobs(blobs, beam, bounds)
            m = measure(*stamp, rms, finite, beam) if stamp is not None else None
            if m is not None and smorph_of(m.n_islands, m.n_peaks) == target:
                break
        else:
            raise RadioLlavaError(f"could not draw a {target} source in 40 tries ({n} px, beam {b:.1f} px); "
                                  "use a larger --size")
        kind = "extended" if target.startswith("1C") else "multi"
        out.append((_Planned(kind, "EXTENDED", x, y, blobs, radio_galaxy=target != "1C-1P"), stamp))
    else:
        fr = str(rng.choice(FR_CLASSES))
        x, y = n / 2 + rng.normal(0, n * 0.03), n / 2 + rng.normal(0, n * 0.03)
        fn = sm.fr1 if fr == "FR-I" else sm.fr2
        blobs = fn(rng, x, y, beam, sigma, 0.8 * n)
        out.append((_Planned("fr1" if fr == "FR-I" else "fr2", "EXTENDED", x, y, blobs,
                             radio_galaxy=True, fr_class=fr), sm.render_blobs(blobs, beam, bounds)))
        for _ in range(int(rng.poisson(1.0))):
            cx, cy = rng.uniform(0, n), rng.uniform(0, n)
            if math.hypot(cx - x, cy - y) < 0.3 * n:
                continue
            blobs = sm.compact(rng, cx, cy, beam, sigma, min(_snr_compact(rng), 30.0))
            out.append((_Planned("compact", "COMPACT", cx, cy, blobs), sm.render_blobs(blobs, beam, bounds)))
    return [(p, s) for p, s in out if s is not None]


# ------------------------------------------------------------------ truth records
def _sky_centre(rng) -> tuple[float, float]:
    ra = rng.uniform(0, 360)
    dec = math.degrees(math.asin(rng.uniform(-0.95, 0.95)))
    return round(ra, 6), round(dec, 6)


def _wcs(center, nx, ny, pix_arcsec):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = list(center)
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    w.wcs.cdelt = [-pix_arcsec / 3600, pix_arcsec / 3600]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def sky_boxes(wcs, boxes: np.ndarray) -> list[dict]:
    """Pixel-edge boxes (N×4: x0, y0, x1, y1) → sky centre and angular width/height (arcsec),
    measured as the model's boxes are (``skyregions.pixel_boxes_to_sky``)."""
    from glue_radiollava.core.skyregions import pixel_boxes_to_sky

    if len(boxes) == 0:
        return []
    ra, dec, width, height, _ = pixel_boxes_to_sky(boxes, wcs)
    return [{"ra": round(float(ra[i]), 7), "dec": round(float(dec[i]), 7),
             "width_arcsec": round(float(width[i]), 3), "height_arcsec": round(float(height[i]), 3)}
            for i in range(len(ra))]


def _sig(v: float, digits: int = 5) -> float:
    return float(f"{v:.{digits}g}")


def _object_truth(oid, p: _Planned, m: Measured, sky: dict, radec, survey: Survey) -> dict:
    if p.kind.startswith("artefact"):
        box_class = "SPURIOUS"
    elif p.kind == "compact":
        box_class = "COMPACT"
    else:
        box_class = "EXTENDED-MULTISLAND" if m.n_islands > 1 else "EXTENDED"
    labels = [p.label] + (["RADIO-GALAXY"] if p.radio_galaxy else []) + (["PECULIAR"] if p.peculiar else [])
    if p.blobs is not None:
        flux = float(np.sum(p.blobs.flux))
    else:
        flux = 0.0 if p.signed else float(np.nansum(p.stamp[0])) / _survey_beam(survey).area
    maj, mnr, pa = m.moments
    return {
        "id": oid, "kind": p.kind, "class": box_class, "labels": labels,
        "radio_galaxy": p.radio_galaxy, "peculiar": p.peculiar, "fr_class": p.fr_class,
        "n_islands": m.n_islands, "n_peaks": m.n_peaks, "smorph": smorph_of(m.n_islands, m.n_peaks),
        "x": round(m.centroid[0], 3), "y": round(m.centroid[1], 3),
        "ra": round(float(radec[0]), 7), "dec": round(float(radec[1]), 7),
        "pixel_box": [round(v, 1) for v in m.box], "sky_box": sky,
        "flux_jy": _sig(flux), "peak_jy": _sig(m.peak_jy), "peak_snr": round(m.peak_snr, 2),
        "area_px": m.area_px,
        "maj_arcsec": round(maj * survey.pixel_arcsec, 2), "min_arcsec": round(mnr * survey.pixel_arcsec, 2),
        "pa_deg": round(pa, 1),
    }


def _image_truth(name, scene, objects, bg_labels, finite, survey, center, shape, cfg) -> dict:
    labels = set(bg_labels)
    for o in objects:
        labels.update(o["labels"])
    if not objects:
        labels.add("BACKGROUND")
    ordered = [lab for lab in MULTILABELS if lab in labels]
    pec = peculiarity_of(labels)
    dominant = [o for o in objects if o["class"] in ("EXTENDED", "EXTENDED-MULTISLAND")]
    smorph = n_comp = n_peaks = fr = None
    if len(dominant) == 1:
        d = dominant[0]
        n_comp, n_peaks = d["n_islands"], d["n_peaks"]
        if d["kind"] in ("extended", "multi"):
            smorph = d["smorph"]
        fr = d["fr_class"]
    return {
        "sname": name, "filepath": f"images/{name}.fits", "scene": scene, "shape": list(shape),
        "survey": survey.name, "pixel_arcsec": survey.pixel_arcsec,
        "beam": {"major_arcsec": survey.bmaj_arcsec, "minor_arcsec": survey.bmin_arcsec,
                 "pa_deg": survey.bpa_deg},
        "noise_rms": survey.rms, "unit": "Jy/beam", "center": {"ra": center[0], "dec": center[1]},
        "blank_fraction": round(float(1 - finite.mean()), 4),
        "labels": ordered, "peculiarity": pec, "smorph": smorph, "n_components": n_comp,
        "n_peaks": n_peaks, "fr_class": fr, "objects": objects,
    }


def _catalogue_row(o: dict) -> dict:
    s = o["sky_box"]
    return {"Source_Name": o["id"], "RA": o["ra"], "DEC": o["dec"], "Maj": o["maj_arcsec"],
            "Min": o["min_arcsec"], "PA": o["pa_deg"], "Total_flux": o["flux_jy"], "Peak_flux": o["peak_jy"],
            "class": o["class"], "kind": o["kind"], "radio_galaxy": o["radio_galaxy"],
            "peculiar": o["peculiar"], "fr_class": o["fr_class"] or "", "n_islands": o["n_islands"],
            "n_peaks": o["n_peaks"], "x0": o["pixel_box"][0], "y0": o["pixel_box"][1],
            "x1": o["pixel_box"][2], "y1": o["pixel_box"][3], "box_ra": s["ra"], "box_dec": s["dec"],
            "box_width": s["width_arcsec"], "box_height": s["height_arcsec"]}


# ------------------------------------------------------------------ FITS
def _fits_cards(name, survey: Survey, center, nx, ny, seed, index) -> list:
    return [
        ("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", -32, ""), ("NAXIS", 2, ""),
        ("NAXIS1", nx, ""), ("NAXIS2", ny, ""), ("EXTEND", True, ""),
        ("BUNIT", "JY/BEAM", "surface brightness"), ("BTYPE", "Intensity", ""),
        ("BMAJ", survey.bmaj_arcsec / 3600, "beam major axis FWHM (deg)"),
        ("BMIN", survey.bmin_arcsec / 3600, "beam minor axis FWHM (deg)"),
        ("BPA", survey.bpa_deg, "beam position angle (deg)"),
        ("CTYPE1", "RA---SIN", ""), ("CRVAL1", center[0], ""), ("CDELT1", -survey.pixel_arcsec / 3600, ""),
        ("CRPIX1", (nx + 1) / 2, ""), ("CUNIT1", "deg", ""),
        ("CTYPE2", "DEC--SIN", ""), ("CRVAL2", center[1], ""), ("CDELT2", survey.pixel_arcsec / 3600, ""),
        ("CRPIX2", (ny + 1) / 2, ""), ("CUNIT2", "deg", ""), ("RADESYS", "ICRS", ""),
        ("RESTFRQ", survey.freq_hz, "Hz"), ("TELESCOP", "SIMULATED", f"like {survey.telescope}"),
        ("OBJECT", name, ""), ("ORIGIN", "glue-radiollava simulator", ""),
        ("SIMVERS", SIM_VERSION, "simulator version"), ("SIMSEED", int(seed), "series seed"),
        ("SIMINDEX", int(index), "image index in the series"), ("SURVEY", survey.name, "preset"),
        ("NOISERMS", survey.rms, "noise rms (Jy/beam) before patterns"),
    ]


def _card(key: str, value, comment: str = "") -> str:
    """One 80-character FITS header card (fixed format) for a bool, int, float or short string."""
    if isinstance(value, bool):
        text = ("T" if value else "F").rjust(20)
    elif isinstance(value, (int, np.integer)):
        text = str(int(value)).rjust(20)
    elif isinstance(value, (float, np.floating)):
        num = next(t for t in (f"{float(value):.{d}G}" for d in range(17, 9, -1)) if len(t) <= 20)
        if "." not in num and "E" not in num:
            num += ".0"
        text = num.rjust(20)
    else:
        text = ("'" + str(value).replace("'", "''").ljust(8) + "'").ljust(20)
    card = f"{key:<8}= {text}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80)


def fits_bytes(data: np.ndarray, cards: list) -> bytes:
    """A primary-HDU FITS file as bytes (float32, big-endian), without astropy's slower writer."""
    header = "".join(_card(k, v, c) for k, v, c in cards) + "END".ljust(80)
    header += " " * (-len(header) % 2880)
    raw = np.ascontiguousarray(data, dtype=">f4").tobytes()
    return header.encode("ascii") + raw + b"\0" * (-len(raw) % 2880)


def _write_json(path: Path, obj, indent=None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, separators=(",", ":") if indent is None else None)
                         + "\n").encode())


# ------------------------------------------------------------------ a whole series
def _work(args):
    seed, index, cfg = args
    img = make_image(seed, index, cfg)
    return img.name, fits_bytes(img.data, img.cards), img.truth, img.catalogue_rows


OUTPUT_FILES = ("labels.json", "peculiarity.json", "smorph.json", "frclass.json", "objects.json")


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """A new or empty folder; with ``overwrite``, an earlier simulation there is removed first."""
    if out.exists() and not out.is_dir():
        raise RadioLlavaError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RadioLlavaError(f"{out} is not empty; choose a new folder, or --overwrite to replace "
                                  "an earlier simulation there")
        if not (out / "objects.json").is_file():
            raise RadioLlavaError(f"{out} holds no simulation (no objects.json); not overwriting it")
        for p in list((out / "images").glob("*.fits")) + list(out.glob("mosaic_*.ecsv")):
            p.unlink()
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)


def write_simulation(out: str | Path, n: int, seed: int = 0, cfg: SimConfig | None = None,
                     workers: int = 1, progress: bool = True, overwrite: bool = False) -> dict:
    """Simulate ``n`` images into folder ``out``; returns a summary (counts per label)."""
    cfg = (cfg or SimConfig()).check()
    if n < 1:
        raise RadioLlavaError(f"--n {n}: give at least one image")
    out = Path(out)
    _prepare_folder(out, overwrite)
    jobs = [(seed, i, cfg) for i in range(n)]
    truths, catalogues = [], {}
    from tqdm import tqdm

    bar = tqdm(total=n, desc="simulate", unit="img", disable=None if progress else True)
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers)
        results = pool.imap(_work, jobs, chunksize=16)
    else:
        pool, results = None, map(_work, jobs)
    try:
        for name, payload, truth, rows in results:
            atomic_write_bytes(out / truth["filepath"], payload)
            truths.append(truth)
            if cfg.mosaic:
                catalogues[name] = rows
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    for name, rows in catalogues.items():
        write_catalogue(out / f"{name}.ecsv", rows)
    return write_label_files(out, truths, seed, cfg)


def write_catalogue(path: Path, rows: list[dict]) -> None:
    """An ECSV source catalogue (LoTSS-like column names plus exact classes and boxes)."""
    import astropy.units as u
    from astropy.table import Table

    blank = {"id": "", "ra": 0, "dec": 0, "maj_arcsec": 0, "min_arcsec": 0, "pa_deg": 0, "flux_jy": 0,
             "peak_jy": 0, "class": "", "kind": "", "radio_galaxy": False, "peculiar": False, "fr_class": "",
             "n_islands": 0, "n_peaks": 0, "pixel_box": [0, 0, 0, 0],
             "sky_box": {"ra": 0, "dec": 0, "width_arcsec": 0, "height_arcsec": 0}}
    names = list(_catalogue_row(blank))
    t = Table(rows=[[r[k] for k in names] for r in rows] if rows else None, names=names,
              dtype=None if rows else ["U1"] * len(names))
    units = {"RA": u.deg, "DEC": u.deg, "Maj": u.arcsec, "Min": u.arcsec, "PA": u.deg, "Total_flux": u.Jy,
             "Peak_flux": u.Jy / u.beam, "box_ra": u.deg, "box_dec": u.deg, "box_width": u.arcsec,
             "box_height": u.arcsec}
    if rows:
        for k, unit in units.items():
            t[k].unit = unit
    t.meta["comments"] = ["Simulated sources: exact classes and boxes (x0 y0 x1 y1: 0-based pixel edges).",
                          "Maj/Min/PA: FWHM and position angle from the intensity moments of each source."]
    atomic_write(path, lambda tmp: t.write(tmp, format="ascii.ecsv", overwrite=True))


def write_label_files(out: Path, truths: list[dict], seed: int, cfg: SimConfig) -> dict:
    """labels.json, peculiarity.json, smorph.json, frclass.json and objects.json; returns a summary."""
    def coarse(key):
        return {"data": [{"sname": t["sname"], "filepaths": [t["filepath"]], "label": t[key]}
                         for t in truths if t[key] is not None]}

    _write_json(out / "labels.json", coarse("labels"), indent=1)
    _write_json(out / "peculiarity.json", coarse("peculiarity"), indent=1)
    files = ["labels.json", "peculiarity.json"]
    for key, fname in (("smorph", "smorph.json"), ("fr_class", "frclass.json")):
        data = coarse(key)
        if data["data"]:
            _write_json(out / fname, data, indent=1)
            files.append(fname)
    meta = {"simulator": {"version": SIM_VERSION, "seed": int(seed), "config": cfg.to_dict(),
                          "survey": asdict(SURVEYS[cfg.survey]),
                          "truth_rule": "islands: 4-connected pixels > 3 sigma holding a pixel > 5 sigma; "
                                        "boxes: pixel edges x0 y0 x1 y1 (pixel i spans i-0.5..i+0.5)"},
            "images": truths}
    _write_json(out / "objects.json", meta)
    files.append("objects.json")
    counts = {lab: sum(lab in t["labels"] for t in truths) for lab in MULTILABELS}
    return {"images": len(truths), "objects": sum(len(t["objects"]) for t in truths),
            "labels": counts, "files": files, "folder": str(out)}


def config_for(size: int | None = None, scene: str = "field", survey: str = "lotss",
               mosaic: bool = False) -> SimConfig:
    """A config with the CLI's defaults: 128 px cutouts, 1024 px mosaics."""
    return replace(SimConfig(), size=int(size or (1024 if mosaic else 128)), scene=scene, survey=survey,
                   mosaic=mosaic).check()


def sample_mosaic(folder: str | Path | None = None, seed: int = 2026, size: int = 1024) -> Path:
    """A simulated LoTSS-like mosaic for the demo, written once into a cache folder; its path."""
    folder = Path(folder or Path.home() / ".cache" / "glue-radiollava" / f"sample-mosaic-{seed}-{size}")
    existing = sorted(folder.glob("images/mosaic_*.fits")) if folder.is_dir() else []
    if existing:
        return existing[0]
    write_simulation(folder, 1, seed=seed, cfg=config_for(size=size, mosaic=True), progress=False,
                     overwrite=True)
    found = sorted(folder.glob("images/mosaic_*.fits"))
    if not found:
        raise RadioLlavaError(f"{folder}: the simulator wrote no mosaic")
    return found[0]
