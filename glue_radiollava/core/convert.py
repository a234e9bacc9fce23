"""Convert LLaVA-NeXT-format LLaVA-OneVision checkpoints (and their LoRA adapters) to transformers.

The paper's models were trained with the LLaVA-NeXT code, whose checkpoints carry a Qwen2-style
``config.json`` with ``mm_*`` keys and weights under the original names. ``convert`` writes a folder
that the core loads as ``llava_onevision``: weights renamed to transformers 5.x names, a
``LlavaOnevisionConfig``, the tokenizer with ``<image>``/``<video>`` tokens, the image-only processor,
a chat template and the ``radio-llava`` preprocessing profile.

Original name → transformers 5.x name (checked against transformers' own LLaVA-OneVision conversion
script and the in-memory names of ``LlavaOnevisionForConditionalGeneration``):

- ``model.vision_tower.vision_tower.vision_model.*`` → ``model.vision_tower.*`` (SigLIP, no head)
- ``model.mm_projector.0.*`` / ``.2.*`` → ``model.multi_modal_projector.linear_1.*`` / ``linear_2.*``
- ``model.image_newline`` → ``model.image_newline``
- every other ``model.*`` → ``model.language_model.*`` (Qwen2)
- ``lm_head.*`` → ``lm_head.*``

LLaVA-NeXT's SigLIP tower deletes the last encoder layer, drops the pooling head and feeds the
projector the last hidden state of the layers it keeps, whatever ``mm_vision_select_layer`` says;
so a SigLIP checkpoint becomes ``vision_feature_layer=-1`` with ``num_hidden_layers`` taken from the
weights (the hub config's 27 layers → 26). A CLIP tower keeps ``mm_vision_select_layer``.

A LLaVA-NeXT LoRA folder (``adapter_config.json``, ``adapter_model.*`` on the original names and
``non_lora_trainables.bin`` with the fully trained projector and ``image_newline``) becomes a peft
adapter on the new names that loads on the converted base.

Weights are streamed shard by shard into output shards of bounded size (never the whole model in
memory, let alone twice); ``.bin`` files are read with ``torch.load(weights_only=True)`` only. The
output is written into a temporary folder beside DST and renamed at the end, so a failure leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import RadioLlavaError

DTYPES = ("bf16", "fp16", "fp32")
DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3
CONVERSION_RECORD = "radiollava_conversion.json"
MODEL_PROFILE = "radio-llava"

# (original prefix, transformers 5.x prefix); the first match wins. A prefix without a trailing dot
# names one exact tensor (or module) path.
_RULES: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_tower.vision_model.", "model.vision_tower."),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.image_newline", "model.image_newline"),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# Original parts that a LLaVA-OneVision model in transformers has no place for.
_UNSUPPORTED_PARTS = ("model.vision_resampler.", "model.mm_projector.", "model.vision_tower.")
# LLaVA-NeXT classes built on other LLMs (LLaVA-OneVision is Qwen2 throughout).
_OTHER_LLMS = ("Llama", "Mistral", "Mixtral", "Gemma")
_TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
              "rms_norm_eps", "rope_theta", "rope_scaling", "use_sliding_window", "sliding_window",
              "max_window_layers", "attention_dropout", "bos_token_id", "eos_token_id")
_VISION_LAYER = re.compile(r"^model\.vision_tower\.vision_tower\.vision_model\.encoder\.layers\.(\d+)\.")
_SHARD_NAME = re.compile(r"-(\d+)-of-(\d+)\.(safetensors|bin)$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                    "chat_template.json")
_SIGLIP_MEAN_STD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
_CLIP_MEAN_STD = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


# ----------------------------------------------------------------------------- naming
def rename(path: str) -> str:
    """Original LLaVA-NeXT tensor or module path → transformers 5.x path (unknown paths unchanged)."""
    if path == "model":
        return path
    for old, new in _RULES:
        if old.endswith("."):
            if path == old[:-1]:
                return new[:-1]
            if path.startswith(old):
                return new + path[len(old):]
        elif path == old or path.startswith(old + "."):
            return new + path[len(old):]
    return path


def original_name(path: str) -> str:
    """transformers 5.x path → original LLaVA-NeXT path (the inverse of :func:`rename`, for messages)."""
    for old, new in _RULES:
        if new.endswith("."):
            if path.startswith(new):
                return old + path[len(new):]
        elif path == new or path.startswith(new + "."):
            return old + path[len(new):]
    return path


def _is_unsupported(original: str) -> bool:
    if original.startswith("model.vision_tower.vision_tower.vision_model.") or \
            original.startswith(("model.mm_projector.0.", "model.mm_projector.2.")):
        return False
    return original.startswith(_UNSUPPORTED_PARTS)


# ----------------------------------------------------------------------------- results
@dataclass
class ConversionResult:
    """What ``convert`` wrote: ``kind`` is ``model`` or ``adapter``; ``notes`` say what was decided."""

    kind: str
    dst: Path
    tensors: int
    files: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = "model" if self.kind == "model" else "LoRA adapter"
        return f"converted the {what} into {self.dst} ({self.tensors} tensors in {self.files} file(s))"


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


# ----------------------------------------------------------------------------- reading inputs
def _read_json(path: Path, missing: str) -> dict:
    if not path.is_file():
        raise RadioLlavaError(missing)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: not valid JSON ({_first_line(exc)}); re-download it") from None
    if not isinstance(data, dict):
        raise RadioLlavaError(f"{path}: expected a JSON object")
    return data


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def _torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


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


# ----------------------------------------------------------------------------- vision tower config
@dataclass
class _Vision:
    config: dict                      # a vision-model config dict (siglip_vision_model / clip_vision_model)
    preprocessor: dict                # preprocessor_config.json, or {}
    source: str                       # where it came from, for messages


def _vision_from_dict(data: dict, source: str) -> dict:
    """The vision part of a tower's config.json (a full SigLIP/CLIP config or a vision-only one)."""
    if isinstance(data.get("vision_config"), dict):
        outer = data.get("model_type")
        data = dict(data["vision_config"])
        if outer in ("siglip", "clip"):
            data.setdefault("model_type", f"{outer}_vision_model")
    model_type = data.get("model_type")
    if model_type not in ("siglip_vision_model", "clip_vision_model"):
        raise RadioLlavaError(f"vision config {source}: model_type {model_type!r} is not a SigLIP or CLIP "
                              "vision tower; give the config.json of the tower named in mm_vision_tower")
    return data


