"""The glue-qt front end: viewer tools, the assistant panel, preferences, the console object.

Imports Qt and glue; the core never imports this package.
"""


def register():
    """Register the tools, the right-click action and the preference pane with glue (once)."""
    from glue.config import layer_artist_maker
    from glue_qt.config import layer_action, preference_panes
    from glue_qt.viewers.image import ImageViewer

    from .display import radio_display_on_open
    from .preferences import RadioLlavaPreferences
    from .tools import CIRCLE_TOOL, RECTANGLE_TOOL, ask_about_subset

    for tool in (CIRCLE_TOOL, RECTANGLE_TOOL):      # first of the image tools: never in the overflow
        if tool not in ImageViewer.tools:
            ImageViewer.tools.insert(0, tool)
    if not any(m.function is radio_display_on_open for m in layer_artist_maker.members):
        layer_artist_maker.add("radio-llava: radio display defaults", radio_display_on_open)
    label = "Ask radio-llava about this region"
    if not any(item.label == label for item in layer_action):
        layer_action(label, single=True, subset=True, subset_group=True,
                     tooltip="Ask the radio-llava assistant about this subset's bounding box")(ask_about_subset)
    if not any(name == "radio-llava" for name, _ in preference_panes):
        preference_panes.add("radio-llava", RadioLlavaPreferences)
    import glue

    from .console import CONSOLE

    setattr(glue.env, "radiollava", CONSOLE)  # glue's terminal namespace reads glue.env
