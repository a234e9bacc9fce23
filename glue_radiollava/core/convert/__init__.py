"""Convert LLaVA-NeXT-format LLaVA-OneVision checkpoints (and their LoRA adapters) to transformers.

The paper's models were trained with the LLaVA-NeXT code, whose checkpoints carry a Qwen2-style
``config.json`` with ``mm_*`` keys and weights under the original names. ``convert`` writes a folder
that the core loads as ``llava_onevision``: weights renamed to transformers 5.x names (``names``), a
``LlavaOnevisionConfig``, the tokenizer with ``<image>``/``<video>`` tokens, the image-only processor,
a chat template and the ``radio-llava`` preprocessing profile (``configs``, ``model``); a LoRA adapter
becomes a peft adapter on the new names (``adapter``).

The output is written into a temporary folder beside DST and renamed at the end, so a failure leaves
nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import RadioLlavaError
from .adapter import _convert_adapter
from .model import MODEL_PROFILE, _convert_model
from .names import original_name, rename
from .result import ConversionResult
from .shards import DEFAULT_MAX_SHARD_BYTES, _read_json, safe_torch_load

__all__ = ["CONVERSION_RECORD", "DEFAULT_MAX_SHARD_BYTES", "DTYPES", "MODEL_PROFILE", "ConversionResult",
           "classify", "convert", "original_name", "rename", "safe_torch_load"]

DTYPES = ("bf16", "fp16", "fp32")
CONVERSION_RECORD = "radiollava_conversion.json"


def classify(src: str | Path) -> str:
    """``model`` (LLaVA-NeXT checkpoint), ``adapter`` (LLaVA-NeXT LoRA) or an error saying what SRC is."""
    src = Path(src)
    if not src.is_dir():
        raise RadioLlavaError(f"{src}: no such folder; give the LLaVA-NeXT checkpoint or adapter folder")
    if (src / "adapter_config.json").is_file():
        return "adapter"
    config = _read_json(src / "config.json", f"{src} has no config.json and no adapter_config.json; "
                        "give a LLaVA-NeXT checkpoint folder (config.json with mm_vision_tower) "
                        "or a LoRA adapter folder (adapter_config.json)")
    if "mm_vision_tower" in config or "mm_projector_type" in config:
        return "model"
    model_type = config.get("model_type")
    if model_type in ("llava_onevision", "llava_next", "llava", "qwen2_vl", "qwen2_5_vl") and \
            "mm_vision_tower" not in config:
        raise RadioLlavaError(f"{src} is already a transformers model (model_type {model_type!r}); "
                              "load it directly, there is nothing to convert")
    raise RadioLlavaError(f"{src}/config.json is neither a LLaVA-NeXT checkpoint (no mm_vision_tower or "
                          f"mm_projector_type) nor a transformers model (model_type {model_type!r}); "
                          "check that SRC is the right folder")


def convert(src: str | Path, dst: str | Path, vision_config: str | Path | None = None,
            dtype: str | None = None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
            progress: bool = False, allow_download: bool = False) -> ConversionResult:
    """Convert a LLaVA-NeXT checkpoint or LoRA adapter folder ``src`` into a new folder ``dst``.

    ``vision_config``: the vision tower's config (a folder with ``config.json`` and optionally
    ``preprocessor_config.json``, or a JSON file); without it the hub id in ``mm_vision_tower`` is
    looked up in the local hub cache, and downloaded only with ``allow_download`` (``--allow-download``)
    unless ``HF_HUB_OFFLINE`` is set. ``dtype``: bf16, fp16 or
    fp32 (default: keep each tensor's stored dtype). Every failure is a one-line RadioLlavaError and
    leaves no ``dst`` behind.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dtype is not None and dtype not in DTYPES:
        raise RadioLlavaError(f"--dtype {dtype!r}: use bf16, fp16 or fp32")
    kind = classify(src)
    if dst.exists():
        raise RadioLlavaError(f"{dst} already exists; give a new folder for the converted "
                              f"{'model' if kind == 'model' else 'adapter'} (nothing was written)")
    if dst.resolve() == src.resolve():
        raise RadioLlavaError(f"{dst}: DST must differ from SRC")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        if kind == "model":
            result = _convert_model(src, tmp, vision_config, dtype, max_shard_bytes, progress, allow_download)
        else:
            result = _convert_adapter(src, tmp, dtype)
        record = {"converted_by": "radiollava model convert", "kind": kind, "source": str(src.resolve()),
                  "dtype": dtype or "as stored", "notes": result.notes}
        (tmp / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.dst = dst
    return result