def _vision_from_path(path: Path) -> _Vision:
    if path.is_dir():
        data = _read_json(path / "config.json", f"vision config {path}: the folder has no config.json; "
                          "give the vision tower's folder or its config.json")
        pre = path / "preprocessor_config.json"
        preprocessor = _read_json(pre, "") if pre.is_file() else {}
        return _Vision(_vision_from_dict(data, str(path)), preprocessor, str(path))
    if path.is_file():
        return _Vision(_vision_from_dict(_read_json(path, ""), str(path)), {}, str(path))
    raise RadioLlavaError(f"vision config {path}: no such file or folder; give the vision tower's folder "
                          "or its config.json")


def _vision_from_hub(repo: str, allow_download: bool = False) -> _Vision | None:
    """The tower's config from the local hub cache; a download only when the user asked for one
    (``allow_download``) and did not switch the hub off (``HF_HUB_OFFLINE``)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    from .models import hub_offline

    for local_only in ((True, False) if allow_download and not hub_offline() else (True,)):
        try:
            config = Path(hf_hub_download(repo, "config.json", local_files_only=local_only))
        except Exception:
            continue
        try:
            pre = Path(hf_hub_download(repo, "preprocessor_config.json", local_files_only=local_only))
            preprocessor = _read_json(pre, "")
        except Exception:
            preprocessor = {}
        return _Vision(_vision_from_dict(_read_json(config, ""), f"hub:{repo}"), preprocessor, f"hub:{repo}")
    return None


def _find_vision(original: dict, given: str | Path | None, src: Path, allow_download: bool = False) -> _Vision:
    if given is not None:
        return _vision_from_path(Path(given).expanduser())
    tower = str(original.get("mm_vision_tower") or "")
    if tower and Path(tower).expanduser().is_dir():   # the training machine's local copy, if it is here
        return _vision_from_path(Path(tower).expanduser())
    if tower.count("/") == 1 and not tower.startswith((".", "/", "~")):
        found = _vision_from_hub(tower, allow_download)
        if found is not None:
            return found
    name = tower or "(none named)"
    raise RadioLlavaError(
        f"{src}/config.json names the vision tower {name} but its config is not in this folder or the local "
        f"hub cache{' and the hub cannot be reached' if allow_download else ''}; pass --vision-config "
        f"DIR_OR_JSON (e.g. `hf download {tower or 'ORG/TOWER'} config.json preprocessor_config.json "
        "--local-dir DIR` where there is internet)" + ("" if allow_download else ", or --allow-download to "
                                                       "fetch its two config files from the hub"))


# ----------------------------------------------------------------------------- configs
def _grid_pinpoints(value, image_size: int, src: Path) -> list[list[int]]:
    """LLaVA-NeXT pinpoints: a list of [h, w], or a range string like "(1x1),...,(6x6)" in tiles."""
    if isinstance(value, str):
        tiles = [tuple(map(int, m)) for m in re.findall(r"\((\d+)x(\d+)\)", value)]
        if not tiles:
            raise RadioLlavaError(f"{src}/config.json: image_grid_pinpoints {value!r} is not understood; "
                                  "expected a list of [height, width] or '(1x1),...,(6x6)'")
        (a0, b0), (a1, b1) = tiles[0], tiles[-1]
        return [[i * image_size, j * image_size] for i in range(a0, a1 + 1) for j in range(b0, b1 + 1)]
    if isinstance(value, list) and value and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return [[int(h), int(w)] for h, w in value]
    raise RadioLlavaError(f"{src}/config.json: image_grid_pinpoints is missing or malformed; "
                          "expected a list of [height, width]")


def _aspect_ratio(value, pinpoints: list[list[int]], image_size: int, src: Path) -> tuple[str, str | None]:
    if isinstance(value, str) and re.fullmatch(r"anyres_max_\d+", value):
        return value, None
    if value == "anyres":   # no down-sampling: a cap no pinpoint can exceed
        cap = max(h * w for h, w in pinpoints) // (image_size * image_size)
        return f"anyres_max_{cap}", f"image_aspect_ratio 'anyres' → vision_aspect_ratio 'anyres_max_{cap}'"
    raise RadioLlavaError(f"{src}/config.json: image_aspect_ratio {value!r} is not supported; "
                          "LLaVA-OneVision in transformers needs 'anyres_max_N' or 'anyres'")


def _check_original(original: dict, src: Path) -> list[str]:
    notes = []
    projector = original.get("mm_projector_type", "mlp2x_gelu")
    if projector != "mlp2x_gelu":
        raise RadioLlavaError(f"{src}/config.json: mm_projector_type {projector!r} is not supported; "
                              "LLaVA-OneVision in transformers has an mlp2x_gelu projector")
    if original.get("mm_resampler_type") not in (None, "", "none"):
        raise RadioLlavaError(f"{src}/config.json: mm_resampler_type {original['mm_resampler_type']!r} is "
                              "not supported by LLaVA-OneVision in transformers")
    arch = " ".join(original.get("architectures") or [])
    if any(name in arch for name in _OTHER_LLMS):
        raise RadioLlavaError(f"{src}/config.json: architecture {arch} is not Qwen2-based; only "
                              "LLaVA-OneVision (Qwen2) checkpoints convert to llava_onevision")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if key not in original:
            raise RadioLlavaError(f"{src}/config.json lacks the language model's {key}; "
                                  "is this the config of a LLaVA-NeXT Qwen2 checkpoint?")
    merge = original.get("mm_patch_merge_type", "spatial_unpad")
    if merge != "spatial_unpad":
        notes.append(f"mm_patch_merge_type is {merge!r}; transformers always uses spatial_unpad "
                     "with newlines")
    return notes


def _text_config(original: dict, vocab_size: int, tie: bool):
    from transformers import Qwen2Config

    kwargs = {k: original[k] for k in _TEXT_KEYS if k in original and k not in ("rope_theta", "rope_scaling")}
    rope = dict(original.get("rope_scaling") or {})
    rope["rope_type"] = rope.pop("type", None) or rope.get("rope_type") or "default"
    rope["rope_theta"] = float(original.get("rope_theta", 10000.0))
    kwargs["rope_parameters"] = rope
    kwargs["vocab_size"] = vocab_size
    kwargs["tie_word_embeddings"] = tie
    return Qwen2Config(**kwargs)


def _vision_model_config(vision: _Vision, weight_layers: int, notes: list[str]):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    data = dict(vision.config)
    siglip = data.get("model_type") == "siglip_vision_model"
    cls = SiglipVisionConfig if siglip else CLIPVisionConfig
    cfg = cls.from_dict({k: v for k, v in data.items() if k not in ("transformers_version", "architectures")})
    if siglip:
        cfg.vision_use_head = False      # LLaVA-NeXT replaces the pooling head by an identity
    layers = cfg.num_hidden_layers
    if weight_layers == layers - 1:
        cfg.num_hidden_layers = weight_layers
        notes.append(f"vision tower: {weight_layers} of the config's {layers} layers are in the weights "
                     f"(LLaVA-NeXT drops the last one); num_hidden_layers set to {weight_layers}")
    elif weight_layers != layers:
        raise RadioLlavaError(f"vision config {vision.source} does not match the weights: it has {layers} "
                              f"layers, the checkpoint {weight_layers}; give the config of the tower this "
                              "checkpoint was trained with (--vision-config)")
    return cfg, siglip


def _feature_choice(original: dict, siglip: bool, notes: list[str]) -> tuple[int, str]:
    """(vision_feature_layer, vision_feature_select_strategy) that reproduce LLaVA-NeXT's tower."""
    select = original.get("mm_vision_select_layer", -2)
    if siglip:
        if select != -1:
            notes.append(f"mm_vision_select_layer {select} is not used by LLaVA-NeXT's SigLIP tower "
                         "(it takes the last kept layer); vision_feature_layer set to -1")
        return -1, "full"
    feature = original.get("mm_vision_select_feature", "patch")
    return int(select), ("default" if feature == "patch" else "full")


