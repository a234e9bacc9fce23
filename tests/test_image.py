"""Opening real and synthetic FITS images, cutting regions, and the bad inputs."""

from __future__ import annotations


import numpy as np
import pytest
from astropy.io import fits

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage, parse_center, parse_size


@pytest.mark.parametrize("path, shape, frame, dtype", [
    ("lotss_dr1/P205+55-mosaic.fits", (400, 400), "icrs", ">f8"),          # float64 big-endian
    ("mirabest_first/100_117.079+045.746_0.1850_0228.03.fits", (300, 300), "fk5", ">f4"),  # TABs
    ("misc/pybdsf_test_ch0_I.fits", (129, 129), "fk5", ">f4"),              # 4-axis header
    ("misc/magpis_G10.5+0.0_20cm.fits", (300, 300), "galactic", ">f4"),    # Galactic
    ("misc/parkes_1904-66_SIN.fits", (192, 192), "fk5", ">f4"),            # 40% blank, SIN
    ("scorpio_atca/ScorpioS17Field.fits", (1000, 1000), "fk5", ">f4"),     # NCP, extra CTYPEs
])
def test_open_real_files(data_dir, path, shape, frame, dtype):
    image = RadioImage.open(data_dir / path)
    assert image.shape == shape
    assert image.frame == frame
    assert image.data.dtype.itemsize == np.dtype(dtype).itemsize  # as stored; converted per cutout
    assert image.wcs.naxis == 2 and image.wcs.has_celestial
    cut = image.cutout_pixels(10, 20, 74, 84)
    assert cut.data.dtype == np.float32 and cut.data.dtype.isnative
    np.testing.assert_array_equal(cut.data, np.asarray(image.data[20:84, 10:74], dtype=np.float32))


def test_lazy_reading_and_beam(data_dir):
    path = data_dir / "lotss_dr1/P205+55-mosaic.fits"
    image = RadioImage.open(path)
    assert not isinstance(image.data, np.ndarray)            # a lazy view, not loaded pixels
    assert not image._hdul[0]._data_loaded
    cut = image.cutout_pixels(100, 120, 164, 184)
    assert not image._hdul[0]._data_loaded                   # the cutout read only its rows
    np.testing.assert_array_equal(cut.data, fits.getdata(path)[120:184, 100:164].astype(np.float32))
    assert image.beam.major_arcsec == pytest.approx(6.0)
    sx, sy = image.pixel_scale_arcsec
    assert sx == pytest.approx(1.5) and sy == pytest.approx(1.5)


def test_degenerate_axes_squeezed_and_beam(synthetic_fits):
    image = RadioImage.open(synthetic_fits(extra_axes=2))
    assert image.shape == (200, 200)
    assert image.beam.major_arcsec == pytest.approx(6) and image.beam.pa_deg == 30


def test_float64_and_bscale(tmp_path, synthetic_fits):
    path = synthetic_fits(dtype=">f8")
    assert RadioImage.open(path).cutout_pixels(0, 0, 10, 10).data.dtype == np.float32
    # integer data with BSCALE/BZERO: scaling is applied to the cut pixels only
    header = fits.getheader(path)
    ints = np.arange(100 * 100, dtype=">i2").reshape(100, 100)
    hdu = fits.PrimaryHDU(ints, header=header)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    hdu.writeto(tmp_path / "scaled.fits", output_verify="silentfix")
    cut = RadioImage.open(tmp_path / "scaled.fits").cutout_pixels(0, 0, 4, 1)
    np.testing.assert_allclose(cut.data[0], 10 + 0.5 * np.arange(4))


def test_cutout_sky_centre_and_size(synthetic_fits):
    image = RadioImage.open(synthetic_fits())
    centre = image.wcs.pixel_to_world(120, 80)
    cut = image.cutout_sky(centre, parse_size("30arcsec"))     # 20 px
    assert cut.shape == (20, 20) and not cut.padded
    assert abs(cut.x0 + 9.5 - 120) <= 0.5 and abs(cut.y0 + 9.5 - 80) <= 0.5
    assert cut.center_sky.separation(centre).arcsec < 1.5


