"""The bridge between glue objects and the core: viewer data → RadioImage, ROIs and subsets →
cutouts, and model boxes → glue subsets on the viewer's own pixel attributes.

Only this module (and the rest of ``qt/``) touches glue. Call everything here on the GUI thread.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import RadioLlavaError
from ..core.image import RadioImage
from ..core.skyregions import colour_for

SOURCE = "radio-llava"


def image_layer_data(viewer):
    """The reference data of an image viewer, or a clear error."""
    data = getattr(viewer.state, "reference_data", None)
    if data is None:
        raise RadioLlavaError("this viewer shows no image data; open a FITS image first")
    if data.ndim < 2:
        raise RadioLlavaError(f"{data.label} is not an image (it has {data.ndim} dimension); "
                              "ask about a region of an image layer")
    return data


def radio_image(viewer, data=None) -> RadioImage:
    """The plane the viewer shows, as a RadioImage (reads nothing until a cutout).

    Radio cubes loaded as (1, 1, ny, nx) are reduced to the plane at the viewer's slice indices.
    """
    data = data or image_layer_data(viewer)
    state = viewer.state
    x_axis, y_axis = state.x_att.axis, state.y_att.axis
    if y_axis > x_axis:
        raise RadioLlavaError(f"the viewer shows {data.label} with its axes swapped; "
                              "set x to the longitude and y to the latitude axis")
    wcs = getattr(data, "coords", None)
    celestial = getattr(wcs, "celestial", None)
    if celestial is None or not celestial.has_celestial:
        raise RadioLlavaError(f"{data.label} has no celestial WCS (RA/Dec or GLON/GLAT); "
                              "the assistant needs sky coordinates")
    array = data.get_component(data.main_components[0]).data
    slices = list(state.slices) if state.slices else [0] * data.ndim
    index = tuple(slice(None) if i in (x_axis, y_axis) else int(slices[i]) for i in range(data.ndim))
    plane = array[index] if data.ndim > 2 else array
    header = dict(data.meta) if isinstance(getattr(data, "meta", None), dict) else {}
    return RadioImage.from_plane(plane, celestial, header, name=data.label)


def roi_to_pixel_region(roi):
    """A glue ROI (viewer pixel coordinates) → a ``regions`` pixel shape, by glue-astronomy's
    translator (rotated rectangles and ellipses keep their angle)."""
    from glue.core.roi import CircularROI, EllipticalROI, PolygonalROI, RectangularROI
    from glue.core.subset import RoiSubsetState
    from glue_astronomy.translators.regions import roi_subset_state_to_region

    if not isinstance(roi, (RectangularROI, CircularROI, EllipticalROI, PolygonalROI)):
        raise RadioLlavaError(f"{type(roi).__name__} selections are not supported; draw a rectangle or circle")
    return roi_subset_state_to_region(RoiSubsetState(roi=roi))


def pixel_region_to_roi(region):
    """A ``regions`` pixel shape → the glue ROI drawing it (any other shape: its bounding box)."""
    from glue.core.roi import CircularROI, EllipticalROI, PolygonalROI, RectangularROI
    from regions import CirclePixelRegion, EllipsePixelRegion, PolygonPixelRegion, RectanglePixelRegion

    c = getattr(region, "center", None)
    if isinstance(region, RectanglePixelRegion):
        w, h = region.width / 2, region.height / 2
        return RectangularROI(c.x - w, c.x + w, c.y - h, c.y + h, theta=float(region.angle.to_value("rad")))
    if isinstance(region, CirclePixelRegion):
        return CircularROI(c.x, c.y, region.radius)
    if isinstance(region, EllipsePixelRegion):
        return EllipticalROI(c.x, c.y, region.width / 2, region.height / 2,
                             theta=float(region.angle.to_value("rad")))
    if isinstance(region, PolygonPixelRegion):
        return PolygonalROI(list(region.vertices.x), list(region.vertices.y))
    bb = region.bounding_box
    return RectangularROI(bb.ixmin - 0.5, bb.ixmax - 0.5, bb.iymin - 0.5, bb.iymax - 0.5)


def application_of(data_collection):
    """The GlueApplication window whose data collection this is, or None."""
    from glue_qt.app.application import GlueApplication
    from qtpy import QtWidgets

    for widget in QtWidgets.QApplication.topLevelWidgets():
        if isinstance(widget, GlueApplication) and widget.data_collection is data_collection:
            return widget
    return None


def viewer_showing(application, data):
    """The first image viewer of ``application`` showing ``data`` as its reference, or None."""
    from glue_qt.viewers.image import ImageViewer

    for tab in application.viewers:
        for viewer in tab:
            if isinstance(viewer, ImageViewer) and viewer.state.reference_data is data:
                return viewer
    return None


def first_image_viewer(application):
    """The application's first image viewer, or None."""
    from glue_qt.viewers.image import ImageViewer

    for tab in getattr(application, "viewers", []):
        for viewer in tab:
            if isinstance(viewer, ImageViewer):
                return viewer
    return None


