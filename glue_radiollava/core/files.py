"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then a
rename (atomic on POSIX and Windows). Every writer of the project goes through here, and every
command checks its output paths here first. Also: where the shared data folder is."""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from pathlib import Path

from .errors import RadioLlavaError


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask, read once (setting it to read it is not safe while threads write)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(outputs: dict, inputs=(), overwrite: bool = False, hint: str = "add --overwrite") -> None:
    """Refuse, before any work is done: an output on an input (even with ``overwrite``), two outputs
    on one path, and an existing file unless ``overwrite`` (astropy's convention).

    ``outputs`` maps a flag name ("--out") to a path or None; ``inputs`` are the paths read."""
    given = [(flag, Path(p)) for flag, p in outputs.items() if p]
    for flag, path in given:
        for source in inputs:
            if source and _same(path, Path(source)):
                raise RadioLlavaError(f"{flag} {path} is an input of this command; choose another output file")
        if path.is_dir():
            raise RadioLlavaError(f"{flag} {path} is a folder; give a file name")
        if path.exists() and not overwrite:
            raise RadioLlavaError(f"{flag} {path} exists; choose a new name or {hint}")
        if not path.parent.is_dir():
            raise RadioLlavaError(f"{flag} {path}: folder {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK):
            raise RadioLlavaError(f"{flag} {path}: folder {path.parent} is not writable")
    for i, (flag, path) in enumerate(given):
        for other, second in given[i + 1:]:
            if _same(path, second):
                raise RadioLlavaError(f"{flag} and {other} name the same file {path}; give each its own")


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``; on failure remove the temp file.

    A symbolic link is written through (its target is replaced, the link stays); a replaced file
    keeps its permissions, a new one gets the usual ones (0666 less the umask)."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise RadioLlavaError(f"{path}: folder {path.parent} does not exist")
    if target.exists():
        mode = stat.S_IMODE(os.stat(target).st_mode)
    else:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix or ".tmp")
    except OSError as exc:                                    # read-only folder or file system, disk full
        raise RadioLlavaError(f"{path}: cannot write in folder {target.parent} ({exc.strerror}); "
                              "choose another output folder") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            raise RadioLlavaError(f"{path}: could not be written ({exc.strerror or exc}); "
                                  "check the folder's permissions and free space") from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file that ``JsonlAppender`` writes (scan journals, benchmark
    predictions). A last line a crash cut short is left out (its record is simply redone); any
    other line that is not JSON means a damaged file: one error naming the line."""
    import json

    path = Path(path)
    lines = path.read_text().splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            if n == len(lines):
                continue
            raise RadioLlavaError(f"{path}: line {n} is not JSON; the file is damaged — remove it (or that "
                                  "line) to start again") from None
    return out


class JsonlAppender:
    """Append records to a JSON-lines file, one line each, flushed after every ``write``: a crash
    loses at most the line being written. A last line an earlier crash cut short is removed first,
    so new records start on a line of their own. Use as a context manager."""

    def __init__(self, path: str | Path, default=None):
        self.path = Path(path)
        self.default = default
        self._file = None

    def __enter__(self) -> "JsonlAppender":
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._file = open(self.path, "a")
        return self

    def write(self, *records: dict) -> None:
        import json

        for rec in records:
            self._file.write(json.dumps(rec, default=self.default) + "\n")
        self._file.flush()

    def __exit__(self, *exc) -> None:
        self._file.close()


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
