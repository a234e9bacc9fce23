"""A glue data loader for radio FITS images whose WCS declares more axes than the data has.

Radio headers often keep FREQ/STOKES axes in the WCS of a 2-D image (NAXIS=2, CTYPE3/4 set).
glue's FITS reader then builds a 4-D WCS for 2-D data and its image viewer fails. This loader
(priority above glue's own, and only for such files) keeps the celestial WCS and squeezes
degenerate axes. Every other FITS file still goes through glue's reader.
"""

from __future__ import annotations

import warnings


def _wcs_and_shape(filename):
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    with fits.open(filename, memmap=True) as hdul:
        for hdu in hdul:
            if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wcs = WCS(hdu.header)
                return wcs, hdu.shape
    return None, None


def is_radio_image_with_extra_wcs_axes(filename, **kwargs) -> bool:
    if not str(filename).lower().endswith((".fits", ".fit", ".fts", ".fits.gz")):
        return False
    try:
        wcs, shape = _wcs_and_shape(filename)
    except Exception:
        return False
    return wcs is not None and wcs.has_celestial and wcs.pixel_n_dim != len(shape)


def radio_fits_reader(filename, **kwargs):
    """One glue Data: the first image plane, the celestial WCS, the header as metadata."""
    from glue.core import Data

    from .core.image import RadioImage

    image = RadioImage.open(filename)
    data = Data(label=str(filename).rsplit("/", 1)[-1].rsplit(".", 1)[0], coords=image.wcs)
    data.add_component(image.read((slice(None), slice(None))), label="PRIMARY")
    data.meta.update({k: v for k, v in image.header.items() if k not in ("COMMENT", "HISTORY", "")})
    image.close()
    return data


def register() -> None:
    from glue.config import data_factory

    if any(f.function is radio_fits_reader for f in data_factory.members):
        return
    data_factory("Radio FITS image (celestial WCS)", identifier=is_radio_image_with_extra_wcs_axes,
                 priority=200)(radio_fits_reader)
