"""Preprocessing profiles: how a cutout becomes the picture a model sees.

A profile is named and versioned and is saved beside each model (``preprocessing.json``), so
training, benchmarks and the assistant render pictures the same way.

``radio-llava`` (v1) reproduces the reference behaviour: NaN/inf → 0, optional ZScale
(contrast 0.25) clipped to [0, 1], optional bicubic resize onto a zero-padded square, min/max to
0–255 (truncated to uint8), grey in three channels, FITS row 0 at the TOP (north down).
``sky-view`` (v1) is for people: north up, percentile clip and asinh stretch, blanks black.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import RadioLlavaError
from .transform import Transform

PROFILE_FILE = "preprocessing.json"


@dataclass(frozen=True)
class Profile:
    """A named, versioned preprocessing profile: how a cutout becomes the model's picture
    (orientation, stretch, size); stored beside each model so training, benchmarks and the plugin agree."""

    name: str
    version: int = 1
    north_up: bool = False            # False: FITS row 0 at the picture's top (the reference)
    stretch: str = "minmax"           # minmax | zscale | asinh
    zscale_contrast: float = 0.25
    percentiles: tuple[float, float] = (0.5, 99.8)  # clip for asinh
    asinh_a: float = 0.1
    size: int | None = None           # resize onto a padded square of this many pixels
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise RadioLlavaError(f"preprocessing profile has unknown keys {sorted(unknown)}; "
                                  f"known: {sorted(known)}")
        d = dict(d)
        if "percentiles" in d:
            d["percentiles"] = tuple(d["percentiles"])
        prof = cls(**d)
        if prof.stretch not in ("minmax", "zscale", "asinh"):
            raise RadioLlavaError(f"unknown stretch {prof.stretch!r} in profile {prof.name!r}; "
                                  "use minmax, zscale or asinh")
        return prof

    def with_options(self, **changes) -> "Profile":
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "radio-llava": Profile("radio-llava", description="reference radio-llava rendering (north down)"),
    "radio-llava-zscale": Profile("radio-llava-zscale", stretch="zscale",
                                  description="reference rendering with ZScale contrast 0.25"),
    "sky-view": Profile("sky-view", north_up=True, stretch="asinh",
                        description="north up, percentile clip and asinh stretch, for display"),
}
DEFAULT_PROFILE = "radio-llava"


def get_profile(name: str | Profile | None = None) -> Profile:
    if isinstance(name, Profile):
        return name
    name = name or DEFAULT_PROFILE
    if name not in PROFILES:
        raise RadioLlavaError(f"unknown preprocessing profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def save_profile(profile: Profile, folder: str | Path) -> Path:
    path = Path(folder) / PROFILE_FILE
    path.write_text(json.dumps(profile.to_dict(), indent=2) + "\n")
    return path


def load_profile(folder: str | Path | None) -> Profile:
    """The profile saved beside a model, or the default when there is none."""
    if folder is None or not (Path(folder) / PROFILE_FILE).is_file():
        return get_profile(DEFAULT_PROFILE)
    path = Path(folder) / PROFILE_FILE
    try:
        return Profile.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise RadioLlavaError(f"{path}: not a valid preprocessing profile ({exc})") from None


@dataclass
class ModelView:
    """The picture a model sees, and how it maps back to the mosaic and the sky."""

    picture: object              # PIL.Image.Image, RGB
    transform: Transform
    profile: Profile
    cutout: object = None        # the Cutout it came from (None for plain pictures)
    warnings: list[str] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.picture)


def _stretch(data: np.ndarray, profile: Profile) -> np.ndarray:
    """Float pixels → float pixels ready for min/max scaling."""
    if profile.stretch == "zscale":
        from astropy.visualization import ZScaleInterval

        lo, hi = ZScaleInterval(contrast=profile.zscale_contrast).get_limits(data)
        if hi > lo:
            data = np.clip((data - lo) / (hi - lo), 0.0, 1.0)
    elif profile.stretch == "asinh":
        lo, hi = np.percentile(data, profile.percentiles)
        if hi > lo:
            x = np.clip((data - lo) / (hi - lo), 0.0, 1.0)
            data = np.arcsinh(x / profile.asinh_a) / np.arcsinh(1.0 / profile.asinh_a)
    return data.astype(np.float32, copy=False)


def _resize_onto_square(data: np.ndarray, size: int):
    """Bicubic resize keeping the aspect ratio, centred on a zero-padded ``size``² square."""
    from PIL import Image

    h, w = data.shape
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(data, mode="F").resize((nw, nh), Image.BICUBIC))
    out = np.zeros((size, size), dtype=np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = resized
    return out, nw / w, nh / h, px, py


def render_array(data: np.ndarray, profile: Profile | str | None = None, x0: int = 0, y0: int = 0,
                 wcs=None):
    """Render a 2-D float array (FITS row order) → (RGB uint8 array, Transform)."""
    profile = get_profile(profile)
    data = np.asarray(data, dtype=np.float32)
    h, w = data.shape
    blank = ~np.isfinite(data)
    data = np.where(blank, 0.0, data).astype(np.float32)
    if profile.stretch == "asinh" and blank.any() and (~blank).any():
        data[blank] = np.nanmin(np.where(blank, np.nan, data))  # blanks black, not mid-grey
    data = _stretch(data, profile)
    if profile.north_up:
        data = data[::-1]
    sx = sy = 1.0
    px = py = 0
    if profile.size:
        data, sx, sy, px, py = _resize_onto_square(data, int(profile.size))
    lo, hi = float(data.min()), float(data.max())
    scaled = (data - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(data)
    grey = np.clip(scaled, 0, 255).astype(np.uint8)  # truncation, like the reference
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    H, W = grey.shape
    transform = Transform(w, h, W, H, x0, y0, sx, sy, px, py, profile.north_up, wcs)
    return rgb, transform


def render(cutout, profile: Profile | str | None = None) -> ModelView:
    """Render a Cutout with a profile → ModelView (picture + Transform to mosaic and sky)."""
    from PIL import Image

    profile = get_profile(profile)
    rgb, transform = render_array(cutout.data, profile, cutout.x0, cutout.y0, cutout.image.wcs)
    warns = list(cutout.warnings)
    if cutout.padded:
        warns.append(f"the region reaches past the image edge; {cutout.blank_fraction:.0%} of it is blank")
    return ModelView(Image.fromarray(rgb, mode="RGB"), transform, profile, cutout, warns)
