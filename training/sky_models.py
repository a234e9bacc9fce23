"""Radio source models for the simulator: noise-free, beam-convolved pixel stamps.

Units: positions and sizes in image pixels (0-based, pixel centres on integers, arrays indexed
``[y, x]``), brightness in Jy/beam. Position angles are east of north with north = +y and
east = -x (RA grows to the left, as in a standard sky image).

Most sources are mixtures of elliptical Gaussians ("blobs"); convolving a Gaussian with the
Gaussian beam is exact (the covariances add), so their stamps cost one ``exp`` per pixel and
component. Fields (large diffuse emission, artefact patterns, noise) are smoothed with the beam in
Fourier space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from glue_radiollava.core.labels import SMORPH

FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian
SMORPH_CLASSES = SMORPH


@dataclass(frozen=True)
class PixelBeam:
    """The restoring beam in pixels: FWHM axes and position angle (degrees, east of north)."""

    major: float
    minor: float
    pa_deg: float = 0.0

    @property
    def cov(self) -> tuple[float, float, float]:
        cxx, cyy, cxy = covariance(self.major, self.minor, self.pa_deg)
        return float(cxx), float(cyy), float(cxy)

    @property
    def area(self) -> float:
        """Beam area in pixels (2π σ_maj σ_min)."""
        return 2 * math.pi * (self.major / FWHM) * (self.minor / FWHM)

    @property
    def size(self) -> float:
        """Geometric-mean FWHM in pixels."""
        return math.sqrt(self.major * self.minor)


def covariance(major, minor, pa_deg):
    """Covariance terms (cxx, cyy, cxy) of Gaussians with FWHM axes ``major``/``minor`` (arrays ok)."""
    t = np.radians(pa_deg)
    ux, uy = -np.sin(t), np.cos(t)          # major axis direction (north through east)
    vx, vy = np.cos(t), np.sin(t)
    a, b = (np.asarray(major, float) / FWHM) ** 2, (np.asarray(minor, float) / FWHM) ** 2
    return a * ux * ux + b * vx * vx, a * uy * uy + b * vy * vy, a * ux * uy + b * vx * vy


@dataclass
class Blobs:
    """Elliptical Gaussian components: centre, integrated flux (Jy), intrinsic FWHM (0 = point)."""

    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    flux: list = field(default_factory=list)
    major: list = field(default_factory=list)
    minor: list = field(default_factory=list)
    pa: list = field(default_factory=list)

    def add(self, x, y, flux, major=0.0, minor=None, pa=0.0) -> "Blobs":
        self.x.append(float(x))
        self.y.append(float(y))
        self.flux.append(float(flux))
        self.major.append(float(major))
        self.minor.append(float(major if minor is None else minor))
        self.pa.append(float(pa))
        return self

    def __len__(self) -> int:
        return len(self.x)


def peak_to_flux(peak: float, major: float, minor: float, beam: PixelBeam) -> float:
    """Integrated flux of a Gaussian whose beam-convolved peak is ``peak`` Jy/beam."""
    return peak / _peak_per_flux(major, minor, 0.0, beam)


def _peak_per_flux(major, minor, pa, beam: PixelBeam):
    bxx, byy, bxy = beam.cov
    cxx, cyy, cxy = covariance(major, minor, pa)
    det = (cxx + bxx) * (cyy + byy) - (cxy + bxy) ** 2
    return np.sqrt((bxx * byy - bxy * bxy) / det)


def render_blobs(blobs: Blobs, beam: PixelBeam, bounds: tuple[int, int, int, int],
                 trunc: float = 4.5) -> tuple[np.ndarray, int, int] | None:
    """Beam-convolved stamp of ``blobs`` (Jy/beam) clipped to ``bounds`` = (x0, y0, x1, y1).

    Returns ``(stamp, x0, y0)`` or None when nothing falls inside the bounds.
    """
    x, y, flux = (np.asarray(v, float) for v in (blobs.x, blobs.y, blobs.flux))
    maj, mnr, pa = (np.asarray(v, float) for v in (blobs.major, blobs.minor, blobs.pa))
    bxx, byy, bxy = beam.cov
    cxx, cyy, cxy = covariance(maj, mnr, pa)
    cxx, cyy, cxy = cxx + bxx, cyy + byy, cxy + bxy
    det = cxx * cyy - cxy * cxy
    peak = flux * np.sqrt((bxx * byy - bxy * bxy) / det)
    hx, hy = trunc * np.sqrt(cxx), trunc * np.sqrt(cyy)
    X0 = max(bounds[0], int(np.floor(np.min(x - hx))))
    Y0 = max(bounds[1], int(np.floor(np.min(y - hy))))
    X1 = min(bounds[2], int(np.ceil(np.max(x + hx))) + 1)
    Y1 = min(bounds[3], int(np.ceil(np.max(y + hy))) + 1)
    if X1 <= X0 or Y1 <= Y0:
        return None
    ny, nx = Y1 - Y0, X1 - X0
    ia, ib, ic = cyy / det, cxx / det, -2 * cxy / det   # inverse covariance: a dx² + b dy² + c dx dy
    if len(x) * nx * ny <= 250_000:                     # few components: one broadcast over the stamp
        dx = (np.arange(X0, X1)[None, None, :] - x[:, None, None])
        dy = (np.arange(Y0, Y1)[None, :, None] - y[:, None, None])
        q = ia[:, None, None] * dx * dx + ib[:, None, None] * dy * dy + ic[:, None, None] * dx * dy
        return np.einsum("i,ijk->jk", peak, np.exp(-0.5 * q)), X0, Y0
    stamp = np.zeros((ny, nx))
    for i in range(len(x)):                              # many components: each on its own window
        wx0, wx1 = max(X0, int(np.floor(x[i] - hx[i]))), min(X1, int(np.ceil(x[i] + hx[i])) + 1)
        wy0, wy1 = max(Y0, int(np.floor(y[i] - hy[i]))), min(Y1, int(np.ceil(y[i] + hy[i])) + 1)
        if wx1 <= wx0 or wy1 <= wy0:
            continue
        dx = np.arange(wx0, wx1)[None, :] - x[i]
        dy = np.arange(wy0, wy1)[:, None] - y[i]
        q = ia[i] * dx * dx + ib[i] * dy * dy + ic[i] * dx * dy
        stamp[wy0 - Y0:wy1 - Y0, wx0 - X0:wx1 - X0] += peak[i] * np.exp(-0.5 * q)
    return stamp, X0, Y0


# ------------------------------------------------------------------ Fourier-space helpers
def beam_transfer(shape: tuple[int, int], beam: PixelBeam, extra_sigma: float = 0.0) -> np.ndarray:
    """Fourier transfer function (rfft2 layout) of the beam, optionally widened by a round Gaussian."""
    bxx, byy, bxy = beam.cov
    s2 = extra_sigma ** 2
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    return np.exp(-2 * math.pi ** 2 * ((bxx + s2) * kx * kx + (byy + s2) * ky * ky + 2 * bxy * kx * ky))


def smooth(field_: np.ndarray, beam: PixelBeam, extra_sigma: float = 0.0) -> np.ndarray:
    """Convolve ``field_`` with the beam (a unit-sum kernel, periodic edges) by FFT."""
    h = beam_transfer(field_.shape, beam, extra_sigma)
    return np.fft.irfft2(np.fft.rfft2(field_) * h, s=field_.shape)


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int], beam: PixelBeam) -> np.ndarray:
    """White noise convolved with the beam, scaled to unit rms (analytically, so it is exact on average)."""
    h = beam_transfer(shape, beam)
    white = rng.standard_normal(shape)
    out = np.fft.irfft2(np.fft.rfft2(white) * h, s=shape)
    # variance of filtered white noise: mean over the full spectrum of |H|^2 (rfft halves doubled)
    w = np.full(h.shape[1], 2.0)
    w[0] = 1.0
    if shape[1] % 2 == 0:
        w[-1] = 1.0
    var = float((np.abs(h) ** 2 * w[None, :]).sum()) / (shape[0] * shape[1])
    return out / math.sqrt(var)


def sidelobe_pattern(rng: np.random.Generator, shape: tuple[int, int], beam: PixelBeam, kind: str) -> np.ndarray:
    """Unit-rms texture of residual sidelobes: ``ripples`` (a few plane waves of 1.5–3 beams under
    a smooth random envelope, as in LOFAR/ASKAP images) or ``streaks`` (long straight lines at
    60° from one another, as the VLA snowflake pattern leaves in FIRST images)."""
    ny, nx = shape
    out = np.zeros(shape)
    if kind == "ripples":                 # white noise through a few narrow band-passes: wave packets
        ky = np.fft.fftfreq(ny)[:, None]
        kx = np.fft.rfftfreq(nx)[None, :]
        h = np.zeros((ny, nx // 2 + 1))
        for _ in range(int(rng.integers(3, 7))):
            a = rng.uniform(0, math.pi)
            k = 1.0 / (beam.size * rng.uniform(1.5, 3.0))
            w = 0.12 * k
            for sgn in (1, -1):
                h += np.exp(-((kx - sgn * k * math.cos(a)) ** 2 + (ky - sgn * k * math.sin(a)) ** 2) / (2 * w * w))
        out = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * h, s=shape)
    elif kind == "streaks":
        yy, xx = np.mgrid[0:ny, 0:nx]
        base = rng.uniform(0, math.pi / 3)
        for _ in range(int(rng.integers(3, 9))):
            a = base + math.pi / 3 * int(rng.integers(3))
            d = (xx - rng.uniform(0, nx)) * math.sin(a) - (yy - rng.uniform(0, ny)) * math.cos(a)
            out += rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) * np.exp(-0.5 * (d / (0.4 * beam.size)) ** 2)
        out = smooth(out, beam)
    else:
        raise ValueError(f"unknown sidelobe pattern {kind!r}")
    return out / (out.std() + 1e-30)


def random_field(rng: np.random.Generator, shape: tuple[int, int], slope: float, scale: float) -> np.ndarray:
    """A Gaussian random field with power spectrum ∝ (k² + k0²)^(-slope/2), k0 = 1/scale; unit rms."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    amp = (kx * kx + ky * ky + (1.0 / scale) ** 2) ** (-slope / 4)
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * amp, s=shape)
    return (f - f.mean()) / (f.std() + 1e-30)


