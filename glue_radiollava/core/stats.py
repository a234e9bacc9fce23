"""Statistics of a cutout, as CARTA and DS9 show them beside a region: peak, integrated flux
density (the pixel sum over the beam area, for Jy/beam images), sigma-clipped rms, the beam and how
many beams fit across the region."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# image units per beam → factor to Jy (BUNIT as surveys write it, case-insensitive)
_PER_BEAM = {"jy/beam": 1.0, "mjy/beam": 1e-3, "ujy/beam": 1e-6, "µjy/beam": 1e-6}


@dataclass
class RegionStats:
    unit: str                    # the image's BUNIT
    peak: float                  # in the image's unit
    rms: float                   # sigma-clipped (3σ) standard deviation, image unit
    flux_jy: float | None        # integrated flux density; None without a beam or a per-beam unit
    beam: object | None          # core Beam (FWHM arcsec, PA deg)
    beams_across: float | None   # the region's longer side over the beam's major axis
    pixels: int                  # finite pixels used

    def lines(self) -> list[str]:
        """Two short lines for a panel or a terminal (``HOW`` says how each figure is measured)."""
        unit = self.unit or "(no BUNIT)"
        sigma = f" ({self.peak / self.rms:.0f}σ)" if self.rms > 0 else ""
        out = [f"peak {_si(self.peak)} {unit}{sigma} · rms {_si(self.rms)}"]
        second = []
        if self.flux_jy is not None:
            second.append(f"flux {_si(self.flux_jy)} Jy")
        if self.beam is not None:
            b = self.beam
            second.append(f"beam {b.major_arcsec:.1f}″×{b.minor_arcsec:.1f}″ PA {b.pa_deg:.0f}°, "
                          f"{self.beams_across:.1f} across")
        if second:
            out.append(" · ".join(second))
        return out


HOW = ("rms: 3σ-clipped standard deviation of the region's pixels; flux: their sum over the beam "
       "area (π·BMAJ·BMIN / 4 ln 2), for Jy/beam images; across: the region's longer side in beams")


def _si(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-2 or value == 0 else f"{value:.3e}"


def beam_area_pixels(beam, pixel_scale_arcsec: tuple[float, float]) -> float:
    """The area of a Gaussian beam (π·a·b / 4 ln 2, FWHM axes) in pixels."""
    sx, sy = pixel_scale_arcsec
    return math.pi * beam.major_arcsec * beam.minor_arcsec / (4 * math.log(2)) / (sx * sy)


def region_statistics(cutout) -> RegionStats:
    """The statistics of a core ``Cutout`` (all its finite pixels; padding off the image is NaN)."""
    from astropy.stats import sigma_clipped_stats

    image = cutout.image
    data = np.asarray(cutout.data, dtype=np.float64)
    finite = data[np.isfinite(data)]
    _, _, rms = sigma_clipped_stats(finite, sigma=3.0, maxiters=10)
    beam = image.beam
    factor = _PER_BEAM.get(image.unit.replace(" ", "").lower())
    flux = beams = None
    if beam is not None:
        w, h = cutout.size_arcsec
        beams = max(w, h) / beam.major_arcsec
        if factor is not None:
            flux = float(finite.sum() / beam_area_pixels(beam, image.pixel_scale_arcsec) * factor)
    return RegionStats(image.unit, float(finite.max()), float(rms), flux, beam, beams, int(finite.size))
