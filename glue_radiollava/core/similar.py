"""Find more like this: rank the tiles of a mosaic by likeness to a region, or by a description.

- By example: every tile of the mosaic is embedded once with the model's vision tower
  (``core/embeddings.py``: mean over patches of the last hidden state of the picture the model
  would see). The index is cached on disk, keyed by the mosaic (path, size, modification time,
  shape, WCS), the model (weights' SHA-256, adapter), the preprocessing profile and the tiling, so
  it is rebuilt exactly when one of them changes. A region is embedded the same way and the tiles
  are ranked by cosine similarity after subtracting the mosaic's mean vector (mean-pooled features
  share a large common part: without centring every tile scores ~0.95 and blank sky ranks among
  sources); tiles that mostly cover the region itself are left out.
- By text: each tile's picture is asked "Does this image contain <text>?" in the Assistant's
  score mode, and the tiles are ranked by the probability of "Yes" against "No".

Matches are SkyBoxes (the tile's box, labelled ``similar`` or ``text``, ``score`` the similarity
or probability), so they go to regions and tables like any other box.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import RadioLlavaError
from .files import atomic_write
from .scan import Tile, image_fingerprint, plan_tiles, read_tile
from .skyregions import SkyBox, pixel_box_to_sky
from .transform import index_box_to_edges

INDEX_VERSION = 2


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "glue-radiollava" / "index"


@dataclass
class SimilarityIndex:
    tiles: list[Tile]
    vectors: np.ndarray          # [tiles, features] as the tower gives them; NaN rows for blank tiles
    key: dict
    path: Path | None = None
    from_cache: bool = False

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.vectors).all(axis=1)

    @property
    def mean(self) -> np.ndarray:
        return self.vectors[self.valid].mean(axis=0)

    def centred(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors minus the mosaic's mean, unit length: cosine similarity is then a dot product."""
        return _unit(vectors - self.mean)


def index_key(image, assistant, tile: int, overlap: float) -> dict:
    loaded = assistant.loaded
    return {"version": INDEX_VERSION, "image": image_fingerprint(image), "model_sha256": loaded.sha256,
            "model": str(loaded.spec.model), "adapter": loaded.spec.adapter,
            "profile": assistant.profile.to_dict(), "tile": int(tile), "overlap": float(overlap),
            "embedding": "vision tower, mean over patches"}


def _key_file(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    stem = Path(key["image"]["path"] or "image").stem
    return cache_dir / f"{stem}-{digest}.npz"


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def embed_cutouts(assistant, cutouts, batch_size: int = 32) -> np.ndarray:
    """Vision-tower vectors of cutouts rendered as the model sees them."""
    from .embeddings import vision_features

    views = [assistant.view(c) for c in cutouts]
    vectors, _ = vision_features(assistant, views, batch_size)
    return vectors.astype(np.float32)


def build_index(image, assistant, tile: int = 128, overlap: float = 0.25, cache_dir: str | Path | None = None,
                rebuild: bool = False, batch_size: int = 32,
                on_progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> SimilarityIndex:
    """The mosaic's tile index for this model: from the cache when it matches, else built and saved."""
    tiles = plan_tiles(image.shape, tile, overlap)
    key = index_key(image, assistant, tile, overlap)
    path = _key_file(Path(cache_dir) if cache_dir else default_cache_dir(), key)
    if path.exists() and not rebuild:
        try:
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["key"]))
                vectors = z["vectors"]
        except Exception:                  # a damaged cache file is rebuilt, not trusted
            stored, vectors = None, None
        if stored == key and vectors is not None and len(vectors) == len(tiles):
            return SimilarityIndex(tiles, vectors, key, path, from_cache=True)
    vectors = None
    for start in range(0, len(tiles), batch_size):
        if cancel is not None and cancel.is_set():
            raise RadioLlavaError("building the similarity index was stopped; nothing was cached")
        batch = tiles[start:start + batch_size]
        cuts = [(k, read_tile(image, t)) for k, t in enumerate(batch)]
        good = [(k, c) for k, c in cuts if c is not None]
        emb = embed_cutouts(assistant, [c for _, c in good], batch_size) if good else None
        if vectors is None and emb is not None:
            vectors = np.full((len(tiles), emb.shape[1]), np.nan, np.float32)
        for (k, _), v in zip(good, emb if emb is not None else []):
            vectors[start + k] = v
        if on_progress:
            on_progress(min(start + batch_size, len(tiles)), len(tiles))
    if vectors is None:
        raise RadioLlavaError(f"{image.path or 'the image'}: every tile is blank (all NaN or constant); "
                              "nothing to index")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: _save(tmp, vectors, key))
    return SimilarityIndex(tiles, vectors, key, path)