# ------------------------------------------------------------------ source builders
# Every builder takes the rng, a centre (x, y) in image pixels, the beam, the noise rms (Jy/beam)
# and a size limit in pixels, and returns Blobs (or, for fields, a stamp). Brightness is set as a
# signal-to-noise ratio of the beam-convolved peak.

def _comp_flux(snr: float, sigma: float, major: float, minor: float, beam: PixelBeam) -> float:
    return peak_to_flux(snr * sigma, major, minor, beam)


def compact(rng, x, y, beam: PixelBeam, sigma: float, snr: float) -> Blobs:
    """A point source or a slightly resolved one (intrinsic FWHM ≤ 1.2 beams)."""
    if rng.random() < 0.4:
        major = beam.size * rng.uniform(0.3, 1.2)
        minor = major * rng.uniform(0.5, 1.0)
    else:
        major = minor = 0.0
    pa = rng.uniform(0, 180)
    flux = _comp_flux(snr, sigma, major, minor, beam)
    return Blobs().add(x, y, flux, major, minor, pa)


def _blob_extent(snr: float, major: float, beam: PixelBeam) -> float:
    """Radius (px) of the 3σ contour of a round-ish blob along its major axis."""
    s = math.sqrt((major / FWHM) ** 2 + (beam.major / FWHM) ** 2)
    return s * math.sqrt(2 * math.log(max(snr / 3.0, 1.0001)))