def _image_processor(vision: _Vision, vision_cfg, pinpoints: list[list[int]], siglip: bool):
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    mean, std = _SIGLIP_MEAN_STD if siglip else _CLIP_MEAN_STD
    pre = vision.preprocessor
    options = {"image_mean": pre.get("image_mean", mean), "image_std": pre.get("image_std", std)}
    for key in ("resample", "rescale_factor", "do_normalize", "do_rescale"):
        if key in pre:
            options[key] = pre[key]
    size = vision_cfg.image_size
    return LlavaOnevisionImageProcessorPil(size={"height": size, "width": size},
                                           image_grid_pinpoints=pinpoints, **options)


# ----------------------------------------------------------------------------- tokenizer
def _tokenizer(src: Path, notes: list[str]):
    """SRC's tokenizer with <image>/<video> as named special tokens and a chat template for pictures."""
    from transformers import AutoTokenizer

    from .tiny import CHAT_TEMPLATE

    files = [src / n for n in _TOKENIZER_FILES if (src / n).is_file()]
    if not any(f.name in ("tokenizer.json", "vocab.json") for f in files):
        raise RadioLlavaError(f"{src}: no tokenizer (tokenizer.json or vocab.json + merges.txt); copy the "
                              "checkpoint's Qwen2 tokenizer files into it")
    try:
        with tempfile.TemporaryDirectory() as only_tokenizer:   # away from the LLaVA-NeXT config.json
            for f in files:
                shutil.copy(f, only_tokenizer)
            tokenizer = AutoTokenizer.from_pretrained(
                only_tokenizer, extra_special_tokens={"image_token": "<image>", "video_token": "<video>"})
    except Exception as exc:
        raise RadioLlavaError(f"{src}: cannot load its tokenizer ({_first_line(exc)}); copy the "
                              "Qwen2 tokenizer files (tokenizer.json or vocab.json + merges.txt, "
                              "tokenizer_config.json) of the checkpoint into it") from None
    before = len(tokenizer)
    tokenizer.add_tokens(_special("<image>", "<video>"), special_tokens=True)
    if len(tokenizer) > before:
        notes.append(f"added {len(tokenizer) - before} special token(s) <image>/<video> to the tokenizer")
    tokenizer.padding_side = "left"   # batched generation and scoring pad on the left
    probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "probe"}]}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False) if tokenizer.chat_template else ""
    except Exception:
        rendered = ""
    if "<image>" in rendered and "probe" in rendered:
        template = tokenizer.chat_template
    else:
        template = CHAT_TEMPLATE
        notes.append("SRC has no chat template" if not tokenizer.chat_template else
                     "SRC's chat template renders text only")
        notes[-1] += "; wrote the Qwen2/ChatML template with image parts"
    tokenizer.chat_template = template
    return tokenizer, template