def subset_pixel_box(subset) -> tuple[int, int, int, int]:
    """The pixel bounding box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) of any subset of an image."""
    state = subset.subset_state
    roi = getattr(state, "roi", None)
    if roi is not None:
        try:
            return pixel_box(roi_to_pixel_region(roi))
        except RadioLlavaError:
            pass
    # any other subset (a threshold, a logical combination): the bounding box of its mask
    mask = np.asarray(subset.to_mask())
    if mask.ndim > 2:  # e.g. a (1, 1, ny, nx) radio cube: any plane
        mask = mask.any(axis=tuple(range(mask.ndim - 2)))
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise RadioLlavaError(f"subset '{subset.label}' selects no pixel of {subset.data.label}")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def pixel_box(region) -> tuple[int, int, int, int]:
    bbox = region.bounding_box
    return bbox.ixmin, bbox.iymin, bbox.ixmax, bbox.iymax


def cutout_for_box(image: RadioImage, box):
    x0, y0, x1, y1 = box
    return image.cutout_pixels(x0, y0, x1, y1)


def _hex(colour: str) -> str:
    from matplotlib.colors import to_hex

    return to_hex(colour)


def new_subset(session, x_att, y_att, roi, label: str, colour: str | None = None,
               linewidth: float | None = None):
    """A NEW subset group from a ROI on the viewer's pixel attributes ``x_att``/``y_att``; the
    person's next drag will not edit it (nor any of their own subsets)."""
    from glue.core.subset import RoiSubsetState

    group = session.data_collection.new_subset_group(label, RoiSubsetState(x_att, y_att, roi))
    if colour:
        group.style.color = _hex(colour)
    if linewidth:
        group.style.linewidth = linewidth
    session.edit_subset_mode.edit_subset = []
    return group


def add_box_subsets(session, x_att, y_att, boxes, numbers, source: str = SOURCE) -> list:
    """Each SkyBox becomes a subset group labelled like "EXTENDED #2 (radio-llava)", coloured by class."""
    from glue.core.roi import RectangularROI

    groups = []
    for box, number in zip(boxes, numbers):
        X0, Y0, X1, Y1 = box.pixel_box
        roi = RectangularROI(xmin=X0, xmax=X1, ymin=Y0, ymax=Y1)
        groups.append(new_subset(session, x_att, y_att, roi, f"{box.label or 'BOX'} #{number} ({source})",
                                 colour_for(box.label)))
    return groups


def set_group_visible(application, group, visible: bool) -> None:
    """Show or hide a subset group in every viewer of the application."""
    for tab in getattr(application, "viewers", []):
        for viewer in tab:
            for layer_state in getattr(viewer.state, "layers", []):
                if getattr(layer_state.layer, "group", None) is group:
                    layer_state.visible = visible


def remove_group(data_collection, group) -> None:
    if group in data_collection.subset_groups:
        data_collection.remove_subset_group(group)