def smorph_source(rng, cls: str, x, y, beam: PixelBeam, sigma: float, max_extent: float,
                  zoom: float = 1.0) -> Blobs:
    """A source aimed at an rgz-smorph class (islands C, peaks P): 1C-1P … 3C-3P.

    ``zoom`` scales component sizes and gaps (a zoomed-in cutout shows the source bigger).
    The class is a target: the simulator measures the rendered model and keeps (or redraws) it.
    """
    b = beam.size * zoom
    theta = rng.uniform(0, 2 * math.pi)
    ux, uy = math.cos(theta), math.sin(theta)
    blobs = Blobs()

    def blob(px, py, snr, size):
        major = size * rng.uniform(1.0, 1.6)
        minor = size * rng.uniform(0.6, 1.0)
        pa = rng.uniform(0, 180)
        blobs.add(px, py, _comp_flux(snr, sigma, major, minor, beam), major, minor, pa)
        return major

    def close_pair(cx, cy, snr1, snr2, size, direction):
        """Two blobs that share one island but keep two peaks."""
        tot = math.sqrt(size ** 2 + beam.size ** 2)
        d = tot * rng.uniform(1.25, 1.7)
        dx, dy = direction
        blob(cx - dx * d / 2, cy - dy * d / 2, snr1, size)
        blob(cx + dx * d / 2, cy + dy * d / 2, snr2, size)
        return d / 2 + _blob_extent(max(snr1, snr2), size * 1.6, beam)

    snr = lambda lo=12, hi=90: float(np.exp(rng.uniform(math.log(lo), math.log(hi))))  # noqa: E731
    size = b * rng.uniform(0.4, 1.2)
    if cls == "1C-1P":
        major = min(b * rng.uniform(2.0, 5.0), max_extent / 2)
        minor = major * rng.uniform(0.35, 0.8)
        blobs.add(x, y, _comp_flux(snr(8, 80), sigma, major, minor, beam), major, minor,
                  math.degrees(theta))
    elif cls == "1C-2P":
        close_pair(x, y, snr(15, 90), snr(15, 90), size, (ux, uy))
    elif cls == "1C-3P":
        tot = math.sqrt(size ** 2 + beam.size ** 2)
        d = tot * rng.uniform(1.35, 1.7)
        bend = rng.uniform(-0.4, 0.4)
        for k, s in ((-1, snr(15, 80)), (0, snr(15, 80)), (1, snr(15, 80))):
            ang = theta + (bend if k else 0.0) * (k != 0)
            blob(x + k * d * math.cos(ang), y + k * d * math.sin(ang), s, size)
    else:
        # separate islands: a gap of ≥ 1.5 beams between 3σ contours
        s1, s2, s3 = snr(10, 90), snr(10, 90), snr(10, 90)
        r = max(_blob_extent(s, size * 1.6, beam) for s in (s1, s2, s3))
        if cls == "2C-2P":
            d = 2 * r + b * rng.uniform(1.5, 4.0)
            blob(x - ux * d / 2, y - uy * d / 2, s1, size)
            blob(x + ux * d / 2, y + uy * d / 2, s2, size)
        elif cls == "2C-3P":
            perp = (-uy, ux) if rng.random() < 0.5 else (ux, uy)
            half = close_pair(x - ux * r, y - uy * r, max(s1, 15), max(s2, 15), size, perp)
            d = half + r + b * rng.uniform(1.5, 4.0)
            blob(x - ux * r + ux * d, y - uy * r + uy * d, s3, size)
        elif cls == "3C-3P":
            d = 2 * r + b * rng.uniform(1.5, 3.5)
            blob(x, y, s1, size * 0.6)
            for sign, s in ((1, s2), (-1, s3)):
                ang = theta + (0 if sign > 0 else math.pi) + rng.uniform(-0.35, 0.35)
                dd = d * rng.uniform(0.85, 1.15)
                blob(x + dd * math.cos(ang), y + dd * math.sin(ang), s, size)
        else:
            raise ValueError(f"unknown rgz-smorph class {cls!r}")
    return _fit_extent(blobs, x, y, max_extent)