def _special(*tokens: str) -> list:
    from transformers import AddedToken

    return [AddedToken(t, special=True, normalized=False) for t in tokens]


# ----------------------------------------------------------------------------- writing weights
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


# ----------------------------------------------------------------------------- the model
def _convert_model(src: Path, out: Path, vision_arg, dtype: str | None, max_shard_bytes: int,
                   progress: bool, allow_download: bool = False) -> ConversionResult:
    import torch
    from transformers import GenerationConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from .models import image_only_processor_class
    from .profiles import get_profile, save_profile

    original = _read_json(src / "config.json", f"{src}: no config.json")
    notes = _check_original(original, src)
    shards = _list_shards(src)
    all_keys = [k for keys in shards.keys.values() for k in keys if not k.endswith(".inv_freq")]
    twice = [k for k, n in Counter(all_keys).items() if n > 1]
    if twice:
        raise RadioLlavaError(f"{src}: weight {twice[0]!r} is in more than one file (two checkpoints in one "
                              "folder?); keep one checkpoint's shards only")
    for key in all_keys:
        if _is_unsupported(key) or not key.startswith(("model.", "lm_head.")):
            raise RadioLlavaError(f"{src}: weight {key!r} has no place in a LLaVA-OneVision model; "
                                  "this converter handles SigLIP + mlp2x_gelu + Qwen2 checkpoints only")
    vision_layers = {int(m.group(1)) for m in map(_VISION_LAYER.match, all_keys) if m}
    if not vision_layers:
        raise RadioLlavaError(f"{src}: no vision tower weights (model.vision_tower.vision_tower.*) in the "
                              "checkpoint; a shard is missing or the checkpoint was saved without its tower")
    vision = _find_vision(original, vision_arg, src, allow_download)
    vision_cfg, siglip = _vision_model_config(vision, max(vision_layers) + 1, notes)
    feature_layer, strategy = _feature_choice(original, siglip, notes)
    pinpoints = _grid_pinpoints(original.get("image_grid_pinpoints"), vision_cfg.image_size, src)
    aspect, note = _aspect_ratio(original.get("image_aspect_ratio"), pinpoints, vision_cfg.image_size, src)
    notes += [note] if note else []

    tokenizer, template = _tokenizer(src, notes)
    vocab = int(original["vocab_size"])
    new_vocab = vocab if len(tokenizer) <= vocab else int(math.ceil(len(tokenizer) / 64) * 64)
    if new_vocab != vocab:
        notes.append(f"embeddings grown from {vocab} to {new_vocab} rows for the new tokens "
                     "(mean-initialised)")
    has_lm_head = "lm_head.weight" in all_keys
    tie = not has_lm_head
    if tie:
        notes.append("no lm_head.weight in the checkpoint: the LM head is tied to the input embeddings")
    text_cfg = _text_config(original, new_vocab, tie)
    config = LlavaOnevisionConfig(
        vision_config=vision_cfg, text_config=text_cfg,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        projector_hidden_act="gelu", vision_feature_select_strategy=strategy,
        vision_feature_layer=feature_layer, multimodal_projector_bias=True, image_grid_pinpoints=pinpoints,
        vision_aspect_ratio=aspect, tie_word_embeddings=tie)
    with torch.device("meta"):   # names and shapes only, no memory
        skeleton = LlavaOnevisionForConditionalGeneration(config)
        expected = {k: _shape(v) for k, v in skeleton.state_dict().items()}
    if tie:
        expected.pop("lm_head.weight", None)
    _check_key_sets(src, {rename(k) for k in all_keys}, expected, vision)
    grown = {"model.language_model.embed_tokens.weight", "lm_head.weight"} if new_vocab != vocab else set()

    def source_shape(new: str) -> list[int]:
        want = expected[new]
        return [vocab] + want[1:] if new in grown else want

    def check(path: Path, key: str, shape: list[int]) -> None:
        want = source_shape(rename(key))
        if shape != want:
            raise RadioLlavaError(_mismatch(path, key, rename(key), shape, want, vision, src))

    for path, keys in shards.keys.items():   # shapes known from headers: check before writing anything
        for key in keys:
            if key in shards.shapes and not key.endswith(".inv_freq"):
                check(path, key, shards.shapes[key])

    target_dtype = _torch_dtype(dtype) if dtype else None
    files, count, stored = _write_weights(src, out, shards, set(expected), check, grown, new_vocab,
                                          target_dtype, max_shard_bytes, progress)
    config.dtype = target_dtype or stored
    config.save_pretrained(out)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() \
        else tokenizer.eos_token_id
    GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                     bos_token_id=original.get("bos_token_id")).save_pretrained(out)
    processor = image_only_processor_class("llava_onevision")(
        image_processor=_image_processor(vision, vision_cfg, pinpoints, siglip), tokenizer=tokenizer,
        chat_template=template, num_image_tokens=(vision_cfg.image_size // vision_cfg.patch_size) ** 2,
        vision_feature_select_strategy=strategy, vision_aspect_ratio=aspect)
    processor.save_pretrained(out)
    save_profile(get_profile(MODEL_PROFILE), out)
    notes.append(f"vision tower config from {vision.source}")
    return ConversionResult("model", out, count, files, notes)


def _write_weights(src: Path, out: Path, shards: _Shards, expected: set[str], check, grown: set[str],
                   new_vocab: int, target_dtype, max_shard_bytes: int, progress: bool):
    """Stream every shard, tensor by tensor, into renamed safetensors shards → (files, tensors, dtype)."""
    import torch

    writer = _ShardWriter(out, max_shard_bytes)
    seen_dtypes: Counter = Counter()
    written: set[str] = set()
    bar = _progress(len(expected), progress, "converting")
    try:
        for path in shards.files:
            for key, tensor in _iter_tensors(path, shards.fmt):
                if key.endswith(".inv_freq"):
                    continue
                new = rename(key)
                if new not in expected or new in written:
                    raise RadioLlavaError(f"{path.name}: weight {key!r} is not where the checkpoint's index "
                                          "says it is; re-download the checkpoint")
                check(path, key, _shape(tensor))
                if target_dtype is not None and tensor.is_floating_point():
                    tensor = tensor.to(target_dtype)
                if new in grown:   # rows for tokens the tokenizer gained: the mean of the others
                    pad = tensor.float().mean(0, keepdim=True).to(tensor.dtype)
                    tensor = torch.cat([tensor, pad.expand(new_vocab - tensor.shape[0], -1)], 0)
                if tensor.is_floating_point():
                    seen_dtypes[tensor.dtype] += tensor.numel()
                tensor = tensor.contiguous()
                # a .bin tensor may be memory-mapped or share storage with another: write a copy
                writer.add(new, tensor.clone() if shards.fmt == "bin" else tensor)
                written.add(new)
                bar.update()
    finally:
        bar.close()
    missing = sorted(expected - written)
    if missing:
        raise RadioLlavaError(f"{src}: {len(missing)} weight(s) listed but not found in the shards, e.g. "
                              f"{original_name(missing[0])!r}; re-download the checkpoint")
    stored = seen_dtypes.most_common(1)[0][0] if seen_dtypes else torch.float32
    return writer.finish(), len(written), stored


def _check_key_sets(src: Path, have: set[str], expected: dict, vision: _Vision) -> None:
    """Every weight has a place in the configured model, and every place has a weight."""
    unknown = sorted(have - set(expected))
    missing = sorted(set(expected) - have)
    for name in unknown[:1] + missing[:1]:
        if name.startswith("model.vision_tower."):
            what = "unexpected" if name in unknown else "missing"
            raise RadioLlavaError(f"vision config {vision.source} does not match the weights: "
                                  f"{original_name(name)!r} is {what}; give the config of the tower this "
                                  "checkpoint was trained with (--vision-config)")
    if unknown:
        raise RadioLlavaError(f"{src}: weight {original_name(unknown[0])!r} has no place in the model its "
                              "config.json describes (more layers than num_hidden_layers?); "
                              "check the checkpoint")
    if missing:
        raise RadioLlavaError(f"{src}: no weight {original_name(missing[0])!r} ({len(missing)} missing); "
                              "a shard is missing or the checkpoint is incomplete")


def _mismatch(path: Path, key: str, new: str, got: list[int], want: list[int], vision: _Vision,
              src: Path) -> str:
    if new == "model.multi_modal_projector.linear_1.weight" and got[0] == want[0] and got[1] != want[1]:
        return (f"vision config {vision.source} does not match the weights: the projector ({key!r}) takes "
                f"{got[1]} features, the config's tower gives {want[1]}; give the config of the tower this "
                "checkpoint was trained with (--vision-config)")
    if new.startswith("model.vision_tower."):
        return (f"vision config {vision.source} does not match the weights: {path.name} has {key!r} of "
                f"shape {got}, the config makes it {want}; give the config of the tower this checkpoint was "
                "trained with (--vision-config)")
    return (f"{path.name}: {key!r} has shape {got} but {src.name}/config.json makes it {want}; "
            "the weights and config.json do not belong together")


# ----------------------------------------------------------------------------- LoRA adapters
_PEFT_PREFIX = "base_model.model."


def _convert_adapter(src: Path, out: Path, dtype: str | None) -> ConversionResult:
    """A LLaVA-NeXT LoRA folder (peft on original names + non_lora_trainables.bin) → peft on 5.x names.

    LoRA modules become an exact ``target_modules`` regex; fully trained modules from
    ``non_lora_trainables.bin`` (the projector) become ``modules_to_save``; trained bare parameters
    (``image_newline``) are stored under their model name, which peft loads into the base model.
    """
    from safetensors.torch import save_file

    config = _read_json(src / "adapter_config.json", f"{src}: no adapter_config.json")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise RadioLlavaError(f"{src}/adapter_config.json: peft_type {config.get('peft_type')!r}; "
                              "only LoRA adapters are converted")
    weights = _adapter_weights(src)
    extra_path = src / "non_lora_trainables.bin"
    extra = safe_torch_load(extra_path) if extra_path.is_file() else {}
    target_dtype = _torch_dtype(dtype) if dtype else None
    notes: list[str] = []

    out_tensors: dict = {}
    lora_modules: set[str] = set()
    saved_modules: set[str] = set()
    bare: list[str] = []
    for source, tensors in (("adapter", weights), ("non_lora_trainables.bin", extra)):
        for key, tensor in tensors.items():
            inner = key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else \
                key[len("base_model."):] if key.startswith("base_model.") else key
            if not inner.startswith(("model.", "lm_head")):
                raise RadioLlavaError(f"{src}: {source} key {key!r} is not on LLaVA-NeXT names "
                                      "(base_model.model.model.* / lm_head); is this a LLaVA-NeXT LoRA "
                                      "adapter?")
            if _is_unsupported(inner):
                raise RadioLlavaError(f"{src}: {source} key {key!r} belongs to a part LLaVA-OneVision does "
                                      "not have in transformers")
            cut = inner.find(".lora_")
            if cut >= 0:                                  # LoRA: rename the module, keep the lora_* suffix
                module = rename(inner[:cut])
                new_inner = module + inner[cut:]
                lora_modules.add(module)
            else:
                new_inner = rename(inner)
                if inner.rsplit(".", 1)[0] == "model":    # a bare parameter (image_newline)
                    bare.append(new_inner)
                else:
                    saved_modules.add(new_inner.rsplit(".", 1)[0])
            if target_dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(target_dtype)
            out_tensors[_PEFT_PREFIX + new_inner] = tensor.contiguous().clone()
    if not lora_modules:
        raise RadioLlavaError(f"{src}: the adapter has no LoRA weights (no '.lora_' keys); "
                              "give the folder that LLaVA-NeXT's LoRA training wrote")
    both = sorted(lora_modules & saved_modules)
    if both:
        raise RadioLlavaError(f"{src}: module {original_name(both[0])!r} has LoRA weights and full weights; "
                              "peft cannot hold both, merge the adapter with LLaVA-NeXT first")

    config = dict(config)
    config["target_modules"] = "|".join(re.escape(m) for m in sorted(lora_modules))
    for key in ("layers_to_transform", "layers_pattern", "exclude_modules"):
        config.pop(key, None)
    for key in ("rank_pattern", "alpha_pattern"):
        if isinstance(config.get(key), dict):
            config[key] = {rename(k): v for k, v in config[key].items()}
    leaf_names = {"mm_projector": "multi_modal_projector"}
    old_saved = {rename(m) if m.startswith("model.") else leaf_names.get(m, m)
                 for m in (config.get("modules_to_save") or [])}
    # a module whose ancestor is already saved whole (e.g. the projector) is not listed again
    saved_modules = {m for m in saved_modules if not any(f".{o}." in f".{m}." for o in old_saved)}
    config["modules_to_save"] = sorted(old_saved | saved_modules) or None
    if config.get("base_model_name_or_path"):
        notes.append(f"trained on {config['base_model_name_or_path']}: load it on that model's "
                     "converted copy")
    config["base_model_name_or_path"] = None
    config.setdefault("task_type", "CAUSAL_LM")
    config["inference_mode"] = True
    if saved_modules:
        notes.append(f"{len(saved_modules)} fully trained module(s) kept as modules_to_save: "
                     + ", ".join(sorted(saved_modules)))
    if bare:
        notes.append(f"trained parameter(s) {', '.join(bare)} stored in the adapter; loading it replaces "
                     "the base model's value")
    save_file(out_tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    notes.append(f"{len(lora_modules)} LoRA module(s) on transformers names")
    return ConversionResult("adapter", out, len(out_tensors), 1, notes)


def _adapter_weights(src: Path) -> dict:
    st, binary = src / "adapter_model.safetensors", src / "adapter_model.bin"
    if st.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(st))
        except Exception as exc:
            raise RadioLlavaError(f"{st}: unreadable safetensors file ({_first_line(exc)}); "
                                  "re-download it") from None
    if binary.is_file():
        return safe_torch_load(binary)
    raise RadioLlavaError(f"{src}: no adapter_model.safetensors or adapter_model.bin; "
                          "copy the adapter's weights into the folder")


# ----------------------------------------------------------------------------- command line
def cmd_model_convert(args: argparse.Namespace) -> int:
    """``radiollava model convert SRC DST``: print the summary and notes; errors are RadioLlavaError."""
    _quiet_transformers()
    result = convert(args.src, args.dst, vision_config=args.vision_config, dtype=args.dtype,
                     progress=not args.quiet, allow_download=args.allow_download)
    print(result.summary())
    for note in result.notes:
        print(f"  note: {note}")
    if result.kind == "model":
        print(f"load it with --model {result.dst}")
    else:
        print(f"load it with --adapter {result.dst} on the converted base model")
    return 0


def add_convert_parser(model_subparsers) -> argparse.ArgumentParser:
    """Add ``convert`` to the ``radiollava model`` subcommands; returns the new parser."""
    p = model_subparsers.add_parser(
        "convert", help="convert a LLaVA-NeXT-format LLaVA-OneVision checkpoint or LoRA adapter",
        description="Convert a checkpoint trained with the LLaVA-NeXT code (config.json with "
                    "mm_vision_tower; safetensors or .bin shards) or its LoRA adapter into the transformers "
                    "layout, with processor, chat template and the radio-llava preprocessing profile.")
    p.add_argument("src", help="LLaVA-NeXT checkpoint folder, or LoRA adapter folder (adapter_config.json)")
    p.add_argument("dst", help="new folder to write (must not exist)")
    p.add_argument("--vision-config", metavar="DIR_OR_JSON", default=None,
                   help="the vision tower's folder or config.json (default: the hub id in mm_vision_tower, "
                        "from the local hub cache)")
    p.add_argument("--allow-download", action="store_true",
                   help="when the vision tower's config is not in the local hub cache, download its "
                        "config.json and preprocessor_config.json from the hub (off by default)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="store the weights in this dtype (default: as stored in SRC)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_model_convert)
    return p
