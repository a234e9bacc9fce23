"""How a radio image first looks in glue's image viewer.

glue's default (min/max limits, linear stretch) shows a radio map as flat grey: a few bright pixels
set the top of the scale and the noise and the faint sources vanish. When a radio image (a beam in
its header, or a per-beam unit) is first shown in an image viewer, its layer starts at the 99.5 %
percentile with an arcsinh stretch instead; the person changes it as usual afterwards.
"""

from __future__ import annotations

RADIO_PERCENTILE = 99.5
RADIO_STRETCH = "arcsinh"         # glue's name for astropy's AsinhStretch


def is_radio_data(data) -> bool:
    """A glue Data holding a radio image: BMAJ in its header, or a brightness per beam."""
    meta = getattr(data, "meta", None) or {}
    keys = {str(k).upper(): v for k, v in dict(meta).items()}
    return "BMAJ" in keys or "BEAM" in str(keys.get("BUNIT", "")).upper()


def apply_radio_display(viewer, data) -> bool:
    """Give ``data``'s layers in ``viewer`` the radio defaults, once each (not after the person
    has changed them); True when a layer was set."""
    changed = False
    for state in getattr(viewer.state, "layers", []):
        if state.layer is not data or getattr(state, "_radiollava_display", False):
            continue
        if not hasattr(state, "percentile") or not hasattr(state, "stretch"):
            continue
        state.percentile = RADIO_PERCENTILE
        state.stretch = RADIO_STRETCH
        state._radiollava_display = True
        changed = True
    return changed


def radio_display_on_open(viewer, data):
    """glue's ``layer_artist_maker`` hook: makes no artist (returns None), but once glue has made
    the layer of a radio image in an image viewer, sets its radio display defaults."""
    from glue.core import Data
    from glue.viewers.image.state import ImageViewerState
    from qtpy import QtCore

    if isinstance(data, Data) and isinstance(getattr(viewer, "state", None), ImageViewerState) \
            and is_radio_data(data):
        QtCore.QTimer.singleShot(0, lambda: apply_radio_display(viewer, data))
    return None