def _fit_extent(blobs: Blobs, x, y, max_extent: float) -> Blobs:
    """Shrink positions towards (x, y) when the source is wider than ``max_extent`` pixels."""
    xs, ys = np.asarray(blobs.x), np.asarray(blobs.y)
    span = max(np.ptp(xs) if len(xs) else 0, np.ptp(ys) if len(ys) else 0) + 2 * max(blobs.major or [0])
    if span > max_extent > 0:
        f = max_extent / span
        blobs.x = list(x + (xs - x) * f)
        blobs.y = list(y + (ys - y) * f)
        blobs.major = [m * f for m in blobs.major]
        blobs.minor = [m * f for m in blobs.minor]
    return blobs


def _path(rng, x, y, angle, length, step, curvature):
    """Points along a smoothly bending path from (x, y)."""
    n = max(2, int(length / step))
    turn = np.cumsum(rng.normal(curvature, abs(curvature) * 0.5 + 0.01, n)) * step
    ang = angle + turn
    px = x + np.cumsum(np.cos(ang)) * step
    py = y + np.cumsum(np.sin(ang)) * step
    s = np.arange(1, n + 1) * step
    return px, py, ang, s


def fr1(rng, x, y, beam: PixelBeam, sigma: float, max_extent: float) -> Blobs:
    """FR-I: a bright core and two jets that fade and widen outward (possibly bent, as tails)."""
    b = beam.size
    blobs = Blobs()
    core = float(np.exp(rng.uniform(math.log(25), math.log(250))))
    blobs.add(x, y, _comp_flux(core, sigma, 0.0, 0.0, beam))
    length = min(max_extent / 2, b * rng.uniform(2.5, 8))
    theta = rng.uniform(0, 2 * math.pi)
    bend = rng.choice([-1, 1]) * rng.uniform(0.0, 0.06) / b   # tails bend to the same side
    start = core * rng.uniform(0.25, 0.5)
    for side in (0, math.pi):
        curv = bend if side == 0 else -bend
        px, py, ang, s = _path(rng, x, y, theta + side + rng.uniform(-0.2, 0.2), length, 0.45 * b, curv)
        frac = s / length
        level = start * (1 + 4 * frac) ** -1.6 * rng.uniform(0.8, 1.0)
        level = np.maximum(level, 3.5)  # jets reach the noise but stay visible
        width = b * (0.3 + 2.4 * frac)
        for xi, yi, ai, li, wi in zip(px, py, ang, level, width):
            blobs.add(xi, yi, _comp_flux(li * 0.45, sigma, wi * 1.4, wi, beam), wi * 1.4, wi,
                      math.degrees(ai) - 90)
    return blobs


