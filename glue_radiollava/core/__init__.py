"""The shared inference core: FITS image → cutout → model picture → answer → sky regions.

Nothing here imports Qt or glue. Heavy libraries (torch, transformers) are imported inside the
functions that need them, so importing the core stays fast. The flow's main objects are exported
here (loaded on first use)::

    from glue_radiollava.core import RadioImage, Assistant, write_regions

    image = RadioImage.open("mosaic.fits")
    answer = Assistant("nano").ask(..., task="boxes-compact")
"""

from __future__ import annotations

import importlib

from .errors import RadioLlavaError

_EXPORTS = {
    "RadioImage": "image", "Cutout": "image", "Beam": "image", "parse_center": "image", "parse_size": "image",
    "Profile": "profiles", "ModelView": "profiles", "render": "profiles", "get_profile": "profiles",
    "Transform": "transform",
    "ModelSpec": "models", "LoadedModel": "models", "load_model": "models",
    "Assistant": "assistant", "Answer": "assistant", "Scores": "assistant",
    "Task": "tasks", "get_task": "tasks", "load_tasks": "tasks",
    "ParsedAnswer": "parsing", "PictureBox": "parsing", "parse_answer": "parsing",
    "SkyBox": "skyregions", "write_regions": "skyregions", "write_catalogue": "skyregions",
    "to_regions": "skyregions",
    "region_statistics": "stats",
}

__all__ = ["RadioLlavaError", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