def test_partial_overlap_is_padded_and_flagged(synthetic_fits):
    image = RadioImage.open(synthetic_fits())
    cut = image.cutout_pixels(-10, 190, 30, 230)
    assert cut.padded and cut.shape == (40, 40)
    assert np.isnan(cut.data[:, :10]).all() and np.isnan(cut.data[10:, :]).all()
    assert np.isfinite(cut.data[:10, 10:]).all()
    assert cut.blank_fraction == pytest.approx(1 - 30 * 10 / 1600)


def test_cutout_from_region_files(tmp_path, synthetic_fits):
    """The cutout is the region's pixel bounding box (regions' convention: touched pixels count)."""
    from regions import CircleSkyRegion, RectanglePixelRegion, PixCoord, Regions
    import astropy.units as u

    image = RadioImage.open(synthetic_fits())
    pix = RectanglePixelRegion(PixCoord(100.2, 60.2), 30, 20)   # edges at 85.2..115.2, 50.2..70.2
    Regions([pix.to_sky(image.wcs)]).write(tmp_path / "r.reg", format="ds9")
    cut = image.cutout_region(tmp_path / "r.reg")
    assert (cut.x0, cut.y0) == (85, 50) and cut.shape == (21, 31)
    circle = CircleSkyRegion(image.wcs.pixel_to_world(50.2, 50.2), 15 * u.arcsec)  # 10 px radius
    Regions([circle]).write(tmp_path / "c.crtf", format="crtf")
    cut = image.cutout_region(tmp_path / "c.crtf")
    assert (cut.x0, cut.y0) == (40, 40) and cut.shape == (21, 21)
    (tmp_path / "empty.reg").write_text("# Region file format: DS9\nicrs\n")
    with pytest.raises(RadioLlavaError, match="no region"):
        image.cutout_region(tmp_path / "empty.reg")


def test_parse_size_and_centre():
    assert parse_size("2arcmin").value == pytest.approx(120)
    assert parse_size("0.01deg").value == pytest.approx(36)
    assert parse_size("45\"").value == pytest.approx(45)
    assert parse_size("3'").value == pytest.approx(180)
    c = parse_center("13:40:00 +55:00:00")
    assert c.ra.deg == pytest.approx(205.0) and c.dec.deg == pytest.approx(55.0)
    assert parse_center("205.0, 55.0").ra.deg == pytest.approx(205.0)
    assert parse_center("10.5 0.0", frame="galactic").l.deg == pytest.approx(10.5)


@pytest.mark.parametrize("text", ["2", "-1arcmin", "0arcsec", "abc", "3 kg"])
def test_bad_sizes(text):
    with pytest.raises(RadioLlavaError, match="size"):
        parse_size(text)


def test_bad_centre():
    with pytest.raises(RadioLlavaError, match="not a sky position"):
        parse_center("north of here")


def test_bad_files(tmp_path, synthetic_fits):
    (tmp_path / "notes.txt").write_text("not a fits file\n" * 100)
    with pytest.raises(RadioLlavaError, match="not a readable FITS"):
        RadioImage.open(tmp_path / "notes.txt")
    with pytest.raises(RadioLlavaError, match="no such file"):
        RadioImage.open(tmp_path / "missing.fits")
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "table.fits")
    with pytest.raises(RadioLlavaError, match="no image HDU"):
        RadioImage.open(tmp_path / "table.fits")
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(tmp_path / "nowcs.fits")
    with pytest.raises(RadioLlavaError, match="no celestial WCS"):
        RadioImage.open(tmp_path / "nowcs.fits")
    with pytest.raises(RadioLlavaError, match="no HDU 5"):
        RadioImage.open(synthetic_fits(), hdu=5)


def test_bad_regions(synthetic_fits):
    image = RadioImage.open(synthetic_fits(blank=(slice(0, 100), slice(0, 100))))
    with pytest.raises(RadioLlavaError, match="outside"):
        image.cutout_pixels(500, 500, 540, 540)
    with pytest.raises(RadioLlavaError, match="zero or negative size"):
        image.cutout_pixels(10, 10, 10, 40)
    with pytest.raises(RadioLlavaError, match="blank"):
        image.cutout_pixels(10, 10, 50, 50)
    far = parse_center("10.0 -30.0")
    with pytest.raises(RadioLlavaError, match="outside"):
        image.cutout_sky(far, parse_size("1arcmin"))