def _save(tmp: Path, vectors: np.ndarray, key: dict) -> None:
    with open(tmp, "wb") as f:             # a file object: numpy would append ".npz" to a name
        np.savez(f, vectors=vectors, key=np.array(json.dumps(key)))


def _overlap_fraction(tile: Tile, box) -> float:
    """Fraction of the tile covered by the pixel box (x0, y0, x1, y1)."""
    ix = max(0, min(tile.x1, box[2]) - max(tile.x0, box[0]))
    iy = max(0, min(tile.y1, box[3]) - max(tile.y0, box[1]))
    return ix * iy / ((tile.x1 - tile.x0) * (tile.y1 - tile.y0))


def _matches(image, tiles: Sequence[Tile], scores: np.ndarray, top: int, label: str) -> list[SkyBox]:
    order = [int(k) for k in np.argsort(-scores, kind="stable") if np.isfinite(scores[k])][:max(0, int(top))]
    return [pixel_box_to_sky(label, index_box_to_edges(tiles[k].x0, tiles[k].y0, tiles[k].x1, tiles[k].y1),
                             image.wcs, round(float(scores[k]), 6)) for k in order]


def similar_to(index: SimilarityIndex, assistant, cutout, top: int = 10, exclude_overlap: float = 0.5) -> list[SkyBox]:
    """The ``top`` tiles most like ``cutout`` (cosine similarity), best first; tiles covered more
    than ``exclude_overlap`` by the cutout itself are left out."""
    query = index.centred(embed_cutouts(assistant, [cutout])[0])
    scores = np.where(index.valid, np.nan_to_num(index.centred(index.vectors)) @ query, np.nan)
    ny, nx = cutout.shape
    box = (cutout.x0, cutout.y0, cutout.x0 + nx, cutout.y0 + ny)
    for k, t in enumerate(index.tiles):
        if _overlap_fraction(t, box) > exclude_overlap:
            scores[k] = np.nan
    return _matches(cutout.image, index.tiles, scores, top, "similar")


def text_question(text: str) -> str:
    text = " ".join(str(text).split()).rstrip("?.")
    if not text:
        raise RadioLlavaError('give a description to search for, e.g. --text "extended radio galaxy with bent jets"')
    return f"Does this image contain {text}? Answer Yes or No."


def search_text(image, assistant, text: str, tile: int = 128, overlap: float = 0.25, top: int = 10,
                batch_size: int = 16, on_progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> list[SkyBox]:
    """The ``top`` tiles with the highest P("Yes") for "Does this image contain <text>?"."""
    question = text_question(text)
    tiles = plan_tiles(image.shape, tile, overlap)
    scores = np.full(len(tiles), np.nan)
    for start in range(0, len(tiles), batch_size):
        if cancel is not None and cancel.is_set():
            break
        batch = [(start + k, read_tile(image, t)) for k, t in enumerate(tiles[start:start + batch_size])]
        good = [(k, c) for k, c in batch if c is not None]
        if good:
            views = [assistant.view(c) for _, c in good]
            for (k, _), s in zip(good, assistant.score_batch(views, answers=["Yes", "No"], question=question)):
                scores[k] = s.probs[0]
        if on_progress:
            on_progress(min(start + batch_size, len(tiles)), len(tiles))
    return _matches(image, tiles, scores, top, "text")
