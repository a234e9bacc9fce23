"""glue-radiollava: ask a local vision-language model about regions of radio FITS mosaics."""

__version__ = "0.1.0"

_loaded = False


def setup():
    """glue plugin entry point (``glue.plugins``). Idempotent; imports nothing heavy.

    The Qt tools and panel register here once the glue front end lands (issue "glue plugin").
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
