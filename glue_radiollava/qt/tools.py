"""Image-viewer tools ("ask about a rectangle / circle") and the subset right-click action."""

from __future__ import annotations

from glue.config import viewer_tool
from glue.viewers.matplotlib.toolbar_mode import CircleMode, RectangleMode

from ..core.errors import RadioLlavaError
from . import glue_data
from .panel import get_panel

RECTANGLE_TOOL = "radiollava:rectangle"
CIRCLE_TOOL = "radiollava:circle"


def _icon(name: str) -> str:
    from ..core.models import resources_dir

    return str(resources_dir() / "icons" / name)


def ask_about_roi(viewer, roi):
    """The tools' action: a NEW subset for the drawn region, and the panel focused on it."""
    panel = get_panel(viewer.session.application)
    return panel if panel.ask_region(viewer, roi) is not None else None


class _AskMode:
    """A drawing tool whose finished shape is asked about (instead of selecting data)."""

    shortcut = None  # the inherited R / C shortcuts belong to glue's own selection tools

    def __init__(self, viewer, **kwargs):
        super().__init__(viewer, roi_callback=lambda mode: ask_about_roi(self.viewer, self.roi()), **kwargs)


@viewer_tool
class AskRectangleMode(_AskMode, RectangleMode):
    icon = _icon("ask_rectangle.png")
    tool_id = RECTANGLE_TOOL
    action_text = "Ask radio-llava about a rectangle"
    tool_tip = "Draw a rectangle to ask the radio-llava assistant about it"


@viewer_tool
class AskCircleMode(_AskMode, CircleMode):
    icon = _icon("ask_circle.png")
    tool_id = CIRCLE_TOOL
    action_text = "Ask radio-llava about a circle"
    tool_tip = "Draw a circle to ask the radio-llava assistant about it (its bounding square)"


def ask_about_subset(layer, data_collection):
    """Right-click on a subset (or subset group) → ask radio-llava about its bounding box."""
    from glue.core.subset_group import SubsetGroup

    application = glue_data.application_of(data_collection)
    if application is None:
        return
    panel = get_panel(application)
    subsets = layer.subsets if isinstance(layer, SubsetGroup) else [layer]
    for subset in subsets:
        viewer = glue_data.viewer_showing(application, subset.data)
        if viewer is None:
            continue
        try:
            box = glue_data.subset_pixel_box(subset)
        except RadioLlavaError as exc:
            panel.error(str(exc))
            return
        panel.set_region(viewer, box, subset.label, group=getattr(subset, "group", None))
        return
    panel.error(f"'{layer.label}' is not on an image shown in an image viewer; "
                 "open the image in an image viewer first")