def fr2(rng, x, y, beam: PixelBeam, sigma: float, max_extent: float) -> Blobs:
    """FR-II: edge-brightened lobes with compact hotspots at their outer ends; a faint core or none."""
    b = beam.size
    blobs = Blobs()
    half = min(max_extent / 2 - b, b * rng.uniform(2.5, 9))
    theta = rng.uniform(0, 2 * math.pi)
    if rng.random() < 0.6:
        blobs.add(x, y, _comp_flux(rng.uniform(6, 25), sigma, 0.0, 0.0, beam))
    for side in (0.0, math.pi):
        ang = theta + side + rng.uniform(-0.12, 0.12)
        L = half * rng.uniform(0.8, 1.0)
        ca, sa = math.cos(ang), math.sin(ang)
        hot = float(np.exp(rng.uniform(math.log(20), math.log(200))))
        blobs.add(x + L * ca, y + L * sa, _comp_flux(hot, sigma, b * 0.3, b * 0.3, beam), b * 0.3, b * 0.3)
        if rng.random() < 0.3:   # a secondary hotspot
            blobs.add(x + 0.9 * L * ca + b * sa * 0.6, y + 0.9 * L * sa - b * ca * 0.6,
                      _comp_flux(hot * 0.3, sigma, 0.0, 0.0, beam))
        for f in np.linspace(0.35, 0.92, 6):    # lobe: broad, brighter towards the hotspot
            w = b * rng.uniform(1.3, 2.6) * (1.3 - 0.5 * f)
            lvl = max(hot * 0.06 * (0.3 + f), 5.0)
            blobs.add(x + f * L * ca, y + f * L * sa, _comp_flux(lvl, sigma, w * 1.5, w, beam),
                      w * 1.5, w, math.degrees(ang) - 90)
    return blobs


