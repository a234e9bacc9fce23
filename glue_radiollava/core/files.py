"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then a
rename (atomic on POSIX and Windows). Every writer of the project goes through here. Also where the shared data folder is."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import RadioLlavaError


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``; on failure remove the temp file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RadioLlavaError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def data_root(root: str | Path | None = None) -> Path:
    """The shared data folder: ``root``, else $RADIOLLAVA_DATA, else ``../shared/data`` beside the repo."""
    if root:
        path = Path(root).expanduser()
    elif os.environ.get("RADIOLLAVA_DATA"):
        path = Path(os.environ["RADIOLLAVA_DATA"]).expanduser()
    else:
        path = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.is_dir():
        raise RadioLlavaError(f"the shared data folder {path} does not exist; pass --data-root DIR "
                              "or set RADIOLLAVA_DATA to the folder holding mirabest_first/, frdeep/ …")
    return path
