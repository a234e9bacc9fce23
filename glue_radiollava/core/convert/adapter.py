"""Converting a LLaVA-NeXT LoRA adapter into a peft adapter on the transformers 5.x names.

A LLaVA-NeXT LoRA folder (``adapter_config.json``, ``adapter_model.*`` on the original names and
``non_lora_trainables.bin`` with the fully trained projector and ``image_newline``) becomes a peft
adapter on the new names that loads on the converted base.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import RadioLlavaError
from .names import _is_unsupported, original_name, rename
from .result import ConversionResult
from .shards import _first_line, _read_json, safe_torch_load

_PEFT_PREFIX = "base_model.model."


def _convert_adapter(src: Path, out: Path, dtype: str | None) -> ConversionResult:
    """A LLaVA-NeXT LoRA folder (peft on original names + non_lora_trainables.bin) → peft on 5.x names.

    LoRA modules become an exact ``target_modules`` regex; fully trained modules from
    ``non_lora_trainables.bin`` (the projector) become ``modules_to_save``; trained bare parameters
    (``image_newline``) are stored under their model name, which peft loads into the base model.
    """
    from safetensors.torch import save_file

    from ..models import torch_dtype

    config = _read_json(src / "adapter_config.json", f"{src}: no adapter_config.json")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise RadioLlavaError(f"{src}/adapter_config.json: peft_type {config.get('peft_type')!r}; "
                              "only LoRA adapters are converted")
    weights = _adapter_weights(src)
    extra_path = src / "non_lora_trainables.bin"
    extra = safe_torch_load(extra_path) if extra_path.is_file() else {}
    target_dtype = torch_dtype(dtype) if dtype else None
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