def diffuse(rng, x, y, beam: PixelBeam, sigma: float, size: float) -> Blobs:
    """A small roundish diffuse source: a few broad overlapping blobs, low surface brightness."""
    blobs = Blobs()
    for _ in range(int(rng.integers(3, 7))):
        w = size * rng.uniform(0.5, 0.9)
        dx, dy = rng.normal(0, size * 0.12, 2)
        lvl = rng.uniform(2.5, 5.0)
        blobs.add(x + dx, y + dy, _comp_flux(lvl, sigma, w, w * rng.uniform(0.75, 1.0), beam),
                  w, w * rng.uniform(0.75, 1.0), rng.uniform(0, 180))
    return blobs


def filament(rng, x, y, beam: PixelBeam, sigma: float, length: float) -> Blobs:
    """A long, thin, gently curved filament (width about a beam) with slowly varying brightness."""
    b = beam.size
    theta = rng.uniform(0, 2 * math.pi)
    sx, sy = x - math.cos(theta) * length / 2, y - math.sin(theta) * length / 2
    px, py, ang, s = _path(rng, sx, sy, theta, length, 0.4 * b, rng.normal(0, 0.4 / length))
    phase = rng.uniform(0, 2 * math.pi)
    level = rng.uniform(3.0, 6.0) * (0.7 + 0.3 * np.sin(2 * math.pi * s / (length * 0.6) + phase))
    blobs = Blobs()
    w = b * rng.uniform(0.3, 1.0)
    for xi, yi, ai, li in zip(px, py, ang, level):
        blobs.add(xi, yi, _comp_flux(li * 0.5, sigma, b, w, beam), b, w, math.degrees(ai) - 90)
    return blobs


def ring(rng, x, y, beam: PixelBeam, sigma: float, radius: float) -> Blobs:
    """A peculiar ring of emission (like an odd radio circle), brighter on one side; maybe a host."""
    b = beam.size
    n = max(8, int(2 * math.pi * radius / (0.45 * b)))
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    bright = rng.uniform(0, 2 * math.pi)
    level = rng.uniform(6, 14) * (0.75 + 0.25 * np.cos(a - bright))
    w = b * rng.uniform(0.6, 1.4)
    blobs = Blobs()
    for ai, li in zip(a, level):
        blobs.add(x + radius * math.cos(ai), y + radius * math.sin(ai),
                  _comp_flux(li * 0.5, sigma, w, w, beam), w, w)
    if rng.random() < 0.5:
        blobs.add(x, y, _comp_flux(rng.uniform(8, 40), sigma, 0.0, 0.0, beam))
    return blobs


def x_shaped(rng, x, y, beam: PixelBeam, sigma: float, max_extent: float) -> Blobs:
    """An X-shaped radio galaxy: a main pair of lobes and a fainter pair at a large angle."""
    b = beam.size
    blobs = Blobs()
    blobs.add(x, y, _comp_flux(rng.uniform(20, 120), sigma, 0.0, 0.0, beam))
    theta = rng.uniform(0, 2 * math.pi)
    for ang0, L, lvl in ((theta, max_extent * rng.uniform(0.3, 0.45), rng.uniform(15, 60)),
                         (theta + rng.uniform(0.7, 1.3), max_extent * rng.uniform(0.2, 0.35),
                          rng.uniform(5, 12))):
        for side in (0.0, math.pi):
            ca, sa = math.cos(ang0 + side), math.sin(ang0 + side)
            for f in np.linspace(0.25, 1.0, 5):
                w = b * rng.uniform(0.8, 1.6)
                blobs.add(x + f * L * ca, y + f * L * sa, _comp_flux(lvl * 0.5, sigma, w * 1.4, w, beam),
                          w * 1.4, w, math.degrees(ang0) - 90)
    return blobs


