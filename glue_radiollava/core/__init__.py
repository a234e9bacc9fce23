"""The shared inference core: FITS image → cutout → model picture → answer → sky regions.

Nothing here imports Qt or glue. Heavy libraries (torch, transformers) are imported inside the
functions that need them, so importing the core stays fast.
"""

from .errors import RadioLlavaError

__all__ = ["RadioLlavaError"]
