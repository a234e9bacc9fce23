"""Reading SRC's files (JSON, weight shards) and writing the renamed safetensors shards.

Weights are streamed shard by shard into output shards of bounded size (never the whole model in
memory, let alone twice); ``.bin`` files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import RadioLlavaError
from ..references import read_json

DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3
_SHARD_NAME = re.compile(r"-(\d+)-of-(\d+)\.(safetensors|bin)$")


def _read_json(path: Path, missing: str) -> dict:
    """The core's ``read_json`` with the converter's messages: ``missing`` when the file is absent."""
    if not path.is_file():
        raise RadioLlavaError(missing)
    try:
        data = read_json(path)
    except RadioLlavaError as exc:
        raise RadioLlavaError(f"{exc}; re-download it") from None
    if not isinstance(data, dict):
        raise RadioLlavaError(f"{path}: expected a JSON object")
    return data


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def safe_torch_load(path: Path) -> dict:
    """A ``.bin`` state dict read with ``weights_only=True`` (memory-mapped when the format allows)."""
    import pickle

    import torch

    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError:
        raise RadioLlavaError(f"{path}: holds Python objects besides tensors, which are never unpickled "
                              "(safe loading only); re-save it as plain tensors or safetensors where you "
                              "trust its origin") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: unreadable ({_first_line(exc)}); "
                              "re-download the file") from None
    if isinstance(data, dict) and set(data) <= {"state_dict", "model"} and len(data) == 1:
        data = next(iter(data.values()))
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise RadioLlavaError(f"{path}: not a state dict of tensors; give the checkpoint's weight files")
    return data


@dataclass
class _Shards:
    fmt: str                          # safetensors | bin
    files: list[Path]
    keys: dict[Path, list[str]]       # per file, as listed (index) or read (headers)
    shapes: dict[str, list[int]] = field(default_factory=dict)   # where cheap to know before streaming


def _check_numbering(files: list[Path], src: Path) -> None:
    """Shards named ``*-00002-of-00004.*`` must all be there (no index file to say so)."""
    matches = [m for m in (_SHARD_NAME.search(f.name) for f in files) if m]
    totals = {m.group(2) for m in matches}
    if not totals:
        return
    if len(totals) > 1:
        names = ", ".join(f.name for f in files)
        raise RadioLlavaError(f"{src}: shards from different checkpoints ({names}); "
                              "keep one checkpoint per folder")
    total = totals.pop()
    missing = sorted(set(range(1, int(total) + 1)) - {int(m.group(1)) for m in matches})
    if missing:
        first = matches[0]
        name = (first.string[:first.start()] + f"-{missing[0]:0{len(first.group(1))}d}-of-{total}."
                + first.group(3))
        raise RadioLlavaError(f"{src}: shard {name} is missing ({len(missing)} of {int(total)} missing); "
                              "download the complete checkpoint")


def _list_shards(src: Path) -> _Shards:
    """SRC's weight files with their tensor names (and shapes where cheap); missing shards are an error."""
    shards = _list_shard_files(src)
    if shards.fmt == "safetensors" and not shards.shapes:
        for path in shards.files:
            shards.shapes.update(_safetensors_shapes(path))
    return shards


def _list_shard_files(src: Path) -> _Shards:
    for index_name, fmt in (("model.safetensors.index.json", "safetensors"),
                            ("pytorch_model.bin.index.json", "bin")):
        index = src / index_name
        if index.is_file():
            weight_map = _read_json(index, "").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise RadioLlavaError(f"{index}: no weight_map; re-download the checkpoint's index file")
            keys: dict[Path, list[str]] = {}
            for key, name in weight_map.items():
                keys.setdefault(src / name, []).append(key)
            for path in keys:
                if not path.is_file():
                    raise RadioLlavaError(f"{src}: shard {path.name} listed in {index_name} is missing; "
                                          "download the complete checkpoint")
            return _Shards(fmt, list(keys), keys)
    files = sorted(p for p in src.glob("model*.safetensors") if p.is_file())
    fmt = "safetensors"
    if not files:
        files = sorted(p for p in src.glob("pytorch_model*.bin") if p.is_file())
        fmt = "bin"
    if not files:
        raise RadioLlavaError(f"{src}: no weights (model*.safetensors or pytorch_model*.bin); "
                              "download the checkpoint's weight files into it")
    _check_numbering(files, src)
    shards = _Shards(fmt, files, {})
    for path in files:
        if fmt == "safetensors":
            shapes = _safetensors_shapes(path)
            shards.keys[path] = list(shapes)
            shards.shapes.update(shapes)
        else:
            state = safe_torch_load(path)   # memory-mapped where the format allows
            shards.keys[path] = list(state)
            shards.shapes.update({k: _shape(v) for k, v in state.items()})
            del state
    return shards


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise RadioLlavaError(f"{path}: unreadable safetensors file ({_first_line(exc)}); "
                              "re-download it") from None


def _iter_tensors(path: Path, fmt: str) -> Iterator[tuple[str, object]]:
    """(name, tensor) of one shard, one tensor at a time."""
    if fmt == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        except RadioLlavaError:
            raise
        except Exception as exc:
            raise RadioLlavaError(f"{path}: unreadable safetensors file "
                                  f"({_first_line(exc)}); re-download it") from None
    else:
        state = safe_torch_load(path)
        for key in list(state):
            yield key, state.pop(key)


class _ShardWriter:
    """Collects tensors and writes safetensors shards of at most ``max_bytes`` (one tensor may exceed it)."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder, self.max_bytes = folder, max(1, int(max_bytes))
        self.pending: dict = {}
        self.pending_bytes = 0
        self.parts: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, key: str, tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + nbytes > self.max_bytes:
            self.flush()
        self.pending[key] = tensor
        self.pending_bytes += nbytes
        self.total_bytes += nbytes

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.pending:
            return
        path = self.folder / f"part-{len(self.parts):05d}.safetensors"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        self.parts.append((path, list(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def finish(self) -> int:
        """Rename the parts to the transformers shard names and write the index; returns the count."""
        self.flush()
        n = len(self.parts)
        if n == 1:
            self.parts[0][0].rename(self.folder / "model.safetensors")
            return 1
        weight_map = {}
        for i, (path, keys) in enumerate(self.parts, 1):
            name = f"model-{i:05d}-of-{n:05d}.safetensors"
            path.rename(self.folder / name)
            weight_map.update(dict.fromkeys(keys, name))
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        return n


def _progress(total: int, enabled: bool, desc: str):
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc, unit="tensor")
        except ImportError:
            pass

    class _Silent:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    return _Silent()


def _shape(t) -> list[int]:
    return [int(s) for s in t.shape]
