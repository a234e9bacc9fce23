"""Merging: (a) a LoRA adapter into its base; (b) a weighted merge of a fine-tuned model with its base.

(b) is the paper's idea against forgetting (its authors could not run it with MergeKit): the LLM and
the projector become ``(1 - alpha) · base + alpha · fine-tuned``; the vision tower stays the base's.
It streams one safetensors shard at a time, so it never holds two whole models in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

VISION_PREFIXES = ("model.vision_tower.", "vision_tower.", "model.visual.", "visual.")
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
              "chat_template.jinja", "chat_template.json", "special_tokens_map.json", "generation_config.json",
              "preprocessing.json", "vocab.json", "merges.txt")


def _temp_folder_for(out: Path) -> Path:
    if out.exists() and any(out.iterdir()):
        raise RadioLlavaError(f"{out} exists and is not empty; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _finish(tmp: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy(src / name, dst / name)


def merge_adapter(adapter: str | Path, out: str | Path, base: str | None = None) -> Path:
    """Fold a LoRA adapter into its base → a plain model folder (full precision)."""
    from glue_radiollava.core.models import ModelSpec, load_model

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise RadioLlavaError(f"{adapter}: no adapter_config.json; give a LoRA adapter folder")
    spec = ModelSpec(base, adapter=str(adapter)) if base else ModelSpec(str(adapter))
    loaded = load_model(spec)
    tmp = _temp_folder_for(out)
    try:
        merged = loaded.model.merge_and_unload()
        merged.save_pretrained(tmp)
        loaded.processor.save_pretrained(tmp)
        _copy_side_files(adapter, tmp)
        _copy_side_files(loaded.folder, tmp)
        _card(tmp, {"merge": "adapter", "base": str(loaded.folder), "adapter": str(adapter)})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _finish(tmp, out)


def _weight_index(folder: Path) -> dict[str, Path]:
    """tensor name → the safetensors file that holds it."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        mapping = json.loads(index.read_text())["weight_map"]
        return {k: folder / v for k, v in mapping.items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise RadioLlavaError(f"{folder}: no model.safetensors (or index); give a merged model folder, "
                              "not an adapter (merge adapters first with `radiollava merge adapter`)")
    from safetensors import safe_open

    with safe_open(single, "pt") as f:
        return {k: single for k in f.keys()}


def is_vision(name: str) -> bool:
    return name.startswith(VISION_PREFIXES)


def merge_weighted(base: str, finetuned: str | Path, alpha: float, out: str | Path) -> Path:
    """``(1 - alpha) · base + alpha · fine-tuned`` for the LLM and projector; the base's vision tower."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from glue_radiollava.core.models import resolve_model_folder

    if not 0.0 <= alpha <= 1.0:
        raise RadioLlavaError(f"--alpha {alpha}: give a weight between 0 (the base) and 1 (the fine-tuned model)")
    base_dir, ft_dir, out = resolve_model_folder(base), resolve_model_folder(str(finetuned)), Path(out)
    base_index, ft_index = _weight_index(base_dir), _weight_index(ft_dir)
    if set(base_index) != set(ft_index):
        missing = sorted(set(base_index) ^ set(ft_index))[:3]
        raise RadioLlavaError(f"{ft_dir} and {base_dir} hold different tensors (e.g. {missing}); "
                              "the weighted merge needs the fine-tuned model of this very base")
    tmp = _temp_folder_for(out)
    changed_vision = 0
    try:
        for shard in sorted(set(ft_index.values())):
            tensors, metadata = {}, None
            with safe_open(shard, "pt") as f_ft:
                metadata = f_ft.metadata()
                for name in f_ft.keys():
                    with safe_open(base_index[name], "pt") as f_base:
                        b = f_base.get_tensor(name)
                    t = f_ft.get_tensor(name)
                    if b.shape != t.shape:
                        raise RadioLlavaError(f"tensor {name}: shape {tuple(t.shape)} in {ft_dir} but "
                                              f"{tuple(b.shape)} in {base_dir}; not the same architecture")
                    if is_vision(name) or not torch.is_floating_point(t):
                        changed_vision += int(is_vision(name) and not torch.equal(b, t))
                        tensors[name] = b.contiguous()
                    else:
                        mixed = (1 - alpha) * b.float() + alpha * t.float()
                        tensors[name] = mixed.to(t.dtype).contiguous()
            save_file(tensors, tmp / shard.name, metadata=metadata or {"format": "pt"})
        for name in ("config.json", "model.safetensors.index.json"):
            if (ft_dir / name).is_file():
                shutil.copy(ft_dir / name, tmp / name)
        _copy_side_files(ft_dir, tmp)
        _card(tmp, {"merge": "weighted", "alpha": alpha, "base": str(base_dir), "finetuned": str(ft_dir),
                    "vision_tower": "base", "vision_tensors_that_differed": changed_vision})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _finish(tmp, out)


def _card(folder: Path, info: dict) -> None:
    (folder / "merge_card.json").write_text(json.dumps(info, indent=1) + "\n")