def test_parkes_blank_edges(data_dir):
    image = RadioImage.open(data_dir / "misc/parkes_1904-66_SIN.fits")
    cut = image.cutout_pixels(0, 0, 192, 192)
    assert 0.3 < cut.blank_fraction < 0.5


def test_region_statistics_recover_a_known_flux():
    """A point source of 50 mJy, drawn as the beam (6″ × 4″ at PA 30°) on 1.5″ pixels with noise of
    0.1 mJy/beam: the integrated flux within 5 %, the peak within 5 %, the rms within 10 %."""
    import math

    from astropy.modeling.models import Gaussian2D

    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.stats import region_statistics

    scale, bmaj, bmin, bpa, flux, noise = 1.5, 6.0, 4.0, 30.0, 0.05, 1e-4
    fwhm = 2 * math.sqrt(2 * math.log(2))
    y, x = np.mgrid[0:160, 0:160]
    # the beam's major axis at PA 30° east of north; north is +y, east is −x on the sky
    beam = Gaussian2D(flux, 80, 80, bmaj / scale / fwhm, bmin / scale / fwhm, theta=math.radians(90 + bpa))
    data = beam(x, y) + np.random.default_rng(3).normal(0, noise, x.shape)
    header = {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 80,
              "CRPIX2": 80, "CDELT1": -scale / 3600, "CDELT2": scale / 3600, "BMAJ": bmaj / 3600,
              "BMIN": bmin / 3600, "BPA": bpa, "BUNIT": "JY/BEAM"}
    from astropy.io import fits

    image = RadioImage.from_array(data.astype(np.float32), fits.Header(header))
    stats = region_statistics(image.cutout_pixels(50, 50, 110, 110))     # 90″ square, 15 beams across
    assert stats.flux_jy == pytest.approx(flux, rel=0.05)
    assert stats.peak == pytest.approx(flux, rel=0.05)                  # a point source: Jy/beam = Jy
    assert stats.rms == pytest.approx(noise, rel=0.1)
    assert stats.beams_across == pytest.approx(90 / bmaj)
    assert f"flux {stats.flux_jy:.3g} Jy" in " ".join(stats.lines())
    milli = RadioImage.from_array((data * 1e3).astype(np.float32), fits.Header({**header, "BUNIT": "mJy/beam"}))
    assert region_statistics(milli.cutout_pixels(50, 50, 110, 110)).flux_jy == pytest.approx(flux, rel=0.05)
    no_beam = {k: v for k, v in header.items() if not k.startswith("B")}
    plain = region_statistics(RadioImage.from_array(data.astype(np.float32), fits.Header(no_beam))
                              .cutout_pixels(50, 50, 110, 110))
    assert plain.flux_jy is None and plain.beam is None                 # no beam: no flux, said plainly


def test_a_cutouts_wcs_keeps_sip_and_its_shape_like_cutout2d():
    """Cutout.wcs maps cutout pixels to the mosaic's sky, SIP distortion included, also when the
    cutout reaches past the image's edge (where astropy's WCS.slice cannot start)."""
    from astropy.wcs import WCS, Sip

    from glue_radiollava.core.image import RadioImage

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crpix, w.wcs.cdelt, w.wcs.crval = [50, 50], [-1e-3, 1e-3], [150.0, 2.0]
    a = np.zeros((3, 3))
    a[2, 0], a[0, 2] = 2e-5, -1e-5
    w.sip = Sip(a, a.T.copy(), None, None, [50, 50])
    header = w.to_header(relax=True)
    image = RadioImage.from_array(np.random.default_rng(0).normal(size=(100, 100)).astype(np.float32), header)
    for x0, y0 in ((20, 30), (-10, -5)):
        cut = image.cutout_pixels(x0, y0, x0 + 40, y0 + 30)
        assert cut.wcs.array_shape == (30, 40) and cut.wcs.sip is not None
        xs, ys = np.array([0.0, 13.0, 39.0]), np.array([0.0, 7.5, 29.0])
        here = cut.wcs.pixel_to_world(xs, ys)
        there = image.wcs.pixel_to_world(xs + x0, ys + y0)
        assert np.all(here.separation(there).arcsec < 1e-6)