def irregular(rng, x, y, beam: PixelBeam, sigma: float, size: float) -> Blobs:
    """A peculiar irregular complex: a random walk of blobs of varied size and brightness."""
    b = beam.size
    blobs = Blobs()
    px, py = x, y
    for _ in range(int(rng.integers(8, 20))):
        w = b * rng.uniform(0.5, 3.0)
        blobs.add(px, py, _comp_flux(rng.uniform(4, 20), sigma, w, w * rng.uniform(0.4, 1), beam),
                  w, w * rng.uniform(0.4, 1), rng.uniform(0, 180))
        px = float(np.clip(px + rng.normal(0, b * 1.2), x - size / 2, x + size / 2))
        py = float(np.clip(py + rng.normal(0, b * 1.2), y - size / 2, y + size / 2))
    return blobs


def diffuse_large(rng, x, y, beam: PixelBeam, sigma: float, radius: float,
                  bounds: tuple[int, int, int, int]) -> tuple[np.ndarray, int, int]:
    """Large irregular diffuse emission: a smooth random field under a lumpy soft envelope."""
    X0, Y0 = max(bounds[0], int(x - 1.3 * radius)), max(bounds[1], int(y - 1.3 * radius))
    X1, Y1 = min(bounds[2], int(x + 1.3 * radius) + 1), min(bounds[3], int(y + 1.3 * radius) + 1)
    shape = (Y1 - Y0, X1 - X0)
    g = random_field(rng, shape, slope=3.5, scale=radius / 2)
    yy, xx = np.mgrid[Y0:Y1, X0:X1]
    r = np.hypot(xx - x, yy - y)
    phi = np.arctan2(yy - y, xx - x)
    k = np.arange(1, 5)
    coef = rng.normal(0, 0.18, 4) / k
    phase = rng.uniform(0, 2 * math.pi, 4)
    edge = radius * (1 + (coef[:, None, None] * np.cos(k[:, None, None] * phi + phase[:, None, None])).sum(0))
    envelope = 1.0 / (1.0 + np.exp((r / edge - 1.0) / 0.08))
    f = np.clip(1.0 + 0.6 * g, 0, None) * envelope
    f = smooth(f, beam, extra_sigma=beam.size)
    f *= rng.uniform(4.5, 9.0) * sigma / max(float(f.max()), 1e-30)
    return f, X0, Y0


def artefact(rng, x, y, beam: PixelBeam, sigma: float, level: float, radius: float, kind: str,
             bounds: tuple[int, int, int, int]) -> tuple[np.ndarray, int, int]:
    """Imaging artefacts around a bright source at (x, y): ``ring`` (concentric ripples) or
    ``spokes`` (radial rays of alternating sign). ``level``: peak |pattern| in units of sigma."""
    b = beam.size
    X0, Y0 = max(bounds[0], int(x - radius)), max(bounds[1], int(y - radius))
    X1, Y1 = min(bounds[2], int(x + radius) + 1), min(bounds[3], int(y + radius) + 1)
    yy, xx = np.mgrid[Y0:Y1, X0:X1]
    r = np.hypot(xx - x, yy - y)
    phi = np.arctan2(yy - y, xx - x)
    taper = (1 - np.exp(-(r / (1.5 * b)) ** 2)) * np.exp(-((r / radius) ** 4))
    if kind == "ring":
        lam = b * rng.uniform(2.0, 4.0)
        f = np.cos(2 * math.pi * r / lam + rng.uniform(0, 2 * math.pi)) * np.exp(-r / (radius * 0.45))
        f *= 1 + 0.3 * np.cos(phi * int(rng.integers(2, 7)) + rng.uniform(0, 6.3))
    else:
        m = int(rng.integers(3, 7))
        rays = np.zeros_like(r)
        base = rng.uniform(0, math.pi / m)
        width = 0.45 * b
        for j in range(2 * m):
            a = base + j * math.pi / m
            d = r * np.abs(np.sin(phi - a))
            front = np.cos(phi - a) > 0
            rays += (1 if j % 2 == 0 else -0.7) * np.exp(-0.5 * (d / width) ** 2) * front
        f = rays / (1 + r / (radius * 0.35))
    f = smooth(f * taper, beam)
    f *= level * sigma / max(float(np.abs(f).max()), 1e-30)
    return f, X0, Y0
