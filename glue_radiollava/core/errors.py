"""The one error type the user sees: a clear, one-line message."""


class RadioLlavaError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The command line prints ``str(error)`` and exits non-zero; the glue panel shows it.
    Raise it with a message that names the file or value and says what to do.
    """
