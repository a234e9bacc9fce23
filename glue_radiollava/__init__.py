"""glue-radiollava: ask a local vision-language model about regions of radio FITS mosaics."""

__version__ = "0.1.0"

_loaded = False


def setup():
    """glue plugin entry point (``glue.plugins``). Idempotent.

    Registers the settings, and — when glue-qt is importable — the "ask about a region" tools on
    the image viewer, the subset right-click action and the preference pane. Nothing heavy
    (torch, transformers) is imported here.
    """
    global _loaded
    if _loaded:
        return
    from . import glue_factory, settings

    settings.register()
    glue_factory.register()
    try:
        import glue_qt  # noqa: F401
    except ImportError:  # glue without its Qt front end: nothing to show
        _loaded = True
        return
    from .qt import register

    register()
    _loaded = True
