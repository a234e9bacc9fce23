"""The options and checks the ``radiollava`` subcommands share (cli.py and cli_survey.py both use
them, so neither imports the other): where the region is, which model, and the output-path check."""

from __future__ import annotations

import argparse

from .core.errors import RadioLlavaError


def add_region_args(p: argparse.ArgumentParser, image_help: str = "FITS image or mosaic"):
    """IMAGE, --hdu and one of --center/--box/--region (the returned group takes more choices)."""
    p.add_argument("image", help=image_help)
    p.add_argument("--hdu", default=None, help="HDU index or name (default: the first image HDU)")
    p.add_argument("--plane", type=int, default=None, help="plane of a cube, 0-based (default: 0, with a warning)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--center", help='sky centre "RA DEC" (degrees or sexagesimal); needs --size')
    where.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                       help="pixel box, 0-based, X1/Y1 exclusive")
    where.add_argument("--region", help="DS9/CRTF/FITS region file (its first shape's bounding box)")
    p.add_argument("--size", help="cutout size with --center: 2arcmin, 90arcsec, 0.05deg")
    p.add_argument("--frame", default="icrs", help="frame of --center: icrs (default), fk5, galactic")
    return where


def add_model_args(p: argparse.ArgumentParser) -> None:
    from .core.models import ModelSpec

    ModelSpec.add_arguments(p)


def model_spec(args):
    from .core.models import ModelSpec

    return ModelSpec.from_args(args)


def cutout_from_args(args, image=None):
    """The region that --center/--size, --box or --region names, cut from ``image`` (default: IMAGE)."""
    from .core.image import RadioImage, parse_center, parse_size

    image = image or RadioImage.open(args.image, hdu=args.hdu, plane=getattr(args, "plane", None))
    if args.center is not None:
        if not args.size:
            raise RadioLlavaError("--center needs --size (e.g. --size 2arcmin)")
        return image.cutout_sky(parse_center(args.center, args.frame), parse_size(args.size))
    if args.box is not None:
        return image.cutout_pixels(*args.box)
    return image.cutout_region(args.region)


def check_output_args(args, outputs: dict, allow_existing: bool = False) -> None:
    """``outputs`` (flag → path) checked against the command's inputs and each other, before
    anything is loaded (``core.files.check_outputs``)."""
    from .core.files import check_outputs

    inputs = [getattr(args, name, None) for name in ("image", "region")]
    check_outputs(outputs, inputs, overwrite=allow_existing or getattr(args, "overwrite", False))
