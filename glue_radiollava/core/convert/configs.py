"""The converted model's configs: the vision tower's, the text and vision configs, the image
processor and the tokenizer.

LLaVA-NeXT's SigLIP tower deletes the last encoder layer, drops the pooling head and feeds the
projector the last hidden state of the layers it keeps, whatever ``mm_vision_select_layer`` says;
so a SigLIP checkpoint becomes ``vision_feature_layer=-1`` with ``num_hidden_layers`` taken from the
weights (the hub config's 27 layers → 26). A CLIP tower keeps ``mm_vision_select_layer``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import RadioLlavaError
from .shards import _first_line, _read_json

# LLaVA-NeXT classes built on other LLMs (LLaVA-OneVision is Qwen2 throughout).
_OTHER_LLMS = ("Llama", "Mistral", "Mixtral", "Gemma")
_TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
              "rms_norm_eps", "rope_theta", "rope_scaling", "use_sliding_window", "sliding_window",
              "max_window_layers", "attention_dropout", "bos_token_id", "eos_token_id")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                    "chat_template.json")
_SIGLIP_MEAN_STD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
_CLIP_MEAN_STD = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


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
    from ..models import hub_offline

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

    from ..tiny import CHAT_TEMPLATE

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
