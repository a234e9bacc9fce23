"""Converting a LLaVA-NeXT checkpoint folder into a transformers ``llava_onevision`` model."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from ..errors import RadioLlavaError
from .configs import (_aspect_ratio, _check_original, _feature_choice, _find_vision, _grid_pinpoints,
                      _image_processor, _text_config, _tokenizer, _Vision, _vision_model_config)
from .names import _VISION_LAYER, _is_unsupported, original_name, rename
from .result import ConversionResult
from .shards import _iter_tensors, _list_shards, _progress, _read_json, _shape, _Shards, _ShardWriter

MODEL_PROFILE = "radio-llava"


def _convert_model(src: Path, out: Path, vision_arg, dtype: str | None, max_shard_bytes: int,
                   progress: bool, allow_download: bool = False) -> ConversionResult:
    import torch
    from transformers import GenerationConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from ..models import image_only_processor_class, torch_dtype
    from ..profiles import get_profile, save_profile

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

    target_dtype = torch_dtype(dtype) if dtype else None
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
